"""Any interaction log (CSV, TSV or parquet) -> dataset, through ``build.build_dataset``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.data import build, pipeline
from bench.data.importers.rows import RowAccount, missing_values
from bench.data.importers.timestamps import parse_timestamps, sessions_by_gap


def _read_table(path: Path, sep: str | None) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq") and sep is None:
            return pd.read_parquet(path)
        if sep is None:
            sep = "\t" if suffix in (".tsv", ".tab", ".inter") else ","
        sep = {"\\t": "\t", "tab": "\t"}.get(sep, sep)
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""], engine="c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BenchError(f"cannot read {path}: {first}", "check the file format and --sep") from None


def import_interactions(
    file,
    *,
    name: str,
    user: str,
    item: str,
    time: str,
    session: str | None = None,
    session_gap: float | None = None,
    sep: str | None = None,
    data_dir=None,
    config: pipeline.PipelineConfig = pipeline.PipelineConfig(),
    force: bool = False,
    progress=None,
    strict: bool = False,
    event: str | None = None,
):
    """A CSV/TSV/parquet log -> dataset. Without --session or --session-gap, sessions split at 30 idle minutes.

    Rows are dropped, and counted, for a missing user, item, time (or session, or event column), then as
    exact duplicates (every column equal to an earlier kept row's); ``strict`` refuses the first instead.
    ``event`` names the action-type column: the SRS's composition counts its distinct values per session;
    without it composition is undefined and the SRS is the mean of intensity and extent (bench.data.srs)."""
    path = Path(file)
    if not path.is_file():
        raise BenchError(f"no such file: {path}", "check the path")
    if session is not None and session_gap is not None:
        raise BenchError("both --session and --session-gap given", "pass one of them")
    if (pipeline.processed_dir(data_dir) / name).exists() and not force:
        raise BenchError(f"dataset {name!r} already exists", "pass --force to rebuild it or pick another --name")
    raw = _read_table(path, sep)
    wanted = {"--user": user, "--item": item, "--time": time}
    if session is not None:
        wanted["--session"] = session
    if event is not None:
        wanted["--event"] = event
    for flag, column in wanted.items():
        if column not in raw.columns:
            raise BenchError(
                f"unknown column {column!r} for {flag} in {path.name}",
                f"the columns are: {', '.join(map(str, raw.columns))}",
            )
    reasons = (
        ("missing_user", "missing_item", "missing_time")
        + (("missing_session",) if session is not None else ())
        + (("missing_event",) if event is not None else ())
        + ("duplicate",)
    )
    account = RowAccount("row", reasons, strict)
    checks = [("missing_user", missing_values(raw[user])), ("missing_item", missing_values(raw[item])), ("missing_time", missing_values(raw[time]))]
    if session is not None:
        checks.append(("missing_session", missing_values(raw[session])))
    if event is not None:
        checks.append(("missing_event", missing_values(raw[event])))
    complete = ~np.logical_or.reduce([mask for _, mask in checks])
    duplicate = np.zeros(len(raw), dtype=bool)
    duplicate[complete] = raw[complete].duplicated(keep="first").to_numpy()
    checks.append(("duplicate", duplicate))
    kept = account.drop_rows(checks, lambda i: f"row {i + 1:,} of {path.name} (data rows counted from 1)")
    columns = list(dict.fromkeys([user, item, time] + ([session] if session is not None else []) + ([event] if event is not None else [])))
    raw = raw.loc[kept, columns]
    if len(raw) == 0:
        raise BenchError(f"no rows with a user, an item and a time in {path.name}", "check the column choice")
    timestamps = parse_timestamps(raw[time], f"column {time!r}")
    users = raw[user].astype(str).to_numpy(dtype=object)
    if session is not None:
        sessions = raw[session].astype(str).to_numpy(dtype=object)
        session_rule = {"column": session}
    else:
        gap = 30.0 if session_gap is None else float(session_gap)
        sessions = sessions_by_gap(users, timestamps, gap)
        session_rule = {"gap_minutes": gap}
    interactions = pd.DataFrame({"user": users, "item": raw[item].astype(str).to_numpy(dtype=object), "timestamp": timestamps, "session": sessions})
    if event is not None:
        interactions[pipeline.KIND] = raw[event].astype(str).str.strip().to_numpy(dtype=object)
    source = {
        "kind": "interactions",
        "file": path.name,
        "file_sha256": pipeline.sha256_file(path),
        "columns": {"user": user, "item": item, "time": time, **({"event": event} if event is not None else {})},
        "sessions": session_rule,
        "rows": account.to_json(),
    }
    return build.build_dataset(
        interactions,
        name=name,
        data_dir=data_dir,
        source=source,
        config=config,
        force=force,
        progress=progress,
        kinds_from=f"column {event!r} (distinct values per session)" if event is not None else None,
    )
