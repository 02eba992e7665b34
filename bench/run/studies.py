"""A tuned cell's study on disk (bench/run/tune.py runs them): where its Optuna journal lives, how it
opens, its sampler (``sampler_settings``, ``make_sampler``), and what it says (``CellSummary``: counts,
training spent, seconds, untuned and best trial), for the report.

The sampler: Optuna's TPE, with its start-up set from N (``startup_trials``): the first trials of a
cell (trial 0 is the grid's own settings, enqueued) are drawn at random, every later one is proposed
by TPE from the trials finished so far (complete and pruned, read from the study's storage at each
ask: the sampler keeps no state of its own, so re-creating it per ask with a new seed loses nothing).
Multivariate (one joint density over the space: the MAML rates and steps interact), constant liar
(trials asked together with jobs > 1 are told apart), 24 EI candidates (Optuna's default); Optuna
5's deprecated ``consider_endpoints`` stays at its default (False)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.methods.registry import EPOCHS, META_ITERATIONS
from bench.run import pruning
from bench.store.results import Store

TUNING_DIR = "tuning"  # under the results folder: the trials' store and the studies
BUDGET_PARAM = {EPOCHS: "max_epochs", META_ITERATIONS: "meta_iterations"}  # MethodSpec.budget -> the param that sets it
SAMPLED_BY = "sampled_by"  # a trial's user attr: "grid" (trial 0), "random" (start-up) or "tpe"


def startup_trials(n_trials: int) -> int:
    """TPE's start-up count for a cell of N trials: a third of them (Optuna's default, 10, is meant for
    studies of 100s of trials), at least 2 (TPE splits the finished trials into a good and a bad group,
    so it needs two; trial 0, the grid's settings, is one of them), at most 10."""
    return min(10, max(2, n_trials // 3))


def sampler_settings(n_trials: int) -> dict:
    """The TPE settings of a cell of N trials, recorded in its study (``sampler`` user attr)."""
    return {"name": "tpe", "n_startup_trials": startup_trials(n_trials), "multivariate": True, "constant_liar": True, "n_ei_candidates": 24}


def make_sampler(settings: dict, seed: int):
    """Optuna's TPESampler of ``settings`` (``sampler_settings``), seeded with ``seed``."""
    optuna = load_optuna()
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=int(settings["n_startup_trials"]),
        multivariate=bool(settings["multivariate"]),
        constant_liar=bool(settings["constant_liar"]),
        n_ei_candidates=int(settings["n_ei_candidates"]),
    )


def describe_sampler(settings: dict | None) -> str:
    """The sampler in words (the tuning table's footer); a study from before it was recorded: its default."""
    if not settings:
        return "TPE with Optuna's default start-up (10 random trials)"
    kind = ", ".join(k for k in ("multivariate", "constant_liar") if settings.get(k)).replace("_", " ")
    startup = settings["n_startup_trials"]
    return f"TPE ({kind}, {settings['n_ei_candidates']} EI candidates) after {startup} start-up trials (trial 0 the grid's, the rest random)"


def tuning_store(results_dir) -> Store:
    """The store of tuning trials: ``<results>/tuning`` (apart from the test runs of ``<results>``)."""
    return Store(Path(results_dir) / TUNING_DIR)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=,+\[\]-]+", "_", text)


def study_path(results_dir, grid_name: str, key: str) -> Path:
    return Path(results_dir) / TUNING_DIR / _safe(grid_name) / f"{_safe(key)}.log"


def load_optuna():
    """Optuna, imported on first use, logging warnings only."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_study(path: Path, key: str, create: bool = True, pruner_settings: dict | None = None):
    """The cell's study in its JournalStorage file (created, or loaded if it exists), with the pruner
    of ``pruner_settings`` (bench.run.pruning.cell_pruner; default none: a study opened to be read)."""
    optuna = load_optuna()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not create and not path.is_file():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.create_study(
        storage=storage, study_name=key, direction="maximize", load_if_exists=True, pruner=pruning.make_pruner(pruner_settings)
    )


@dataclass
class CellSummary:
    """What ``report`` shows of one cell's study."""

    cell: str
    dataset: str
    K: int
    Q: int
    mode: str
    target: int | None  # N asked for
    complete: int
    pruned: int
    failed: int
    running: int
    seconds: float
    untuned_val: float | None
    best_val: float | None
    best_number: int | None
    best_params: dict = field(default_factory=dict)  # the space's keys of the best trial
    untuned_params: dict = field(default_factory=dict)
    warm_from: str | None = None
    warm_params: dict = field(default_factory=dict)
    timed_out: bool = False
    pruner: str = "none"  # bench.run.pruning.describe of the study's pruner
    pruner_settings: dict = field(default_factory=dict)  # bench.run.pruning.cell_pruner's (empty: an older study)
    sampler: str = ""  # describe_sampler of the study's sampler
    sampler_settings: dict = field(default_factory=dict)
    by_tpe: int | None = None  # counted trials TPE proposed (None: not recorded, an older study)
    # the training budget: per trial (max_epochs or meta_iterations, in ``unit``), and what the cell's
    # distinct counted trial runs trained (complete: their curve's last step; pruned: their pruned step)
    unit: str | None = None  # EPOCHS or META_ITERATIONS; None: no training budget (nothing to prune)
    budget: int | None = None
    spent: int | None = None
    pairs: int | None = None  # pairs seen by those steps' gradient updates (None: not known)
    missing_runs: int = 0  # counted trials whose run is not in the store (the journals alone): seconds and spent unknown

    @property
    def finished(self) -> bool:
        return self.target is not None and self.complete + self.pruned >= self.target and self.running == 0

    @property
    def allotted(self) -> int | None:
        """N trials x the budget of one: what the cell would train with no pruning."""
        return None if self.budget is None or self.target is None else self.target * self.budget

    @property
    def budget_terms(self) -> tuple:
        """What "the same budget" compares between cells (docs/tuning.md): N, and the pruner's shares."""
        settings = self.pruner_settings
        return (self.target, settings.get("name", "none"), settings.get("warmup_share"), settings.get("complete_share"))


def _steps_and_pairs(store: Store, run_hash: str, record: dict, unit: str | None) -> tuple[int | None, float | None]:
    """(steps trained, pairs seen per step) of one trial run: a pruned run's pruned step, a complete
    run's curve's last step (pairs per step from its fit; None where not known)."""
    if record.get("status") == "pruned":
        return int(record["pruned_at"]), None
    fit = record.get("fit") or {}
    params = (record.get("config") or {}).get("params") or {}
    curve = store.read_curve(run_hash)
    steps = int(curve["iteration"].max()) if "iteration" in curve.columns and len(curve) else None
    per_step = None
    if unit == META_ITERATIONS and fit.get("budget_pairs_meta") and params.get("meta_iterations"):
        per_step = fit["budget_pairs_meta"] / int(params["meta_iterations"])
    elif unit == EPOCHS and isinstance(fit.get("pretraining"), dict):
        per_step = fit["pretraining"].get("n_train_pairs")
    return steps, per_step


def training_spent(counted: dict[str, dict | None], store: Store, unit: str | None) -> tuple[int | None, int | None]:
    """(steps, pairs) the study's distinct complete and pruned trial runs (``counted``: hash -> its stored
    record, None when absent) trained, summed (each run once, as seconds are: a config asked again is
    read, not retrained); (None, None) without a budget, pairs None where a run's pairs per step is not
    known. A pruned run's pairs per step is its cell's (every trial of a cell has the same data,
    meta-batch, K and Q: read from a complete one)."""
    if unit is None:
        return None, None
    runs = {h: record for h, record in counted.items() if record is not None and record.get("status") in ("complete", "pruned")}
    measured = {h: _steps_and_pairs(store, h, record, unit) for h, record in runs.items()}
    known = [per for _, per in measured.values() if per]
    steps = sum(s for s, _ in measured.values() if s is not None)
    pairs = None
    if measured and known:
        pairs = sum(s * (per or known[0]) for s, per in measured.values() if s is not None)
    return steps, None if pairs is None else int(round(pairs))


def summarize(study, store: Store) -> CellSummary:
    """The study's counts, seconds (the wall time of its distinct trial runs in ``store``), untuned and best."""
    optuna = load_optuna()
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    attrs = study.user_attrs
    done = [t for t in trials if t.state == states.COMPLETE]
    best = max(done, key=lambda t: (t.value, -t.number)) if done else None
    untuned = next((t for t in trials if t.user_attrs.get("untuned")), None)
    records = {}  # each distinct trial run's stored record, read once (None: not in this store)
    for t in trials:
        if "hash" in t.user_attrs and t.user_attrs["hash"] not in records:
            records[t.user_attrs["hash"]] = store.read_run(t.user_attrs["hash"])
    counted = [t for t in trials if t.state in (states.COMPLETE, states.PRUNED)]
    counted_runs = {t.user_attrs["hash"]: records[t.user_attrs["hash"]] for t in counted if "hash" in t.user_attrs}
    space = attrs.get("space", [])
    unit = attrs.get("budget_unit")
    spent, pairs = training_spent(counted_runs, store, unit)
    by_tpe = sum(t.user_attrs.get(SAMPLED_BY) == "tpe" for t in counted) if all(SAMPLED_BY in t.user_attrs for t in counted) else None
    return CellSummary(
        cell=attrs.get("cell", study.study_name),
        dataset=attrs.get("dataset", ""),
        K=attrs.get("K", 0),
        Q=attrs.get("Q", 0),
        mode=attrs.get("mode", ""),
        target=attrs.get("n_trials"),
        complete=len(done),
        pruned=sum(t.state == states.PRUNED for t in trials),
        failed=sum(t.state == states.FAIL for t in trials),
        running=sum(t.state == states.RUNNING for t in trials),
        seconds=sum(float((record or {}).get("wall_seconds") or 0.0) for record in records.values()),
        untuned_val=untuned.value if untuned is not None and untuned.state == states.COMPLETE else None,
        best_val=best.value if best else None,
        best_number=best.number if best else None,
        best_params={k: best.user_attrs.get("params", {}).get(k) for k in space} if best else {},
        untuned_params={k: untuned.user_attrs.get("params", {}).get(k) for k in space}
        if untuned is not None and "params" in untuned.user_attrs
        else {},
        warm_from=attrs.get("warm_from"),
        warm_params=attrs.get("warm_params") or {},
        timed_out=bool(attrs.get("timed_out")),
        pruner=attrs.get("pruner", "none"),
        pruner_settings=attrs.get("pruner_settings") or {},
        sampler=describe_sampler(attrs.get("sampler")),
        sampler_settings=attrs.get("sampler") or {},
        by_tpe=by_tpe,
        unit=unit,
        budget=attrs.get("budget"),
        spent=spent,
        pairs=pairs,
        missing_runs=sum(record is None for record in counted_runs.values()),
    )


def grid_study_summaries(grid_name: str, results_dir) -> list[CellSummary]:
    """The summary of every study under ``<results>/tuning/<grid>/`` (none: an empty list)."""
    folder = Path(results_dir) / TUNING_DIR / _safe(grid_name)
    if not folder.is_dir():
        return []
    optuna = load_optuna()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    store = tuning_store(results_dir)
    out = []
    for path in sorted(folder.glob("*.log")):
        storage = JournalStorage(JournalFileBackend(str(path)))
        for name in optuna.get_all_study_names(storage):
            out.append(summarize(optuna.load_study(study_name=name, storage=storage), store))
    return sorted(out, key=lambda s: (s.dataset, s.K, s.Q, s.warm_from is not None, s.cell))
