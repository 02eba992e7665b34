"""The one run function: what every executor (local processes, Ray) runs for one grid run.

Each run: open the dataset, build the method from the registry, fit, score the test episodes in
each of the method's modes through the single evaluator, and store everything atomically.
"""

from __future__ import annotations

import os
import platform
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.plan.grid import RunConfig
from bench.store.results import Store

Progress = Callable[[str, str, int, int], None]  # (run hash, phase, done, total)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class RunResult:
    """What one run produces: its run.json record, per-episode metrics, meta-training curve and per-query
    ranks (the per-episode metrics are slice_metrics(queries, "all") of them)."""

    record: dict
    episodes: pd.DataFrame
    curve: pd.DataFrame
    queries: pd.DataFrame | None = None


def start_record(config: RunConfig, threads: int) -> dict:
    """The run.json fields known before the run starts (written with status "running")."""
    from bench.core import provenance

    return {
        "hash": config.hash,
        "cell": config.cell,
        "config": {**config.identity(), "engine": config.params_dict.get("engine")},
        "git": provenance.git_state(),
        "threads": threads,
        "started": _now(),
    }


def compute_run(
    config: RunConfig, data_dir: str, cache_dir, threads: int, device: str, record: dict, progress: Progress | None = None, report=None
) -> RunResult:
    """Fit and evaluate one run; writes nothing but shared prerequisites under ``cache_dir``.
    ``report(step, value)``: a tuning trial's pruning hook (bench/run/pruning.py), else None.

    The local runner writes the result to the store itself; the Ray executor ships it back to
    the driver, which writes it (workers need no shared filesystem).
    """
    import torch

    from baselines.fused import kernel_status
    from bench.core import provenance
    from bench.core.metrics import query_rows, slice_metrics
    from bench.core.threads import configure_threads
    from bench.data.dataset import open_dataset
    from bench.methods.prerequisites import training_budget
    from bench.methods.registry import METHODS, RunContext, method_ranks

    configure_threads(threads)
    say = progress or (lambda *_: None)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    # Fault injection for the executor tests: a run of this cell label raises like a broken method.
    if os.environ.get("BENCH_FAIL_CELL") and os.environ["BENCH_FAIL_CELL"] == config.cell:
        raise RuntimeError(f"injected failure for cell {config.cell} (BENCH_FAIL_CELL)")

    dataset = open_dataset(config.dataset, data_dir)
    if dataset.content_hash != config.dataset_hash:
        raise BenchError(f"dataset {config.dataset!r} changed while the grid was running", "run the grid again")
    if config.code and config.code != provenance.code_fingerprint():
        raise BenchError("the code changed while the grid was running (its fingerprint differs)", "run the grid again")
    record = {**record, "versions": provenance.versions(), "device": provenance.device_description(device), "host": platform.node()}

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    spec = METHODS[config.method]
    context = RunContext(
        dataset=dataset,
        seed=config.seed,
        K=config.K,
        Q=config.Q,
        population_K=config.population_K,
        params=config.params_dict,
        init=config.init,
        cache_dir=Path(cache_dir),
        device=torch.device(device),
        progress=lambda phase, done, total: say(config.hash, phase, done, total),
        **({"report": report} if report is not None else {}),
    )
    method = spec.build(context)
    train0 = time.perf_counter()
    fit_info = dict(method.fit(context) or {})
    train_seconds = time.perf_counter() - train0
    fit_info.update(training_budget(config.method, spec.prepare(context), fit_info))  # budget_pairs, still_improving

    # "test" for every grid run; "val" for a tuning trial (bench/run/tune.py), which never opens a test episode
    test = dataset.episodes(config.eval_split, config.K, config.Q, config.population_K)
    frames = []
    eval0 = time.perf_counter()
    for mode in spec.modes:
        say(config.hash, f"eval {mode}", 0, len(test))
        ranks = method_ranks(method, test, mode)
        frames.append(pd.DataFrame(query_rows(ranks, list(test["query_labels"]), list(test["query_prefixes"]), mode)))
        say(config.hash, f"eval {mode}", len(test), len(test))
    queries = pd.concat(frames, ignore_index=True)
    # the per-episode table is the "all" slice of the stored ranks: one derivation for every number
    episodes = slice_metrics(queries, "all").drop(columns="n_queries")
    episodes.insert(1, "user_id", test["user_id"].astype(str).to_numpy()[episodes["episode"].to_numpy()])
    curve = pd.DataFrame(fit_info.pop("curve", []), columns=None)
    if curve.empty:
        curve = pd.DataFrame({"iteration": pd.Series(dtype="int64")})
    record.update(
        finished=_now(),
        wall_seconds=time.perf_counter() - wall0,
        cpu_seconds=time.process_time() - cpu0,
        train_seconds=fit_info.pop("train_seconds", train_seconds),
        eval_seconds=time.perf_counter() - eval0,
        n_test_episodes=len(test),
        **({"eval_split": config.eval_split} if config.eval_split != "test" else {}),
        modes=list(spec.modes),
        gru_kernel=kernel_status(),  # what the batched engine's one-layer GRU ran on (baselines/fused.py)
        fit={k: v for k, v in fit_info.items() if isinstance(v, (int, float, str, bool, list, dict, type(None)))},
    )
    return RunResult(record, episodes, curve, queries)


def write_error(store: Store, run_hash: str, text: str) -> None:
    """The traceback of a run that failed at run time, in ``runs/HASH/error.txt`` (the run stays incomplete);
    with no room to write it, the run's own error is still the one raised."""
    store.write_error(run_hash, text)


def execute_run(config: RunConfig, data_dir: str, results_dir: str, threads: int, device: str, progress: Progress | None = None) -> dict:
    """Fit and evaluate one run, write it to the store, return its run.json record. A failure no
    check could foresee leaves its traceback in ``runs/HASH/error.txt`` (the run stays incomplete)."""
    from bench.run import pruning

    store = Store(results_dir)
    record = start_record(config, threads)
    store.start_run(config.hash, record)
    spec = pruning.read_spec(store.root, config.hash)  # a tuning trial's: its study may stop it early
    wall0 = time.perf_counter()
    try:
        result = compute_run(config, data_dir, store.cache_dir, threads, device, record, progress, pruning.trial_reporter(spec) if spec else None)
    except pruning.Pruned as stop:
        pruned = {**record, "finished": _now(), "wall_seconds": time.perf_counter() - wall0, "pruned_at": stop.step, "pruned_value": stop.value}
        store.prune_run(config.hash, pruned)
        return {**pruned, "status": "pruned"}
    except BenchError:
        raise
    except Exception:
        write_error(store, config.hash, traceback.format_exc())
        raise
    store.finish_run(config.hash, result.record, result.episodes, result.curve, result.queries)
    return result.record


@dataclass
class Outcome:
    config: RunConfig
    record: dict | None
    error: str | None = None  # one line, e.g. "ValueError: ..."; the traceback is in runs/HASH/error.txt


def one_line(err: Exception) -> str:
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}" if first else type(err).__name__
