"""Equal-budget hyperparameter search on validation only (`python -m bench tune`).

Every tuned cell of a grid (one per dataset, K, Q and cell label, at the grid's first seed) gets the
same N trials (completed + pruned; failed ones are reported, not counted) over the method's declared
search space (its MethodSpec's ``space``, bench/methods/registry.py). A trial
is a normal run (bench.plan.grid.RunConfig) whose identity carries ``eval_split = "val"``: compute_run
scores it on the val episodes, so no trial ever opens a test episode, and its stored per-episode
metrics are val metrics.
The objective is the cell's mean val Acc@1 in few-shot mode where the method has one, else zero-shot.

The sampler (bench.run.studies.sampler_settings): Optuna's TPE with its start-up count set from N (a
third of N, at least 2, at most 10; trial 0 counts toward it): the start-up trials are random, every
later one is proposed by TPE, which reads every finished trial from the study at each ask. Each trial
records who proposed it (user attr ``sampled_by``: grid, random or tpe).

Storage: trials are runs of their own store, ``<results>/tuning`` (runs/<hash>/, cache/), written by
the normal run function through ``run_grid`` (so grid reports of ``<results>`` never see a val run);
each cell's study is an Optuna JournalStorage file ``<results>/tuning/<grid>/<cell>.log``
(bench/run/studies.py opens and summarizes them). Resume: a
trial asked by a killed process (still RUNNING in the journal) is run again with the params it was
given, a trial whose run is already complete in the store is read, not recomputed, and the sampler is
reseeded before each ask from (grid, cell, grid seed, trials so far), so an interrupted study asks
what an uninterrupted one would (with ``jobs`` = 1). Trial 0 is the grid's own (untuned) settings,
enqueued, so the untuned val score is measured the same way.

Warm starts: a cell whose weights start from a GRU4Rec (maml[gru4rec], gru4rec-finetune, ...) or from
SASRec (sasrec-finetune) is tuned after the gru4rec (sasrec) cell, and its trials use that cell's best
params (its space's keys: lr, dropout) for the pretrained model: a warm start's init entries
(init_lr, init_dropout; bench.methods.registry.warm_keys), its own dropout untouched.

Pruning (bench/run/pruning.py): an iterative trial reports the val Acc@1 of the weights it would keep
after each validation (MAML family: every val_every iterations; GRU4Rec, SASRec: every epoch) and stops
when the median rule says so, never before half its budget nor before half the cell's trials are
complete; a pruned trial counts toward N (as Optuna counts it) and its run is stored as "pruned". The
study records the cell's budget per trial and the summary what its trials trained (CellSummary).
``--pruner none`` runs every trial's whole budget. With jobs > 1, which trials are pruned can depend
on timing (a trial compares with those finished when it reports). Trials run on the local executor,
whose workers read the driver's study file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.core.params import Space
from bench.methods import registry
from bench.methods.registry import FEW_SHOT, ZERO_SHOT, get_method
from bench.plan.grid import Grid, RunConfig, cell_fixed_keys, cell_label
from bench.run import pruning
from bench.run.executors import run_grid
from bench.run.studies import (
    BUDGET_PARAM,
    SAMPLED_BY,
    TUNING_DIR,
    CellSummary,
    load_optuna,
    make_sampler,
    open_study,
    sampler_settings,
    study_path,
    summarize,
    tuning_store,
)
from bench.store.results import Store
from meta.inits import INITS

METRIC = "acc@1"
SPLIT = "val"


def objective_mode(method: str) -> str:
    """Few-shot where the method adapts, else zero-shot."""
    return FEW_SHOT if FEW_SHOT in get_method(method).modes else ZERO_SHOT


@dataclass(frozen=True)
class TuneCell:
    """One tuned cell: the grid's run at its first seed (untuned), its space, and its warm-start source."""

    base: RunConfig
    space: dict[str, Space]
    key: str  # the study's name and file stem
    warm_from: str | None = None  # cell label whose best params its pretrained model takes
    warm_keys: tuple[str, ...] = ()

    @property
    def unit(self) -> tuple[str, int, int, str]:
        return (self.base.dataset, self.base.K, self.base.Q, self.base.cell)

    @property
    def budget(self) -> tuple[str | None, int | None]:
        """(MethodSpec.budget, the steps one trial may train: its max_epochs or meta_iterations); (None,
        None) for a method without a training budget. Budgets are never tuned: every trial has the cell's."""
        kind = get_method(self.base.method).budget
        value = self.base.params_dict.get(BUDGET_PARAM.get(kind, ""))
        return (kind, int(value)) if kind is not None and value is not None else (None, None)


def warm_source(method: str, init: str | None) -> str | None:
    """The cell label whose tuned best this one's pre-trained model takes (bench.methods.registry.warm_source),
    or None: for an init, the source cell trained the way the init trains it (e.g. train_users=episode-users)."""
    source = registry.warm_source(method, init)
    if source is None:
        return None
    defaults = get_method(source).defaults  # what the source method already trains by default is no sweep of its cell
    pretraining = INITS[init].pretraining if init in INITS else {}
    return cell_label(source, None, {key: value for key, value in pretraining.items() if defaults.get(key) != value})


def tune_cells(grid: Grid, runs: list[RunConfig]) -> tuple[list[TuneCell], list[tuple[str, str]]]:
    """The cells to tune (sources of warm starts first) and (label, why) for those not tuned.
    ``runs``: the grid expanded at one seed."""
    fixed = cell_fixed_keys(grid)
    versions = {(r.dataset, r.K, r.Q) for r in runs}
    cells, skipped = [], []
    for run in runs:
        spec = get_method(run.method)
        if not spec.space:
            skipped.append((run.cell, spec.not_tuned or "no search space declared in its MethodSpec (bench/methods/registry.py)"))
            continue
        space = {k: v for k, v in spec.space.items() if k not in fixed.get(run.cell, set())}
        if not space:
            skipped.append((run.cell, "every param of its search space is fixed by the cell"))
            continue
        key = run.cell if len(versions) == 1 else f"{run.dataset} K{run.K} Q{run.Q} {run.cell}"
        source = warm_source(run.method, run.init)
        warm_from, warm_keys = None, ()
        if source is not None:
            # the source cell, by label: "gru4rec", or e.g. "gru4rec train_users=episode-users" for that init
            match = [r for r in runs if (r.dataset, r.K, r.Q, r.cell) == (run.dataset, run.K, run.Q, source) and get_method(r.method).space]
            if match:
                warm_from = source
                source_space = get_method(match[0].method).space
                own = registry.warm_keys(run.method, run.init, source_space)  # a warm start's init entries (init_lr, init_dropout)
                warm_keys = tuple(k for k in own if k not in fixed.get(run.cell, set()) and k in run.params_dict)
        cells.append(TuneCell(run, space, key, warm_from, warm_keys))
    cells.sort(key=lambda c: c.warm_from is not None)  # stable: sources first
    return cells, list(dict.fromkeys(skipped))


def cell_seed(grid_name: str, label: str, grid_seed: int, n_before: int = 0) -> int:
    """The TPE seed of a cell's next ask: a hash of the grid name, cell label, grid seed and trials so far."""
    blob = json.dumps([grid_name, label, int(grid_seed), int(n_before)])
    return int(hashlib.sha256(blob.encode()).hexdigest()[:8], 16)


def trial_config(cell: TuneCell, values: dict[str, Any], base_params: dict[str, Any] | None = None) -> RunConfig:
    """The trial's run: ``base_params`` (default: the cell's) with ``values``, scored on val."""
    spec = get_method(cell.base.method)
    params = {**(base_params if base_params is not None else cell.base.params_dict)}
    params.update({key: spec.parse_param(key, value) for key, value in values.items()})
    params = spec.run_params(cell.base.init, params)
    return dataclasses.replace(cell.base, params=tuple(sorted(params.items())), eval_split=SPLIT)


def val_score(store: Store, run_hash: str, mode: str) -> float:
    """Mean Acc@1 of a complete trial run's val episodes in ``mode`` (its file checked: DamagedRun otherwise)."""
    episodes = store.read_episodes(run_hash)  # checked against its run.json (a damaged trial is named, never scored)
    rows = episodes[episodes["mode"] == mode]
    return float(rows[METRIC].mean())


def _suggest(trial, space: dict[str, Space]) -> dict[str, Any]:
    values = {}
    for name, sp in space.items():
        if sp.kind == "float":
            values[name] = trial.suggest_float(name, sp.low, sp.high, log=sp.log)
        elif sp.kind == "int":
            values[name] = trial.suggest_int(name, int(sp.low), int(sp.high), log=sp.log)
        else:
            values[name] = trial.suggest_categorical(name, list(sp.choices))
    return values


Notice = Callable[[str], None]


@dataclass(frozen=True)
class Pending:
    """A trial to run in this pass: its number and storage id, its run, and the Trial if asked here
    (None: recovered from a killed process)."""

    number: int
    trial_id: int
    config: RunConfig
    trial: Any = None


def run_study(
    cell: TuneCell,
    grid: Grid,
    results_dir,
    data_dir: str,
    n_trials: int,
    jobs: int = 1,
    timeout: float | None = None,
    warm_params: dict | None = None,
    device: str = "cpu",
    notice: Notice = lambda line: None,
    pruner: dict | None = None,
) -> CellSummary:
    """Run (or resume) one cell's study until it has ``n_trials`` completed + pruned trials, or
    ``n_trials`` failed ones, or ``timeout`` seconds spent on it (all sessions together). ``pruner``:
    bench.run.pruning's rule (default its PRUNER; ``NONE``: every trial runs whole), made the cell's by
    ``pruning.cell_pruner`` from its budget and N.
    Each pass recovers the trials a killed process left running, asks new ones, runs them, tells."""
    store = tuning_store(results_dir)
    unit, budget = cell.budget
    pruner = pruning.cell_pruner(pruner or pruning.PRUNER, budget, n_trials, unit)
    sampler = sampler_settings(n_trials)
    path = study_path(results_dir, grid.name, cell.key)
    study = open_study(path, cell.key, pruner_settings=pruner)
    describe_study(study, cell, grid.name, n_trials, warm_params, pruner, sampler)
    base_params = {**cell.base.params_dict, **(warm_params or {})}
    label, mode = cell.base.cell, objective_mode(cell.base.method)
    while True:
        stale, counted = trial_counts(study)
        if not stale and study_done(study, store, label, counted, n_trials, timeout, notice):
            break
        batch = recover(study, cell, stale, base_params)
        batch += ask(study, cell, grid.name, base_params, max(0, min(jobs, n_trials - counted - len(stale))), sampler)
        errors = run_trials(batch, store, path, cell.key, pruner, data_dir, jobs, device)
        tell(study, batch, store, mode, errors, label, notice)
    return summarize(study, store)


def describe_study(study, cell: TuneCell, grid_name: str, n_trials: int, warm_params: dict | None, pruner: dict, sampler: dict) -> None:
    """Record what the study tunes, how (sampler, pruner) and each trial's budget (its user attrs) and,
    in a new study, enqueue trial 0: the grid's own settings, measured the same way."""
    attrs = {
        "grid": grid_name,
        "cell": cell.base.cell,
        "dataset": cell.base.dataset,
        "dataset_hash": cell.base.dataset_hash,
        "K": cell.base.K,
        "Q": cell.base.Q,
        "seed": cell.base.seed,
        "split": SPLIT,
        "metric": METRIC,
        "mode": objective_mode(cell.base.method),
        "space": list(cell.space),
        "space_text": {k: v.describe() for k, v in cell.space.items()},
        "warm_from": cell.warm_from,
        "warm_params": warm_params or {},
        "n_trials": n_trials,
        "timed_out": False,
        "pruner": pruning.describe(pruner),
        "pruner_settings": pruner,
        "sampler": sampler,
        "budget_unit": cell.budget[0],
        "budget": cell.budget[1],
    }
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    if not study.get_trials(deepcopy=False):
        study.enqueue_trial({k: cell.base.params_dict[k] for k in cell.space}, user_attrs={"untuned": True})


def trial_counts(study) -> tuple[list, int]:
    """(the trials still RUNNING: asked by a process that was killed, completed + pruned trials)."""
    states = load_optuna().trial.TrialState
    trials = study.get_trials(deepcopy=False)
    return [t for t in trials if t.state == states.RUNNING], sum(t.state in (states.COMPLETE, states.PRUNED) for t in trials)


def study_done(study, store: Store, label: str, counted: int, n_trials: int, timeout: float | None, notice: Notice) -> bool:
    """Whether a study with no trial left running stops here: ``counted`` (completed + pruned) reached
    N, N trials failed, or its trial runs spent ``timeout`` seconds (all sessions together)."""
    states = load_optuna().trial.TrialState
    failed = sum(t.state == states.FAIL for t in study.get_trials(deepcopy=False))
    if counted >= n_trials:
        return True
    if failed >= n_trials:
        notice(f"tune {label}: {failed} trials failed; stopped at {counted} of {n_trials}")
        return True
    if timeout is not None:
        spent = summarize(study, store).seconds
        if spent >= timeout:
            study.set_user_attr("timed_out", counted < n_trials)
            notice(f"tune {label}: --timeout-per-cell {timeout:g} s reached after {counted} of {n_trials} trials ({spent:.0f} s)")
            return True
    return False


def recover(study, cell: TuneCell, stale: list, base_params: dict) -> list[Pending]:
    """The trials a killed process left RUNNING, to run again with the params they were given; one
    killed while it was being asked (no params yet) is told failed."""
    states = load_optuna().trial.TrialState
    batch = []
    for t in stale:
        if "params" not in t.user_attrs and set(t.params) != set(cell.space):
            study.tell(t.number, state=states.FAIL)
            continue
        batch.append(Pending(t.number, t._trial_id, _stale_config(cell, t, base_params)))
    return batch


def ask(study, cell: TuneCell, grid_name: str, base_params: dict, count: int, sampler: dict) -> list[Pending]:
    """``count`` new trials, the sampler (``sampler``: bench.run.studies.sampler_settings) made anew
    before each ask with a seed from (grid, cell, grid seed, trials so far), so that an interrupted study
    asks what an uninterrupted one would (TPE loses nothing: it reads every finished trial from the study
    at each ask); trial 0 keeps the grid's params. Each trial records who proposed it (``SAMPLED_BY``)."""
    states = load_optuna().trial.TrialState
    batch = []
    for _ in range(count):
        n_before = len(study.get_trials(deepcopy=False))
        finished = len(study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED)))  # what TPE's start-up counts
        study.sampler = make_sampler(sampler, cell_seed(grid_name, cell.base.cell, cell.base.seed, n_before))
        trial = study.ask()
        values = _suggest(trial, cell.space)
        untuned = bool(trial.user_attrs.get("untuned"))
        config = trial_config(cell, values, cell.base.params_dict if untuned else base_params)
        trial.set_user_attr(SAMPLED_BY, "grid" if untuned else "tpe" if finished >= sampler["n_startup_trials"] else "random")
        trial.set_user_attr("hash", config.hash)
        trial.set_user_attr("params", config.params_dict)
        batch.append(Pending(trial.number, trial._trial_id, config, trial))
    return batch


def run_trials(batch: list[Pending], store: Store, path: Path, key: str, pruner: dict, data_dir: str, jobs: int, device: str) -> dict[str, str]:
    """Run the batch's distinct runs (a run already pruned, by a killed driver or a config TPE asked
    again, is not run again), each reporting its val curve to its trial; {run hash: error}."""
    unique = list({p.config.hash: (p.trial_id, p.config) for p in batch if not store.is_pruned(p.config.hash)}.values())
    for trial_id, config in unique:  # the worker reports its val curve to this trial (bench/run/pruning.py)
        pruning.write_spec(store.root, config.hash, path, key, trial_id, pruner)
    try:
        outcomes = run_grid([config for _, config in unique], data_dir, store, jobs, device)
    finally:
        for _, config in unique:
            pruning.clear_spec(store.root, config.hash)
    return {o.config.hash: o.error for o in outcomes if o.error}


def tell(study, batch: list[Pending], store: Store, mode: str, errors: dict[str, str], label: str, notice: Notice) -> None:
    """Tell each trial of the batch what its run came to: its val score in ``mode``, pruned, or failed
    (its error kept on a trial asked here)."""
    states = load_optuna().trial.TrialState
    for p in batch:
        if store.is_complete(p.config.hash):
            study.tell(p.number, val_score(store, p.config.hash, mode))
        elif store.is_pruned(p.config.hash):
            study.tell(p.number, state=states.PRUNED)
            notice(f"tune {label}: trial {p.number} pruned at step {store.read_run(p.config.hash).get('pruned_at')}")
        else:
            error = errors.get(p.config.hash, "run incomplete")
            if p.trial is not None:
                p.trial.set_user_attr("error", error)
            study.tell(p.number, state=states.FAIL)
            notice(f"tune {label}: trial {p.number} failed: {error}")


def _stale_config(cell: TuneCell, trial, base_params: dict) -> RunConfig:
    """The run a trial left RUNNING by a killed process was given (its stored params), else rebuilt."""
    if "params" in trial.user_attrs:
        return dataclasses.replace(cell.base, params=tuple(sorted(trial.user_attrs["params"].items())), eval_split=SPLIT)
    untuned = bool(trial.user_attrs.get("untuned"))
    return trial_config(cell, dict(trial.params), cell.base.params_dict if untuned else base_params)


def best_warm_params(results_dir, grid: Grid, cells: list[TuneCell], cell: TuneCell) -> dict | None:
    """The best params (the warm keys) of the cell ``cell`` starts from, from its study; None if none."""
    if cell.warm_from is None:
        return None
    source = next((c for c in cells if c.unit == (cell.base.dataset, cell.base.K, cell.base.Q, cell.warm_from)), None)
    if source is None:
        return None
    study = open_study(study_path(results_dir, grid.name, source.key), source.key, create=False)
    if study is None:
        return None
    summary = summarize(study, tuning_store(results_dir))
    if summary.best_number is None:
        return None
    params = study.trials[summary.best_number].user_attrs.get("params", {})
    sources = registry.warm_keys(cell.base.method, cell.base.init, params)
    return {k: params[sources[k]] for k in cell.warm_keys if sources.get(k) in params}


def tune_grid(
    grid: Grid,
    runs: list[RunConfig],
    results_dir,
    data_dir: str,
    n_trials: int,
    jobs: int = 1,
    timeout: float | None = None,
    device: str = "cpu",
    notice: Notice = print,
    pruner: dict | None = None,
) -> list[CellSummary]:
    """Tune every cell of ``runs`` (the grid at its first seed) with ``n_trials`` trials each."""
    if n_trials < 1:
        raise BenchError(f"--trials {n_trials} must be at least 1", "write e.g. --trials 8")
    cells, skipped = tune_cells(grid, runs)
    for label, why in skipped:
        notice(f"not tuned: {label} ({why})")
    startup = sampler_settings(n_trials)["n_startup_trials"]
    if n_trials - startup < 2:
        notice(
            f"--trials {n_trials}: TPE proposes {max(0, n_trials - startup)} trial(s) per cell after its {startup} start-up trials "
            "(trial 0 the grid's, the rest random); use --trials 4 or more for a model-based search"
        )
    summaries = []
    for cell in cells:
        warm = best_warm_params(results_dir, grid, cells, cell)
        if cell.warm_from is not None and warm is None:
            notice(f"tune {cell.base.cell}: the {cell.warm_from} cell has no tuned best; its pretrained model keeps the grid's params")
        t0 = time.perf_counter()
        summary = run_study(cell, grid, results_dir, data_dir, n_trials, jobs, timeout, warm, device, notice, pruner)
        notice(
            f"tuned {cell.base.cell}: {summary.complete + summary.pruned} trials ({summary.failed} failed), "
            f"best val {METRIC} {summary.best_val if summary.best_val is not None else float('nan'):.4f} "
            f"(untuned {summary.untuned_val if summary.untuned_val is not None else float('nan'):.4f}); "
            f"trial runs {summary.seconds:.1f} s, this call {time.perf_counter() - t0:.1f} s"
        )
        summaries.append(summary)
    return summaries


def tuned_params(grid: Grid, runs: list[RunConfig], results_dir) -> dict[tuple[str, int, int, str], dict]:
    """(dataset, K, Q, cell label) -> the best trial's values of the cell's search space (and, for a warm
    start, of the params its pretrained model took from its source cell), for every tuned cell of ``runs``; a
    BenchError (one line per cell) when a tunable cell has no finished study or one of another data version."""
    one_seed = [r for r in runs if r.seed == runs[0].seed] if runs else []
    cells, _ = tune_cells(grid, one_seed)
    problems, tuned = [], {}
    for cell in cells:
        study = open_study(study_path(results_dir, grid.name, cell.key), cell.key, create=False)
        summary = summarize(study, tuning_store(results_dir)) if study is not None else None
        if summary is None or not summary.finished or summary.best_number is None:
            state = "no study" if summary is None else f"{summary.complete + summary.pruned} of {summary.target} trials, {summary.running} unfinished"
            problems.append(f"cell {cell.base.cell} of grid {grid.name} has no finished tuning study ({state}) in {Path(results_dir) / TUNING_DIR}")
            continue
        if study.user_attrs.get("dataset_hash") != cell.base.dataset_hash:
            problems.append(f"cell {cell.base.cell} was tuned on another version of dataset {cell.base.dataset}")
            continue
        best = study.trials[summary.best_number].user_attrs["params"]
        tuned[cell.unit] = {key: best[key] for key in (*cell.space, *cell.warm_keys) if key in best}  # the rest stays the grid's
    if problems:
        raise BenchError(
            problems[0] + (f" (and {len(problems) - 1} more cells)" if len(problems) > 1 else ""),
            f"run `python -m bench tune --grid {grid.name} --trials N` first, with the same --results",
        )
    return tuned
