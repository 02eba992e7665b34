"""Timestamps (epoch numbers or ISO strings -> epoch seconds) and sessions split by an idle gap."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.core.errors import BenchError


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
