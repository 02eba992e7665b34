"""The local executor: runs in this process (one job) or in spawned worker processes."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from bench.core.errors import BenchError
from bench.plan.grid import RunConfig
from bench.run.execute import Outcome, Progress, execute_run, one_line
from bench.store.results import Store

_queue = None
_parent = None


def _worker_init(queue, parent_pid: int) -> None:
    global _queue, _parent
    _queue, _parent = queue, parent_pid


def _worker_progress(run_hash: str, phase: str, done: int, total: int) -> None:
    if os.getppid() != _parent:  # the grid process died (even by kill -9): stop, leave the run incomplete
        os._exit(1)
    _queue.put((run_hash, phase, done, total))


def _worker_run(config: RunConfig, data_dir: str, results_dir: str, threads: int, device: str) -> dict:
    return execute_run(config, data_dir, results_dir, threads, device, _worker_progress)


def run_local(
    todo: list[RunConfig],
    data_dir: str,
    store: Store,
    threads: Callable[[int], int],
    device: str,
    jobs: int,
    on_start: Callable[[RunConfig], None],
    on_progress: Progress,
    on_done: Callable[[Outcome], None],
    poll: Callable[[], None],
) -> list[Outcome]:
    """Run ``todo`` with up to ``jobs`` at a time; ``threads(running)`` is the torch thread count of a
    run started while ``running`` other runs are still going (a run alone may take every core)."""
    outcomes: list[Outcome] = []

    def finish(outcome: Outcome) -> None:
        outcomes.append(outcome)
        on_done(outcome)

    if jobs == 1:
        for config in todo:
            on_start(config)
            try:
                finish(Outcome(config, execute_run(config, data_dir, str(store.root), threads(0), device, on_progress)))
            except BenchError:
                raise
            except Exception as err:
                finish(Outcome(config, None, one_line(err)))
        return outcomes

    context = multiprocessing.get_context("spawn")  # fork after torch has threads is unsafe
    manager = context.Manager()
    queue = manager.Queue()
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init, initargs=(queue, os.getpid())) as pool:
        pending = {}
        waiting = list(todo)
        while waiting or pending:
            while waiting and len(pending) < jobs:
                config = waiting.pop(0)
                on_start(config)
                # the last run, started when no other runs, gets every core
                running = len(pending) + len(waiting)
                pending[pool.submit(_worker_run, config, data_dir, str(store.root), threads(running), device)] = config
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            while not queue.empty():
                on_progress(*queue.get())
            poll()
            for future in done:
                config = pending.pop(future)
                try:
                    finish(Outcome(config, future.result()))
                except BenchError:
                    raise
                except Exception as err:
                    finish(Outcome(config, None, one_line(err)))
    manager.shutdown()
    return outcomes
