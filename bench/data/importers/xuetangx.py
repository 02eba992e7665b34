"""The seed's raw XuetangX activity JSON -> dataset: events kept by kind, spilled to disk by user, collapsed
bucket by bucket, then handed to ``build.build_dataset``."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.core.errors import BenchError
from bench.data import build, pipeline
from bench.data.importers.activity_json import iter_activity
from bench.data.importers.rows import RowAccount, rows_line
from bench.data.importers.timestamps import parse_timestamps

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
        with open(path, encoding="utf-8") as handle:
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
        interactions,
        name=name,
        data_dir=data_dir,
        source=source,
        config=config,
        force=force,
        progress=progress,
        session_stats=stats,
        kinds_from=SRS_KIND_UNITS[srs_kinds],
        kinds_seen=sorted(buckets.kinds),
    )
