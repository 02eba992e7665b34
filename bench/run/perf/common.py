"""What the perf benchmarks share: generated episodes, first-order FLOP counts, the matmul ceiling,
RSS, one timed meta-iteration, and the JSON the figures are written to."""

from __future__ import annotations

import json
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bench.core.atomic import atomic_write_text

MEAN_LENGTH = 10.0  # prefix length 1 + geometric (mean about 10 by default), capped at 50: skewed short
MAX_PREFIX = 50

# A measuring function's progress report: (event kind, its figures); bench/output/perf.py words it.
Progress = Callable[[str, dict], None]


def no_progress(kind: str, data: dict) -> None:
    """The default progress callback: says nothing."""


def synthetic_tasks(n: int, K: int, Q: int, n_items: int, seed: int, device="cpu", mean_length: float = MEAN_LENGTH) -> list:
    """``n`` generated episodes: random items, prefix lengths 1 + geometric (mean ``mean_length``), capped at 50."""
    from baselines.batching import pad_prefixes
    from meta.tasks import Task

    generator = torch.Generator().manual_seed(seed)
    geometric = torch.distributions.Geometric(probs=torch.tensor(1.0 / max(mean_length, 1.0)))

    def prefixes(count: int):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        lengths = (1 + geometric.sample((count,)).long()).clamp(max=MAX_PREFIX)
        items = [torch.randint(1, n_items + 1, (int(length),), generator=generator).tolist() for length in lengths]
        return pad_prefixes(items, device)

    tasks = []
    for _ in range(n):
        sp, sl = prefixes(K)
        qp, ql = prefixes(Q)
        tasks.append(
            Task(
                sp,
                sl,
                torch.randint(1, n_items + 1, (K,), generator=generator).to(device),
                qp,
                ql,
                torch.randint(1, n_items + 1, (Q,), generator=generator).to(device),
            )
        )
    return tasks


def sequence_flops(length: int, E: int, H: int, V: int) -> float:
    """Forward FLOPs of one prefix through one GRU layer and the output layer (matmuls only)."""
    return length * (2 * E * 3 * H + 2 * H * 3 * H) + 2 * H * V


def task_flops(task, E: int, H: int, V: int, inner_steps: int, train: bool) -> float:
    """Useful FLOPs for one task: each inner step forward + backward (3x forward), then the query
    set forward (+ backward when meta-training). Counted at the true lengths, padding excluded."""
    support = sum(sequence_flops(int(n), E, H, V) for n in task.support_lengths.tolist())
    query = sum(sequence_flops(int(n), E, H, V) for n in task.query_lengths.tolist())
    return 3 * inner_steps * support + (3 if train else 1) * query


def sync_device(device: str) -> None:
    """Wait for the device's queued work (CUDA), so that a timer reads the work done."""
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(device: str, size: int = 1024, repeats: int = 5) -> float:
    """Plain float32 matmul GFLOP/s on the current threads: the practical ceiling."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        sync_device(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync_device(device)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def current_rss_mb() -> float:
    """Resident set size now (MB), from /proc where there is one, else the process peak."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    """The process's peak resident set size (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_step(engine, maml, optimizer, tasks, inner_steps: int) -> float:
    """One meta-iteration: the meta-gradient, clipped at norm 10, one optimizer step; its loss."""
    optimizer.zero_grad()
    loss = engine.meta_gradient(maml, tasks, inner_steps)
    torch.nn.utils.clip_grad_norm_(maml.parameters(), 10.0)
    optimizer.step()
    return loss


def write_figures(path: str | Path, figures: dict) -> Path:
    """The figures as sorted, indented JSON at ``path``, written atomically; the path."""
    atomic_write_text(path, json.dumps(figures, indent=2, sort_keys=True))
    return Path(path)
