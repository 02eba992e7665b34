"""Vectorised helpers over grouped arrays and CDFs, shared by the generators."""

from __future__ import annotations

import numpy as np


def segment_cumsum(values: np.ndarray, segment_start: np.ndarray) -> np.ndarray:
    """Integer cumulative sum restarting at each True of ``segment_start`` (whose first entry is True)."""
    total = np.cumsum(values, dtype=np.int64)
    before = total - values
    return total - np.maximum.accumulate(np.where(segment_start, before, np.iinfo(np.int64).min))


def group_starts(group: np.ndarray) -> np.ndarray:
    """True where a sorted group id array begins a new group."""
    start = np.ones(len(group), dtype=bool)
    start[1:] = group[1:] != group[:-1]
    return start


def draw_from_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cdf) - 1)
