"""Torch's thread count, set explicitly: two processes fighting over 2 cores run 20x slower."""

import os

import torch


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra- and inter-op thread counts; default ``BENCH_THREADS`` or all cores."""
    if n is None:
        n = int(os.environ.get("BENCH_THREADS", "0")) or (os.cpu_count() or 1)
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable once per process, before any parallel work
        pass
    return n
