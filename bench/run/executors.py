"""Running a grid: skip complete runs, hand the rest to an executor by name.

``EXECUTORS`` maps a name to a function with the local executor's signature; each executor is
handed the runs and the callbacks and runs :mod:`bench.run.execute`'s run function, so no
executor imports this dispatcher and adding one is one entry here.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from bench.core.errors import BenchError
from bench.core.threads import env_threads
from bench.plan.grid import RunConfig
from bench.run.execute import Outcome, Progress
from bench.run.local import run_local
from bench.store.results import Store


def _run_ray(todo, data_dir, store, threads, device, jobs, on_start, on_progress, on_done, poll, ray_address=None):
    from bench.run.ray_executor import run_grid_ray  # imports ray: only when asked for

    per_run = threads(1)
    return run_grid_ray(todo, data_dir, store, per_run, device, ray_address, jobs * per_run, on_start, on_progress, on_done, poll)


EXECUTORS: dict[str, Callable[..., list[Outcome]]] = {
    "local": run_local,
    "ray": _run_ray,
}


def thread_plan(jobs: int, cores: int | None = None) -> Callable[[int], int]:
    """Torch threads of a run started while ``running`` others run: ``BENCH_THREADS`` if set, else the
    cores split between ``jobs`` runs (never oversubscribed), or every core for a run alone."""
    fixed = env_threads()
    cores = cores or os.cpu_count() or 1
    return lambda running: fixed or (cores if running == 0 else max(1, cores // jobs))


def run_grid(
    runs: list[RunConfig],
    data_dir: str,
    store: Store,
    jobs: int = 1,
    device: str = "cpu",
    on_start: Callable[[RunConfig], None] = lambda c: None,
    on_progress: Progress = lambda *a: None,
    on_done: Callable[[Outcome], None] = lambda o: None,
    poll: Callable[[], None] = lambda: None,
    executor: str = "local",
    ray_address: str | None = None,
) -> list[Outcome]:
    """Run every incomplete run; complete ones are skipped. Returns the outcomes of those run.

    ``executor="ray"`` runs them as Ray tasks (bench/run/ray_executor.py): on a local Ray instance with
    ``jobs`` runs at a time, or on the cluster at ``ray_address``; the store is written the same way.
    """
    if executor not in EXECUTORS:
        raise BenchError(f"unknown executor {executor!r}", f"choose one of {', '.join(EXECUTORS)}")
    todo = [r for r in runs if not store.is_complete(r.hash)]
    jobs = max(1, min(jobs, len(todo) or 1))
    extra = {"ray_address": ray_address} if executor == "ray" else {}
    return EXECUTORS[executor](todo, data_dir, store, thread_plan(jobs), device, jobs, on_start, on_progress, on_done, poll, **extra)
