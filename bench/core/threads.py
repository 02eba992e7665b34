"""Torch's thread count, set explicitly: two processes fighting over 2 cores run 20x slower."""

import os

import torch

from bench.core.errors import BenchError


def env_threads() -> int | None:
    """``BENCH_THREADS`` as a thread count; None when unset, empty or 0 (the default applies).
    Anything else that is not a whole number is refused in one line."""
    value = (os.environ.get("BENCH_THREADS") or "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise BenchError(
            f"BENCH_THREADS={os.environ['BENCH_THREADS']!r} is not a thread count", "set it to a whole number such as 1 (0: the default), or unset it"
        )
    return int(value) or None


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra- and inter-op thread counts; default ``BENCH_THREADS`` or all cores."""
    if n is None:
        n = env_threads() or (os.cpu_count() or 1)
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable once per process, before any parallel work
        pass
    return n
