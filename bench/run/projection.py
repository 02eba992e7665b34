"""`python -m bench project`: what a grid would cost, projected from the measured runs of a cheaper
grid that declares the same runs at a smaller training budget (e.g. `full` from `full-short`).

Everything it prints is a PROJECTION, labelled so: no run is made at the target's budget. Each run
of the target grid is matched to the source grid's run with the same dataset, method, init, seed,
K, Q and every parameter but the budget keys (``BUDGET_KEYS``); its measured costs are scaled:

- meta-learned runs (their MethodSpec's ``budget`` META_ITERATIONS: MAML, ANIL, Meta-SGD):
  measured seconds per meta-iteration (validation excluded, ``fit.seconds_per_iteration``) x the
  target's iterations, plus measured seconds per validation x the target's validations (one before
  training and one every ``val_every``), plus the test evaluation as measured. Where the target
  sets ``val_patience`` (early stopping, meta/maml.py) and the source run's measured validation
  curve (same ``val_every``) shows where that patience runs out within the target's budget, the
  target's iterations are that measured stop point ("projected from measured stop points": a run
  stopped by patience trains exactly as the run without it up to its stop); otherwise the full budget;
- runs that train by epochs (``budget`` EPOCHS: GRU4Rec, SASRec): measured seconds per epoch x the
  target's ``max_epochs`` (an upper bound: early stopping may end them sooner), plus evaluation as measured;
- every other run (no budget parameter): as measured.

With a speed-up (``load_speedup``: a `bench perf full --json` file that timed batched-v1,
i.e. results/reference/perf-full.json, since batched-v1 is gone), the meta-learned
runs measured on engine "batched" have their seconds per meta-iteration and per validation divided
by that file's measured batched/batched-v1 ratios (at the run's thread count when the file has it,
else at its first): a projection of what those runs would cost on today's engine, assuming they
were measured on batched-v1; their test evaluation is kept as measured. Runs whose record says
their GRU ran on the compiled kernel (``gru_kernel``, baselines/fused.py) are today's engine already:
never scaled.

The runs are then placed longest first on the least loaded of W single-thread workers, the way
``--jobs W`` (or a Ray cluster of W CPUs) would run them if every run cost the same whoever runs
beside it, and prerequisites (cached GRU4Rec/SASRec weights) are ignored: a lower bound on wall
time for W workers. The longest single run is a floor that no number of workers beats.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pandas as pd

from bench.core.errors import BenchError
from bench.methods.registry import EPOCHS, META_ITERATIONS, get_method
from bench.plan.grid import RunConfig, expand, load_grid
from bench.store.results import Store
from meta.maml import stop_iteration

BUDGET_KEYS = ("meta_iterations", "val_every", "max_epochs", "val_patience")  # val_patience: early stopping ends the budget sooner
WORKERS = (2, 8, 16, 32, 64)


@dataclass(frozen=True)
class Projected:
    cell: str
    seed: int
    measured_s: float  # the source run's wall seconds
    projected_s: float
    how: str  # which scaling applied
    stop: str | None = None  # with val_patience: MEASURED_STOP or FULL_BUDGET; None without early stopping
    stop_at: int | None = None  # the measured stop point (meta-iteration), where one was projected
    budget: int | None = None  # the target's meta_iterations (meta-learned runs only)
    lost: float | None = None  # with a stop: val Acc@1 the measured curve reaches after it, above its best up to it (0: none); None: unknown


MEASURED_STOP = "projected from measured stop points"
FULL_BUDGET = "no measured stop point: the full budget"


def _match_key(method: str, init, seed: int, dataset: str, K: int, Q: int, params: dict) -> str:
    kept = {k: v for k, v in params.items() if k not in BUDGET_KEYS}
    return json.dumps([method, init, seed, dataset, K, Q, kept], sort_keys=True, default=str)


def _key(config: RunConfig) -> str:
    return _match_key(config.method, config.init, config.seed, config.dataset, config.K, config.Q, config.params_dict)


def _record_key(record: dict) -> str:
    c = record["config"]
    return _match_key(c["method"], c.get("init"), c["seed"], c["dataset"], c["K"], c["Q"], c["params"])


def _validations(iterations: int, val_every: int) -> int:
    return 1 + iterations // val_every  # meta/maml.py validates before training and every val_every


SPEEDUP_ENGINE = "batched"  # the engine whose runs a perf speed-up applies to


def load_speedup(path) -> dict:
    """The measured batched/batched-v1 ratios of a `bench perf full --json` file that timed batched-v1:
    {"path", "by_threads": {threads: {"iteration", "validation"}}, "default": threads}."""
    from pathlib import Path

    try:
        figures = json.loads(Path(path).read_text())["full"]
        by_threads = {int(t): {k: float(v["ratios"][k]) for k in ("iteration", "validation")} for t, v in figures["threads"].items()}
        default = int(figures["thread_count"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BenchError(
            f"{path} holds no batched/batched-v1 ratios ({type(error).__name__}: {error})",
            "give results/reference/perf-full.json (batched-v1 is gone: no new perf run measures it)",
        ) from None
    if default not in by_threads or any(r[k] <= 0 for r in by_threads.values() for k in r):
        raise BenchError(f"{path} holds no usable speed-up ratios", "give results/reference/perf-full.json")
    return {"path": str(path), "by_threads": by_threads, "default": default}


def speedup_for(speedup: dict | None, record: dict) -> tuple[dict, int] | None:
    """(ratios, thread count they were measured at) for a run record, or None (no speed-up applies:
    another engine, or a run that already ran on today's engine, its GRU on the compiled kernel)."""
    if not speedup or record["config"].get("engine", record["config"]["params"].get("engine")) != SPEEDUP_ENGINE:
        return None
    if record.get("gru_kernel") == "fused C++ kernel":
        return None
    threads = record.get("threads")
    threads = int(threads) if threads is not None and int(threads) in speedup["by_threads"] else speedup["default"]
    return speedup["by_threads"][threads], threads


def measured_stop(target: RunConfig, record: dict, curve: pd.DataFrame | None) -> int | None:
    """The meta-iteration at which ``target`` (its ``val_patience`` set) stops early, read from its
    measured counterpart's validation curve (``record``'s, same ``val_every``: the same validations
    up to the stop); None: no early stopping, another validation schedule, or no stop within the
    target's budget in what was measured (the source's budget or patience ended its curve first)."""
    params, source = target.params_dict, record["config"]["params"]
    patience, val_every = params.get("val_patience"), int(params.get("val_every") or 0)
    if not patience or curve is None or not {"iteration", "val_acc@1"} <= set(curve.columns):
        return None
    if val_every <= 0 or int(source.get("val_every") or 0) != val_every:
        return None
    budget = int(params["meta_iterations"])
    points = [(int(i), float(a)) for i, a in zip(curve["iteration"], curve["val_acc@1"]) if int(i) % val_every == 0 and int(i) <= budget]
    stop = stop_iteration(sorted(points), int(patience), bool(params.get("select_init")))
    return stop if stop is not None and stop < budget else None


def val_lost(curve: pd.DataFrame, stop: int, budget: int, select_init: bool = False) -> float | None:
    """What stopping at ``stop`` costs in val Acc@1, read from a measured curve of the same run without
    early stopping: its best validation up to ``budget`` minus its best up to ``stop`` (both among the
    checkpoint candidates: the start only with ``select_init``); 0 when nothing later beats the stop's
    best; None when the curve does not reach ``budget`` (what came after was not measured)."""
    points = [(int(i), float(a)) for i, a in zip(curve["iteration"], curve["val_acc@1"]) if int(i) <= budget]
    if not points or max(i for i, _ in points) < budget:
        return None
    candidates = [(i, a) for i, a in points if i > 0 or select_init]
    before = max((a for i, a in candidates if i <= stop), default=float("-inf"))
    return max(a for _, a in candidates) - before  # >= 0: the later best includes the earlier


def project_run(target: RunConfig, record: dict, curve_rows: int, speedup: dict | None = None, curve: pd.DataFrame | None = None) -> Projected:
    """One target run's projected wall seconds from its measured counterpart ``record`` (run.json)
    and the number of rows of that run's curve (validations, or epochs); ``speedup``: see
    ``load_speedup`` (meta-learned runs on engine "batched" only); ``curve``: the counterpart's
    stored curve, where a target with ``val_patience`` reads its stop point (``measured_stop``)."""
    fit, measured = record.get("fit", {}), float(record["wall_seconds"])
    evaluation = float(record.get("eval_seconds", 0.0))
    params, source = target.params_dict, record["config"]["params"]
    budget = get_method(target.method).budget
    early = None  # with val_patience: whether a measured stop point or the full budget was projected
    stop = budget_iterations = lost = None
    if budget == META_ITERATIONS and "seconds_per_iteration" in fit:  # meta-learned (and meta-trained)
        per_iteration = float(fit["seconds_per_iteration"])
        per_validation = float(fit["val_seconds"]) / max(curve_rows, 1)
        scaled = speedup_for(speedup, record)
        if scaled is not None:
            ratios, _ = scaled
            per_iteration, per_validation = per_iteration / ratios["iteration"], per_validation / ratios["validation"]
        budget_iterations, stop = int(params["meta_iterations"]), measured_stop(target, record, curve)
        iterations = budget_iterations if stop is None else stop
        if stop is not None:
            lost = val_lost(curve, stop, budget_iterations, bool(params.get("select_init")))
        validations = _validations(iterations, int(params["val_every"]))
        seconds = per_iteration * iterations + per_validation * validations + evaluation
        how = f"{iterations} it x {per_iteration:.2f}s + {validations} val x {per_validation:.1f}s + test"
        if params.get("val_patience"):
            early = MEASURED_STOP if stop is not None else FULL_BUDGET
            detail = f"stops at {stop} of {budget_iterations}" if stop is not None else f"{budget_iterations}"
            how += f" (val_patience {params['val_patience']}: {early}, {detail})"
        if scaled is not None:
            how += (
                f" (measured costs / {scaled[0]['iteration']:.2f} per it, / {scaled[0]['validation']:.2f} per val: perf speed-up at "
                f"{scaled[1]} thread(s))"
            )
    elif budget == EPOCHS and "max_epochs" in params:  # its curve has one row per epoch
        per_epoch = float(record["train_seconds"]) / max(curve_rows, 1)
        epochs = int(params["max_epochs"])
        seconds = per_epoch * epochs + evaluation
        how = f"<= {epochs} epochs x {per_epoch:.0f}s + test (ran {curve_rows} of {source.get('max_epochs')})"
    else:
        seconds, how = measured, "as measured"
    return Projected(target.cell, target.seed, measured, seconds, how, early, stop, budget_iterations, lost)


def schedule(durations: list[float], workers: int) -> float:
    """Wall time of independent jobs on ``workers`` workers, longest first to the least loaded."""
    loads = [0.0] * workers
    for duration in sorted(durations, reverse=True):
        loads[loads.index(min(loads))] += duration
    return max(loads)


def project_grid(
    target_name: str,
    source_name: str,
    results_dir: str = "results",
    speedup: dict | None = None,
    seeds: list[int] | None = None,
    overrides: dict | None = None,
) -> list[Projected]:
    """Every run of ``target_name``, projected from the complete runs of ``source_name`` in the store
    (with ``speedup``, see ``load_speedup``); refused in one line when a target run has no measured
    counterpart. ``seeds``: only those seeds of the source were run; a target run of another seed is
    projected from the first of them's run of the same cell (seeds change draws, not the work),
    and says so. ``overrides``: parameters set in every target method that has them (``run --set``),
    e.g. {"val_patience": 10} to replay a patience on the source runs' curves."""
    return project_grids(target_name, source_name, [overrides], results_dir, speedup, seeds)[0]


def project_grids(
    target_name: str,
    source_name: str,
    variants: list[dict | None],
    results_dir: str = "results",
    speedup: dict | None = None,
    seeds: list[int] | None = None,
) -> list[list[Projected]]:
    """``project_grid`` once per entry of ``variants`` (its ``overrides``), reading the store and each
    source run's curve once for all of them."""
    target, source = load_grid(target_name), load_grid(source_name)
    store = Store(results_dir, create=False)
    records = store.complete_runs()
    versions = {r["config"]["dataset"]: r["config"]["dataset_hash"] for r in records if r["config"]["dataset"] in target.datasets}
    if set(versions) != set(target.datasets):
        raise BenchError(
            f"no complete runs of dataset(s) {', '.join(sorted(set(target.datasets) - set(versions)))} in {store.root}",
            f"run `python -m bench run --grid {source_name}` first",
        )
    source_hashes = {run.hash for run in expand(source, versions, seeds)}
    measured = {_record_key(r): r for r in records if r["hash"] in source_hashes}
    curves: dict[str, pd.DataFrame] = {}  # source run hash -> its curve, read (checked against its run.json) once
    out = []
    for overrides in variants:
        projected, missing = [], []
        for run in expand(target, versions, overrides=overrides):
            stand_in = seeds is not None and run.seed not in seeds
            record = measured.get(_key(dataclasses.replace(run, seed=seeds[0]) if stand_in else run))
            if record is None:
                missing.append(f"{run.cell} seed={run.seed if not stand_in else seeds[0]}")
                continue
            if record["hash"] not in curves:
                curves[record["hash"]] = store.read_curve(record["hash"])
            curve = curves[record["hash"]]
            result = project_run(run, record, len(curve), speedup, curve)
            projected.append(dataclasses.replace(result, how=f"{result.how} (seed {seeds[0]}'s run)") if stand_in else result)
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise BenchError(
                f"{len(missing)} run(s) of grid {target_name!r} have no complete counterpart in grid {source_name!r}: {', '.join(missing[:3])}{more}",
                f"run `python -m bench run --grid {source_name}` to the end, or project from a grid that declares the same runs",
            )
        out.append(projected)
    return out


@dataclass(frozen=True)
class PatienceReplay:
    """One ``val_patience`` replayed on a grid's measured curves (``replay_patience``): a PROJECTION of
    which meta-learned runs it stops, what the measured curves show they would lose, and the cost."""

    patience: int | None  # None: the grid as declared
    meta_runs: int  # meta-learned runs (those a patience can stop)
    stopped: tuple[Projected, ...]  # runs it stops before their budget (measured stop points)
    trained: int  # meta-iterations trained over the meta-learned runs
    budget: int  # their budget of meta-iterations
    durations: tuple[float, ...]  # every run's projected seconds

    @property
    def cut(self) -> tuple[Projected, ...]:
        """Stopped runs whose measured curve later beats their best up to the stop (on val)."""
        return tuple(r for r in self.stopped if r.lost is not None and r.lost > 0)

    @property
    def unknown(self) -> int:
        """Stopped runs whose measured curve ends before the budget: what they would lose is unmeasured."""
        return sum(r.lost is None for r in self.stopped)


def replay_patience(
    target_name: str,
    source_name: str,
    patiences: list[int],
    results_dir: str = "results",
    speedup: dict | None = None,
    seeds: list[int] | None = None,
) -> list[PatienceReplay]:
    """The grid as declared, then with each of ``patiences`` as its ``val_patience``, projected from the
    source runs' measured curves: which runs stop, what they lose on val, what the grid costs."""
    variants = project_grids(target_name, source_name, patience_variants(patiences), results_dir, speedup, seeds)
    return [summarize_patience(patience, runs) for patience, runs in zip([None, *patiences], variants)]


def patience_variants(patiences: list[int]) -> list[dict | None]:
    """``project_grids``'s variants for a replay: the grid as declared, then each patience."""
    return [None, *({"val_patience": patience} for patience in patiences)]


def summarize_patience(patience: int | None, runs: list[Projected]) -> PatienceReplay:
    """One replay row from a grid's projected runs with that ``val_patience`` (None: as declared)."""
    meta = [r for r in runs if r.budget is not None]
    return PatienceReplay(
        patience,
        len(meta),
        tuple(r for r in meta if r.stop_at is not None),
        sum(r.stop_at if r.stop_at is not None else r.budget for r in meta),
        sum(r.budget for r in meta),
        tuple(r.projected_s for r in runs),
    )
