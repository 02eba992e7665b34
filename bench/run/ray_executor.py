"""`--executor ray`: the same grid, the same store and the same resume rules, on a Ray cluster.

The driver (the `bench run` process) keeps the only copy of the result store. Workers need no
shared filesystem:
- each dataset folder goes to the cluster once, as one object (relative path -> bytes); a worker
  unpacks it into node-local temp space, keyed by the dataset's content hash;
- shared prerequisites (the GRU4Rec weights of a dataset, config and seed) are Ray tasks of their
  own, one per cache key, whose output files the runs that need them receive as task arguments,
  so each is trained once cluster-wide; the driver also writes them to ``results/cache/``;
- a run returns its run.json record, per-episode metrics and curve; the driver writes them
  atomically, exactly as the local runner does, so a driver killed mid-grid resumes the same way.

A task lost with its node is retried by Ray (``max_retries``); an exception raised by the run is
not retried: the run is reported failed with its error and the grid goes on. ``ray`` is imported
only here, so the local executor never pays its start-up.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

from bench.core.atomic import atomic_write
from bench.methods.prerequisites import PREREQUISITES, prerequisites_of
from bench.plan.grid import RunConfig
from bench.run.execute import Outcome, Progress, compute_run, one_line, start_record, write_error
from bench.store.results import Store

SYSTEM_RETRIES = 3  # retries of a task whose worker or node died; a Python error is never retried
_LOCAL_TMP = "bench-ray"


# --- files as objects ---------------------------------------------------------------------------


def pack_folder(folder: Path, skip: Callable[[Path], bool] = lambda p: False) -> dict[str, bytes]:
    """Every file under ``folder`` as {relative posix path: bytes}."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file() and not skip(path)}


def _is_scratch(path: Path) -> bool:
    return path.name == "lock" or path.name.startswith(".")


def unpack_files(files: dict[str, bytes], folder: Path) -> None:
    for relpath, blob in files.items():
        target = folder / relpath
        if not target.exists():
            atomic_write(target, lambda tmp, blob=blob: tmp.write_bytes(blob))


def _node_dataset_dir(name: str, content_hash: str, files: dict[str, bytes]) -> str:
    """A node-local data dir holding dataset ``name``; unpacked once per node and content hash."""
    data_dir = Path(tempfile.gettempdir()) / _LOCAL_TMP / "data" / content_hash
    target = data_dir / "processed" / name
    if not (target / "dataset.json").is_file():
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=_ensure(data_dir.parent)))
        unpack_files(files, staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, target)  # atomic: concurrent workers of one node never see half a folder
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another worker got there first
    return str(data_dir)


def _scratch_cache(shipped: list[dict[str, bytes]]) -> Path:
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=_ensure(Path(tempfile.gettempdir()) / _LOCAL_TMP)))
    for files in shipped:
        unpack_files(files, cache)
    return cache


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _new_files(cache: Path, before: set[str]) -> dict[str, bytes]:
    return {k: v for k, v in pack_folder(cache, _is_scratch).items() if k not in before}


# --- the tasks (run on workers) -----------------------------------------------------------------


def _prerequisite_task(name: str, config: RunConfig, dataset_files: dict, threads: int, device: str, *shipped: dict) -> dict[str, bytes]:
    """Build one prerequisite; returns the cache files it added (empty if it was shipped already)."""
    import torch

    from bench.core.threads import configure_threads
    from bench.data.dataset import open_dataset
    from bench.methods.registry import RunContext

    configure_threads(threads)
    data_dir = _node_dataset_dir(config.dataset, config.dataset_hash, dataset_files)
    cache = _scratch_cache(list(shipped))
    try:
        before = set(pack_folder(cache, _is_scratch))
        ctx = RunContext(
            dataset=open_dataset(config.dataset, data_dir),
            seed=config.seed,
            K=config.K,
            Q=config.Q,
            population_K=config.population_K,  # the val episodes its per-epoch Acc@1 is measured on
            params=config.params_dict,
            init=config.init,
            cache_dir=cache,
            device=torch.device(device),
        )
        PREREQUISITES[name].build(ctx)
        return _new_files(cache, before)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _run_task(config: RunConfig, dataset_files: dict, threads: int, device: str, record: dict, queue, *shipped: dict):
    """One run on a worker: returns (RunResult, cache files it added)."""
    data_dir = _node_dataset_dir(config.dataset, config.dataset_hash, dataset_files)
    cache = _scratch_cache(list(shipped))

    def progress(run_hash: str, phase: str, done: int, total: int) -> None:
        # Fire and forget: Queue.put_nowait would ray.get() the actor's answer, and a task blocked in
        # ray.get gives its CPU back to the scheduler, which then starts another run on it (2 cores
        # ran 3 runs). A full or lost queue must never fail a run either.
        try:
            queue.actor.put_nowait.remote((run_hash, phase, done, total))
        except Exception:
            pass

    try:
        before = set(pack_folder(cache, _is_scratch))
        result = compute_run(config, data_dir, cache, threads, device, record, progress)
        return result, _new_files(cache, before)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


# --- the driver ---------------------------------------------------------------------------------


def _connect(address: str | None, cpus: int):
    if not address:
        # A local instance stays on loopback: Ray otherwise advertises the machine's network address.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return ray
    options = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address:
        ray.init(address=address, **options)
    else:  # a local instance on loopback, sized like the local pool
        ray.init(num_cpus=cpus, _node_ip_address="127.0.0.1", **options)
    return ray


def run_grid_ray(
    todo: list[RunConfig],
    data_dir: str,
    store: Store,
    threads: int,
    device: str = "cpu",
    address: str | None = None,
    cpus: int | None = None,
    on_start: Callable[[RunConfig], None] = lambda c: None,
    on_progress: Progress = lambda *a: None,
    on_done: Callable[[Outcome], None] = lambda o: None,
    poll: Callable[[], None] = lambda: None,
) -> list[Outcome]:
    """Run ``todo`` (incomplete runs) as Ray tasks; the driver writes every result to ``store``."""
    from bench.data.pipeline import processed_dir

    ray = _connect(address, cpus or os.cpu_count() or 1)
    from ray.util.queue import Queue
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    queue = Queue(maxsize=10_000, actor_options={"num_cpus": 0, "scheduling_strategy": here})
    resources = {"num_cpus": threads, "num_gpus": 1 if device.startswith("cuda") else 0}
    run_remote = ray.remote(max_retries=SYSTEM_RETRIES, retry_exceptions=False, **resources)(_run_task)
    prereq_remote = ray.remote(max_retries=SYSTEM_RETRIES, retry_exceptions=False, **resources)(_prerequisite_task)

    datasets = {c.dataset for c in todo}
    dataset_refs = {name: ray.put(pack_folder(processed_dir(data_dir) / name, _is_scratch)) for name in datasets}
    cached = ray.put(pack_folder(store.cache_dir, _is_scratch) if store.cache_dir.is_dir() else {})

    prereq_refs: dict[str, object] = {}
    for config in todo:
        for name, key in prerequisites_of(config):
            if key not in prereq_refs:
                prereq_refs[key] = prereq_remote.remote(name, config, dataset_refs[config.dataset], threads, device, cached)

    pending: dict[object, RunConfig] = {}
    for config in todo:
        record = start_record(config, threads)
        store.start_run(config.hash, record)
        on_start(config)
        needs = [prereq_refs[key] for _, key in prerequisites_of(config)]
        pending[run_remote.remote(config, dataset_refs[config.dataset], threads, device, record, queue, cached, *needs)] = config

    outcomes: list[Outcome] = []
    written: set[str] = set()

    def save_cache(files: dict[str, bytes]) -> None:
        fresh = {k: v for k, v in files.items() if k not in written}
        unpack_files(fresh, store.cache_dir)
        written.update(fresh)

    waiting_prereqs = dict(prereq_refs)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
        while not queue.empty():
            on_progress(*queue.get_nowait())
        poll()
        ready, _ = ray.wait(list(waiting_prereqs.values()), num_returns=len(waiting_prereqs), timeout=0) if waiting_prereqs else ([], [])
        for key in [k for k, ref in waiting_prereqs.items() if ref in ready]:
            try:
                save_cache(ray.get(waiting_prereqs.pop(key)))
            except Exception:  # the runs that need it fail with the same error and are reported
                pass
        for ref in done:
            config = pending.pop(ref)
            try:
                result, files = ray.get(ref)
            except Exception as error:  # the run raised (never retried) or was lost more often than retried
                write_error(store, config.hash, _error_text(error))
                outcome = Outcome(config, None, one_line(getattr(error, "cause", None) or error))
            else:
                save_cache(files)
                store.finish_run(config.hash, result.record, result.episodes, result.curve, result.queries)
                outcome = Outcome(config, result.record)
            outcomes.append(outcome)
            on_done(outcome)
    while not queue.empty():
        on_progress(*queue.get_nowait())
    return outcomes


def _error_text(error: BaseException) -> str:
    """The worker's traceback where Ray carries one (RayTaskError), else this side's."""
    cause = getattr(error, "traceback_str", None)
    return str(cause) if cause else "".join(traceback.format_exception(error))


def shutdown() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
