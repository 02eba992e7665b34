"""Sources other than the generator: any interaction log, the seed's raw activity JSON, the seed's episodes.

Every importer turns its input into interactions (``user, item, timestamp, session``) and hands them
to ``pipeline.build_dataset``, except ``import_seed_episodes`` which has only episodes to offer.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.data import build, pipeline, srs
from bench.core.errors import BenchError

# ----------------------------------------------------------------------------------------------
# Accounting for every input row

DROP_REASONS = {  # reason -> words, in the order rows are checked: a row counts under its first reason
    "missing_user": "missing user",
    "missing_item": "missing item",
    "missing_time": "missing time",
    "missing_session": "missing session",
    "missing_event": "missing event type",
    "event_kind_not_kept": "event of a kind not kept",
    "duplicate": "exact duplicate of an earlier row",
}
STRICT_FIX = "fix or remove that row, or import without --strict to drop such rows and count them in dataset.json"


class RowAccount:
    """Input rows read and dropped by reason (dropped + kept = read), recorded as ``source.rows``;
    with ``strict`` the first row that would be dropped refuses the import instead."""

    def __init__(self, unit: str, reasons: tuple[str, ...], strict: bool = False):
        self.unit, self.strict, self.read = unit, strict, 0
        self.dropped = {reason: 0 for reason in reasons}

    def drop(self, reason: str, where: str, n: int = 1) -> None:
        """Count ``n`` rows dropped for ``reason``; ``where`` names the first of them (for --strict)."""
        if self.strict and n:
            raise BenchError(f"--strict refuses {where}: {DROP_REASONS[reason]}", STRICT_FIX)
        self.dropped[reason] += n

    def drop_rows(self, checks: list[tuple[str, np.ndarray]], where) -> np.ndarray:
        """Vectorised: ``checks`` are (reason, mask over the rows) in order; returns the mask of kept rows.
        ``where(i)`` names row i (0-based) for --strict, which refuses at the first row dropped."""
        n = len(checks[0][1]) if checks else 0
        self.read += n
        reason_of = np.full(n, -1)
        for code, (_, mask) in reversed(list(enumerate(checks))):  # the first matching check wins
            reason_of[np.asarray(mask, dtype=bool)] = code
        dropped = np.flatnonzero(reason_of >= 0)
        if self.strict and len(dropped):
            first = int(dropped[0])
            self.drop(checks[reason_of[first]][0], where(first))
        for code, (reason, _) in enumerate(checks):
            self.dropped[reason] += int((reason_of == code).sum())
        return reason_of < 0

    def to_json(self) -> dict:
        return {"unit": self.unit, "read": self.read, "kept": self.read - sum(self.dropped.values()), "dropped": dict(self.dropped)}


def rows_line(rows: dict) -> str:
    """One line for ``source.rows``: '15,842 rows read, 15,841 kept; dropped: 1 missing item'."""
    dropped = {reason: n for reason, n in rows["dropped"].items() if n}
    unit = rows.get("unit", "row")
    text = f"{rows['read']:,} {unit}s read, {rows['kept']:,} kept"
    if not dropped:
        return text + "; none dropped"
    return text + "; dropped: " + ", ".join(f"{n:,} {DROP_REASONS.get(reason, reason)}" for reason, n in dropped.items())


def missing_values(values: pd.Series) -> np.ndarray:
    """Null, or text that is empty once stripped."""
    return (values.isna() | (values.astype(str).str.strip() == "")).to_numpy()


# ----------------------------------------------------------------------------------------------
# Timestamps and sessions


def parse_timestamps(values: pd.Series, what: str) -> np.ndarray:
    """Epoch seconds (int64) from epoch numbers or ISO strings; BenchError naming the first bad value."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return _to_epoch(pd.to_datetime(values, utc=True))
    if pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values)
    else:
        strings = values.astype(str).str.strip()
        numbers = pd.to_numeric(strings, errors="coerce")
        if numbers.isna().any():
            if numbers.notna().any():
                bad = strings[numbers.isna()].iloc[0]
                raise BenchError(
                    f"unparseable timestamp {bad!r} in {what}: the column mixes epoch numbers and other text",
                    "use one format per column: epoch seconds or ISO 8601",
                )
            parsed = pd.to_datetime(strings, errors="coerce", utc=True, format="ISO8601")
            if parsed.isna().any():
                bad_index = int(np.flatnonzero(parsed.isna().to_numpy())[0])
                raise BenchError(
                    f"unparseable timestamp {strings.iloc[bad_index]!r} in {what} (row {bad_index + 1})",
                    "timestamps must be epoch seconds or ISO 8601 strings such as 2017-02-01T08:30:00",
                )
            return _to_epoch(parsed)
    if numbers.isna().any() or not np.isfinite(numbers.to_numpy(dtype=float)).all():
        raise BenchError(f"missing or infinite timestamp in {what}", "drop those rows or fill them in")
    return np.floor(numbers.to_numpy(dtype=float)).astype(np.int64)


def _to_epoch(parsed: pd.Series) -> np.ndarray:
    """Whole seconds since the epoch, whatever the datetime unit."""
    seconds = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=np.int64)


def sessions_by_gap(users: np.ndarray, timestamps: np.ndarray, gap_minutes: float) -> np.ndarray:
    """Session ids: a user's new session starts after more than ``gap_minutes`` without activity."""
    if not gap_minutes > 0:
        raise BenchError(f"--session-gap {gap_minutes} must be positive", "pass minutes, e.g. --session-gap 30")
    user_codes, _ = pd.factorize(users, sort=True)
    order = np.lexsort((np.arange(len(users)), timestamps, user_codes))
    u, t = user_codes[order], timestamps[order]
    new = np.ones(len(u), dtype=bool)
    new[1:] = (u[1:] != u[:-1]) | (t[1:] - t[:-1] > gap_minutes * 60)
    session_sorted = np.cumsum(new) - 1
    session = np.empty(len(u), dtype=np.int64)
    session[order] = session_sorted
    return np.char.add("g", session.astype(str)).astype(object)


# ----------------------------------------------------------------------------------------------
# Any interaction log


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
        ("missing_user", "missing_item", "missing_time") + (("missing_session",) if session is not None else ())
        + (("missing_event",) if event is not None else ()) + ("duplicate",)
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
    interactions = pd.DataFrame(
        {"user": users, "item": raw[item].astype(str).to_numpy(dtype=object), "timestamp": timestamps, "session": sessions}
    )
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
        interactions, name=name, data_dir=data_dir, source=source, config=config, force=force, progress=progress,
        kinds_from=f"column {event!r} (distinct values per session)" if event is not None else None,
    )


# ----------------------------------------------------------------------------------------------
# The seed's raw XuetangX activity JSON, streamed

KEPT_EVENT_PREFIXES = ("load_", "problem_", "video_", "seek_", "speed_", "pause_")
SRS_KIND_UNITS = {  # what an event's kind is for the SRS's composition (bench.data.srs)
    "event_type": "the raw XuetangX event type (e.g. pause_video), as seed notebook 02 counts nunique(event_type)",
    "prefix": "the event type's kept prefix (load, problem, video, seek, speed, pause)",
}


def event_kind(event_type: str, unit: str = "event_type") -> str:
    """An event's kind for the SRS: its raw type, or (``unit="prefix"``) the kept prefix it starts with."""
    if unit == "prefix":
        for prefix in KEPT_EVENT_PREFIXES:
            if event_type.startswith(prefix):
                return prefix[:-1]
    return event_type
_DECODER = json.JSONDecoder()


class JsonStream:
    """Incremental reader of one large JSON document: values are decoded one at a time from a buffer
    that only ever holds the value being decoded (plus one read chunk)."""

    def __init__(self, handle, label: str, chunk_chars: int = 1 << 20):
        self.handle, self.label, self.chunk = handle, label, chunk_chars
        self.buf, self.pos, self.base, self.eof = "", 0, 0, False

    def where(self) -> int:
        return self.base + self.pos

    def fail(self, problem: str, truncated: bool = False):
        if truncated:
            raise BenchError(
                f"truncated JSON in {self.label} at character {self.where():,}: the file ends {problem}",
                "the file is incomplete; download or copy it again",
            )
        raise BenchError(
            f"malformed JSON in {self.label} at character {self.where():,}: {problem}",
            "the file must be a JSON array of [course_id, {user_id: {session: [[event, time], ...]}}]",
        )

    def _read(self, at_least: int = 0) -> bool:
        if self.eof:
            return False
        if self.pos:
            self.base += self.pos
            self.buf, self.pos = self.buf[self.pos :], 0
        data = self.handle.read(max(self.chunk, at_least))
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def peek(self, context: str) -> str:
        """The next non-space character (not consumed); fails as truncated at the end of the file."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._read():
                self.fail(context, truncated=True)

    def closes(self, close: str, context: str, between: str) -> bool:
        """After an element: consume ``close`` (True) or ',' (False); anything else is an error."""
        sep = self.peek(context)
        self.pos += 1
        if sep == close:
            return True
        if sep != ",":
            self.pos -= 1
            self.fail(f"expected ',' or '{close}' between {between}, found {sep!r}")
        return False

    def expect(self, char: str, context: str) -> None:
        found = self.peek(context)
        if found != char:
            self.fail(f"expected {char!r} {context}, found {found!r}")
        self.pos += 1

    def value(self, context: str):
        self.peek(context)
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.pos)
                self.pos = end
                return obj
            except json.JSONDecodeError as err:
                incomplete = err.pos >= len(self.buf) - 1 or err.msg.startswith("Unterminated string")
                if not incomplete:
                    self.pos = err.pos
                    self.fail(f"{err.msg} {context}")
                # doubling the read keeps a long value linear in its size
                if not self._read(at_least=len(self.buf) - self.pos):
                    self.fail(context, truncated=True)


def iter_activity(handle, label: str, chunk_chars: int = 1 << 20):
    """Yield (course_id, user_id, {session: [[event, time], ...]}) from the activity array, one user at a time."""
    stream = JsonStream(handle, label, chunk_chars)
    stream.expect("[", "at the start of the file")
    if stream.peek("inside the top-level array") == "]":
        return
    while True:
        stream.expect("[", "where a course element should start")
        course = stream.value("while reading a course id")
        if not isinstance(course, (str, int)):
            stream.fail(f"course id must be a string, found {type(course).__name__}")
        stream.expect(",", "after the course id")
        stream.expect("{", "where the course's users should open")
        if stream.peek("inside a course's users") == "}":
            stream.pos += 1
        else:
            while True:
                user = stream.value("while reading a user id")
                if not isinstance(user, str):
                    stream.fail("user ids must be object keys (strings)")
                stream.expect(":", "after a user id")
                sessions = stream.value(f"while reading user {user!r} of course {course!r}")
                if not isinstance(sessions, dict):
                    stream.fail(f"user {user!r} must map to an object of sessions")
                yield str(course), user, sessions
                if stream.closes("}", "inside a course's users", "users"):
                    break
        stream.expect("]", "where a course element should close")
        if stream.closes("]", "inside the top-level array", "course elements"):
            break
    # only whitespace may follow the array
    while stream.pos < len(stream.buf) or stream._read():
        rest = stream.buf[stream.pos :].strip()
        if rest:
            stream.fail("unexpected data after the end of the array")
        stream.pos = len(stream.buf)


class _Buckets:
    """Kept events, spilled to parquet files partitioned by user so each part can be collapsed alone."""

    def __init__(self, folder: Path, n_buckets: int, flush_rows: int, label: str):
        self.folder, self.n, self.flush_rows, self.label = folder, n_buckets, flush_rows, label
        self.rows: dict[str, list] = {"user": [], "item": [], "time": [], "session": [], "kind": []}
        self.parts = 0
        self.kinds: set[str] = set()  # the distinct kinds kept

    def add(self, user, item, session, time, kind):
        self.rows["user"].append(user)
        self.rows["item"].append(item)
        self.rows["session"].append(session)
        self.rows["time"].append(time)
        self.rows["kind"].append(kind)
        if len(self.rows["user"]) >= self.flush_rows:
            self.flush()

    def flush(self):
        if not self.rows["user"]:
            return
        frame = pd.DataFrame(self.rows)
        self.rows = {key: [] for key in self.rows}
        self.kinds.update(frame["kind"].unique().tolist())
        frame["timestamp"] = parse_timestamps(frame.pop("time"), f"{self.label} (event times)")
        bucket = pd.util.hash_array(frame["user"].to_numpy(dtype=object)) % self.n
        for b in np.unique(bucket):
            part = frame[bucket == b]
            table = pa.Table.from_pandas(part, preserve_index=False)
            pq.write_table(table, self.folder / f"b{int(b):04d}-{self.parts:06d}.parquet")
        self.parts += 1

    def collapsed(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(each bucket sorted and stripped of consecutive repeats, then concatenated; the session
        statistics of every bucket over its raw events, ``pipeline.session_stats``). A bucket holds
        whole users, so each session's statistics come from one bucket."""
        pieces, stats = [], []
        for b in range(self.n):
            files = sorted(self.folder.glob(f"b{b:04d}-*.parquet"))
            if files:
                part = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
                stats.append(pipeline.session_stats(part))
                pieces.append(pipeline.collapse_sessions(part))
        if not pieces:
            raise BenchError(
                f"no learning events left in {self.label} after keeping {', '.join(KEPT_EVENT_PREFIXES)} events",
                "check that this is the XuetangX activity file",
            )
        return pd.concat(pieces, ignore_index=True), pd.concat(stats).sort_index()


def import_xuetangx_activity(
    file,
    *,
    name: str = "xuetangx",
    data_dir=None,
    config: pipeline.PipelineConfig = pipeline.PipelineConfig(),
    force: bool = False,
    progress=None,
    flush_rows: int = 2_000_000,
    bucket_bytes: int = 256 << 20,
    strict: bool = False,
    srs_kinds: str = "event_type",
):
    """The seed's raw activity JSON -> dataset, streamed: memory is bounded by the kept events of one
    bucket (events are spilled to disk by user) plus the largest single user-in-course value.

    Events are dropped, and counted, for an empty user id, course id or time, a kind not kept, then as
    exact duplicates of an earlier event of the same (course, user, session); ``strict`` refuses the first.

    Each session's statistics (bench.data.srs) are taken over its kept events before repeats are
    removed; its kinds are the distinct ``srs_kinds``: "event_type" (the raw event type, as seed
    notebook 02 counts ``nunique(event_type)``) or "prefix" (its kept prefix: load, problem, ...)."""
    if srs_kinds not in SRS_KIND_UNITS:
        raise BenchError(f"unknown srs_kinds {srs_kinds!r}", f"use one of {', '.join(SRS_KIND_UNITS)}")
    path = Path(file)
    if not path.is_file():
        raise BenchError(f"no such file: {path}", "check the path to 20170201-20170801-raw_user_activity.json")
    base = pipeline.processed_dir(data_dir)
    if (base / name).exists() and not force:
        raise BenchError(f"dataset {name!r} already exists", "pass --force to rebuild it or pick another --name")
    say = progress or (lambda message: None)
    scratch = base / f".tmp-{name}-{os.getpid()}-events"
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    n_buckets = max(1, math.ceil(path.stat().st_size / bucket_bytes))
    buckets = _Buckets(scratch, n_buckets, flush_rows, path.name)
    account = RowAccount("event", ("missing_user", "missing_item", "missing_time", "event_kind_not_kept", "duplicate"), strict)
    n_courses = 0
    last_course = None
    try:
        with open(path, "r", encoding="utf-8") as handle:
            for course, user, sessions in iter_activity(handle, path.name):
                if course != last_course:
                    n_courses += 1
                    last_course = course
                    if n_courses % 100 == 0:
                        say(f"{n_courses:,} courses, {account.to_json()['kept']:,} of {account.read:,} events kept")
                missing_user, missing_course = not user.strip(), not str(course).strip()
                for session, events in sessions.items():
                    if not isinstance(events, list):
                        raise BenchError(
                            f"malformed activity in {path.name}: session {session!r} of user {user!r} is not a list",
                            "each session must be a list of [event_type, iso_timestamp]",
                        )
                    seen = set()
                    for event in events:
                        account.read += 1
                        if not (isinstance(event, list) and len(event) >= 2 and isinstance(event[0], str)):
                            raise BenchError(
                                f"malformed event {event!r} in {path.name} (user {user!r}, course {course!r})",
                                "each event must be [event_type, iso_timestamp]",
                            )
                        when = event[1]
                        if missing_user:
                            reason = "missing_user"
                        elif missing_course:
                            reason = "missing_item"
                        elif when is None or not str(when).strip():
                            reason = "missing_time"
                        elif not event[0].startswith(KEPT_EVENT_PREFIXES):
                            reason = "event_kind_not_kept"
                        elif repr(event) in seen:
                            reason = "duplicate"
                        else:
                            seen.add(repr(event))
                            buckets.add(user, course, session, when, event_kind(event[0], srs_kinds))
                            continue
                        account.drop(reason, f"event {account.read:,} of {path.name} (user {user!r}, course {course!r})")
        buckets.flush()
        interactions, stats = buckets.collapsed()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    source = {
        "kind": "xuetangx-activity",
        "file": path.name,
        "file_bytes": path.stat().st_size,
        "kept_event_prefixes": list(KEPT_EVENT_PREFIXES),
        "rows": account.to_json(),
        "courses_in_file": n_courses,
        "interaction": "one kept event of (user, session hash, course); sessions are (user, session hash) across courses",
    }
    say(f"{rows_line(source['rows'])}; {len(interactions):,} interactions after removing consecutive repeats")
    return build.build_dataset(
        interactions, name=name, data_dir=data_dir, source=source, config=config, force=force, progress=progress,
        session_stats=stats, kinds_from=SRS_KIND_UNITS[srs_kinds], kinds_seen=sorted(buckets.kinds),
    )


# ----------------------------------------------------------------------------------------------
# The seed's processed episodes

def _find_seed_root(folder: Path) -> Path:
    """DIR itself, or the one ``[data/]processed/<name>`` folder below it that holds episodes/ and vocab/."""
    if (folder / "episodes").is_dir() and (folder / "vocab").is_dir():
        return folder
    candidates = sorted(
        p for pattern in ("*", "processed/*", "data/processed/*") for p in folder.glob(pattern)
        if (p / "episodes").is_dir() and (p / "vocab").is_dir()
    )
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        names = ", ".join(str(c) for c in candidates)
        raise BenchError(f"{folder} holds several seed datasets ({names})", "pass the one folder to import")
    raise BenchError(
        f"{folder} has no episodes/ and vocab/ folders",
        "pass the seed's data/processed/<name> folder (episodes/episodes_*_K*_Q*.parquet and vocab/course2id.json)",
    )


def check_vocab(course2id) -> int:
    """Return the shift that makes ids 1..N: 1 if they are 0..N-1, 0 if already 1..N; refuse otherwise."""
    if not isinstance(course2id, dict) or not course2id:
        raise BenchError("course2id.json is not a non-empty object of course -> id", "pass the seed's vocab/course2id.json")
    try:
        ids = sorted(int(v) for v in course2id.values())
    except (TypeError, ValueError):
        raise BenchError("course2id.json has non-integer ids", "ids must be integers 0..N-1 or 1..N") from None
    n = len(ids)
    if ids == list(range(n)):
        return 1
    if ids == list(range(1, n + 1)):
        return 0
    raise BenchError(
        f"course2id.json ids are not a permutation of 0..{n - 1} or 1..{n} (min {ids[0]}, max {ids[-1]}, {n} courses)",
        "repair the vocabulary so each course has one distinct id",
    )


def _shift_nested(column: pa.ChunkedArray | pa.Array, shift: int, depth: int) -> pa.Array:
    """Add ``shift`` to every integer of a list (depth 1) or list-of-lists (depth 2) column, as int64."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if depth == 0:
        return pc.add(arr.cast(pa.int64()), pa.scalar(shift, pa.int64()))
    offsets = pc.subtract(arr.offsets, arr.offsets[0]).cast(pa.int32())
    inner = arr.values.slice(arr.offsets[0].as_py(), len(arr.values) - arr.offsets[0].as_py())
    return pa.ListArray.from_arrays(offsets, _shift_nested(inner, shift, depth - 1))


def _merge_user_sequences(users: list[str], episodes: list[list[tuple]]) -> dict[str, list[tuple]]:
    """Per user, the pair sequence behind their episodes: each next episode is appended after its
    largest overlap with what is known (stride-1 sliding windows overlap by K+Q-1)."""
    merged: dict[str, list[tuple]] = {}
    for user, sequence in zip(users, episodes):
        known = merged.setdefault(user, [])
        overlap = 0
        for o in range(min(len(known), len(sequence)), 0, -1):
            if known[-o:] == sequence[:o]:
                overlap = o
                break
        known.extend(sequence[overlap:])
    return merged


def _rows_with_null(values: pa.Array, depth: int) -> np.ndarray:
    """Per row of a list (depth 1) or list-of-lists (depth 2) column: is the row, an inner list or a value null?"""
    bad = pc.is_null(values).to_numpy(zero_copy_only=False).copy()
    parent = np.arange(len(values))
    for _ in range(depth):
        parent = parent[pc.list_parent_indices(values).to_numpy()]
        values = pc.list_flatten(values)
        bad[parent[pc.is_null(values).to_numpy(zero_copy_only=False)]] = True
    return bad


def _seed_row_checks(table: pa.Table, user_ids: pa.Array, needed: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    """Drop checks for one seed episode file: missing user id, a missing id in any list, exact duplicate rows."""
    missing_user = missing_values(pd.Series(user_ids.to_pandas()))
    missing_item = np.logical_or.reduce(
        [_rows_with_null(table.column(c).combine_chunks(), 2 if c.endswith("prefixes") else 1) for c in needed]
    )
    duplicate = np.zeros(table.num_rows, dtype=bool)
    seen = set()
    columns = [user_ids.to_pylist()] + [table.column(c).to_pylist() for c in needed]
    for i, row in enumerate(zip(*columns)):
        if missing_user[i] or missing_item[i]:
            continue
        key = repr(row)
        duplicate[i] = key in seen
        seen.add(key)
    return [("missing_user", missing_user), ("missing_item", missing_item), ("duplicate", duplicate)]


SEED_COLUMNS = ("support_prefixes", "support_labels", "query_prefixes", "query_labels")  # what a seed episode file must hold


def _read_vocab(root: Path) -> tuple[Path, dict, int]:
    """(the path of ``root``'s vocab/course2id.json, its course -> id mapping, the id shift ``check_vocab`` gives)."""
    vocab_path = root / "vocab" / "course2id.json"
    if not vocab_path.is_file():
        raise BenchError(f"no vocab/course2id.json in {root}", "copy the seed's course2id.json there")
    try:
        course2id = json.loads(vocab_path.read_text())
    except json.JSONDecodeError as err:
        raise BenchError(f"malformed JSON in {vocab_path} at character {err.pos}: {err.msg}", "copy the file again") from None
    return vocab_path, course2id, check_vocab(course2id)


def _complete_episode_files(root: Path) -> dict[tuple[int, int], dict[str, Path]]:
    """Per (K, Q) whose train, val and test files are all in ``root``/episodes: split -> file."""
    found: dict[tuple[int, int], dict[str, Path]] = {}
    for path in sorted((root / "episodes").glob("episodes_*_K*_Q*.parquet")):
        parts = path.stem.split("_")
        if len(parts) != 4:  # e.g. our own _P<population K> files: not the seed's
            continue
        try:
            split, K, Q = parts[1], int(parts[2][1:]), int(parts[3][1:])
        except (IndexError, ValueError):
            continue
        if split in pipeline.SPLITS:
            found.setdefault((K, Q), {})[split] = path
    complete = {kq: files for kq, files in found.items() if set(files) == set(pipeline.SPLITS)}
    if not complete:
        raise BenchError(
            f"no complete set of episodes_{{train,val,test}}_K*_Q*.parquet in {root / 'episodes'}",
            "copy all three split files for one K and Q",
        )
    return complete


def _read_episode_file(path: Path, split: str, shift: int, n_items: int, account: RowAccount) -> pa.Table:
    """One seed episode file as ``user_id`` + ``SEED_COLUMNS``: rows dropped (and counted) by ``account``, every
    id checked against the vocabulary's 1 - shift .. n_items - shift and shifted by ``shift``; a file without
    user ids gives each episode its own user."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise BenchError(f"cannot read {path}: {str(err).splitlines()[0]}", "copy the file again") from None
    missing = [c for c in SEED_COLUMNS if c not in table.column_names]
    if missing:
        raise BenchError(f"{path.name} lacks columns {missing}", f"episode files need {', '.join(SEED_COLUMNS)}")
    if "user_id" in table.column_names:
        user_ids = table.column("user_id").cast(pa.string())
    else:
        user_ids = pa.array([f"{split}-episode-{i}" for i in range(table.num_rows)], type=pa.string())
    kept = account.drop_rows(_seed_row_checks(table, user_ids, SEED_COLUMNS), lambda i: f"row {i + 1:,} of {path.name}")
    if not kept.all():
        table, user_ids = table.filter(pa.array(kept)), user_ids.filter(pa.array(kept))
    if table.num_rows == 0:
        raise BenchError(f"no episode rows left in {path.name} after dropping incomplete and duplicate rows", "copy the file again")
    columns = [user_ids]
    for column in SEED_COLUMNS:
        depth = 2 if column.endswith("prefixes") else 1
        values = table.column(column).combine_chunks()
        flat = pc.list_flatten(pc.list_flatten(values) if depth == 2 else values)
        if len(flat):
            low, high = pc.min(flat).as_py(), pc.max(flat).as_py()
            if low < 1 - shift or high > n_items - shift:
                raise BenchError(
                    f"{path.name} column {column} holds ids {low}..{high}, outside the vocabulary's {1 - shift}..{n_items - shift}",
                    "the episodes and course2id.json must come from the same seed run",
                )
        columns.append(_shift_nested(values, shift, depth))
    return pa.Table.from_arrays(columns, names=["user_id", *SEED_COLUMNS])


def _pairs_from_episodes(episodes: pa.Table) -> tuple[pa.Table, dict]:
    """(the pairs behind one split's episodes, per user in sequence order (``PAIRS_SCHEMA``, timestamp = position,
    session 'unknown'); the split's counts for ``manifest["counts"]["splits"]``)."""
    columns = episodes.to_pydict()
    sequences = [
        [(tuple(p), int(l)) for p, l in zip(sp + qp, sl + ql)]
        for sp, sl, qp, ql in zip(
            columns["support_prefixes"], columns["support_labels"], columns["query_prefixes"], columns["query_labels"]
        )
    ]
    merged = _merge_user_sequences(columns["user_id"], sequences)
    users, prefixes, labels, order = [], [], [], []
    for user in sorted(merged):
        for position, (prefix, label) in enumerate(merged[user]):
            users.append(user)
            prefixes.append(list(prefix))
            labels.append(label)
            order.append(position)
    pairs = pa.Table.from_arrays(
        [
            pa.array(users, type=pa.string()),
            pa.array(["unknown"] * len(users), type=pa.string()),
            pa.array(prefixes, type=pa.list_(pa.int64())),
            pa.array(labels, type=pa.int64()),
            pa.array(order, type=pa.int64()),
        ],
        schema=pipeline.PAIRS_SCHEMA,
    )
    counts = {
        "users": len(merged),
        "pairs": pairs.num_rows,
        "episodes": len(sequences),
        "episode_users": len(merged),
        "users_dropped_too_few_pairs": None,  # unknown: the seed kept only users with episodes
    }
    return pairs, counts


def _seed_source(root: Path, vocab_path: Path, complete: dict, account: RowAccount, shift: int, primary: tuple[int, int]) -> dict:
    """``manifest["source"]`` of a seed-episodes import: where from, rows dropped, original hashes, repair, derivation."""
    return {
        "kind": "seed-episodes",
        "folder": str(root),
        "episode_files": {f"K{k}_Q{q}": sorted(files) for (k, q), files in complete.items()},
        "rows": account.to_json(),
        "original_files": {
            p.relative_to(root).as_posix(): pipeline.sha256_file(p)
            for p in [vocab_path, *(f for files in complete.values() for f in files.values())]
        },
        "repair": (
            {"id_shift": 1, "reason": "course2id.json gave id 0 to a real course; every id (vocabulary, prefixes, labels) was shifted by +1 so 0 is padding only"}
            if shift
            else None
        ),
        "pairs_derivation": (
            "pairs_{split}.parquet are derived from the K%d_Q%d episodes: per user, each episode's K+Q pairs "
            "appended after their largest overlap with the pairs already known (exact for stride-1 windows); "
            "timestamp = the pair's position in the user's sequence, session_id = 'unknown'" % primary
        ),
    }


def import_seed_episodes(
    folder, *, name: str, data_dir=None, force: bool = False, progress=None, test_episodes_per_user: int = 1,
    strict: bool = False,
):
    """The seed's episodes + course2id.json -> dataset; id 0 for a real course is repaired by +1 on every id.

    Episode rows are dropped, and counted, for a missing user id, a missing (null) id in a list, then as
    exact duplicates of an earlier row of the same file; ``strict`` refuses the first instead.

    ``test_episodes_per_user`` shapes only val/test episodes built later from the derived pairs (other
    K/Q); the seed's own files are kept as they are."""
    from bench.data import diagnostics  # here, not at the top: it imports torch

    say = progress or (lambda message: None)
    pipeline.check_episodes_per_user(test_episodes_per_user)
    folder = Path(folder)
    if not folder.is_dir():
        raise BenchError(f"no such folder: {folder}", "pass the seed's data/processed/<name> folder")
    root = _find_seed_root(folder)
    vocab_path, course2id, shift = _read_vocab(root)
    n_items = len(course2id)
    complete = _complete_episode_files(root)
    primary = (5, 10) if (5, 10) in complete else sorted(complete)[0]
    account = RowAccount("episode row", ("missing_user", "missing_item", "duplicate"), strict)
    tables: dict[tuple[int, int], dict[str, pa.Table]] = {}
    for kq, files in sorted(complete.items()):
        for split, path in files.items():
            tables.setdefault(kq, {})[split] = _read_episode_file(path, split, shift, n_items, account)

    with pipeline.atomic_dataset_dir(name, data_dir, force=force) as tmp:
        vocab = {str(course): int(i) + shift for course, i in sorted(course2id.items(), key=lambda kv: int(kv[1]))}
        pipeline.write_json(vocab, tmp / "vocab" / "course2id.json")
        for (k, q), by_split in tables.items():
            for split, table in by_split.items():
                pipeline.write_parquet(table, tmp / pipeline.episodes_relpath(split, k, q))
        pairs_by_split, counts_split = {}, {}
        for split in pipeline.SPLITS:
            pairs_by_split[split], counts_split[split] = _pairs_from_episodes(tables[primary][split])
            pipeline.write_parquet(pairs_by_split[split], tmp / "pairs" / f"pairs_{split}.parquet")
            say(f"{split}: {counts_split[split]}")
        all_users = set().union(*(set(pairs_by_split[s].column("user_id").to_pylist()) for s in pipeline.SPLITS))
        K, Q = primary
        pipeline.write_manifest(
            tmp,
            name=name,
            source=_seed_source(root, vocab_path, complete, account, shift, primary),
            settings={
                "max_prefix": None, "split_seed": None, "K": K, "Q": Q, "stride": 1,
                "test_episodes_per_user": test_episodes_per_user, "episode_rules": pipeline.EPISODE_RULES,
                # the seed's episodes are taken as given: the last prefix item is excluded only if no pair has it as label
                "excluded_from_ranking": pipeline.exclusion_rule(
                    (pc.list_flatten(table.column(f"{part}_prefixes")), pc.list_flatten(table.column(f"{part}_labels")))
                    for by_split in tables.values() for table in by_split.values() for part in ("support", "query")
                ),
            },
            counts={
                "interactions": None,
                "users": len(all_users),
                "users_with_pairs": len(all_users),
                "items": n_items,
                "sessions": None,
                "pairs": sum(t.num_rows for t in pairs_by_split.values()),
                "K": K,
                "Q": Q,
                "splits": counts_split,
            },
            summaries=pipeline.summarise(pairs_by_split, n_items, 50),
            srs=srs.unavailable(
                "an episodes-only import: the seed's episodes hold no sessions, so no session has events, a duration or kinds"
            ),
            diagnostics=diagnostics.compute(pairs_by_split, tables[primary], n_items, max_prefix=None),
        )
    from bench.data.dataset import open_dataset

    return open_dataset(name, data_dir)
