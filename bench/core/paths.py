"""Default locations: where datasets and results live unless a command is told otherwise."""

from __future__ import annotations

import os

DEFAULT_RESULTS = "results"


def default_data_dir() -> str:
    """``$BENCH_DATA_DIR``, or ``data`` (relative to the working directory)."""
    return os.environ.get("BENCH_DATA_DIR", "data")
