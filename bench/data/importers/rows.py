"""Accounting for every input row of an import: read, kept, and dropped by reason (``source.rows``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.core.errors import BenchError

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
