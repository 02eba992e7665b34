"""A tuned cell's study on disk (bench/run/tune.py runs them): where its Optuna journal lives, how it
opens, and what it says (``CellSummary``: counts, seconds, untuned and best trial), for the report."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.run import pruning
from bench.store.results import Store

TUNING_DIR = "tuning"  # under the results folder: the trials' store and the studies


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
    of ``pruner_settings`` (default bench.run.pruning.PRUNER)."""
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

    @property
    def finished(self) -> bool:
        return self.target is not None and self.complete + self.pruned >= self.target and self.running == 0


def summarize(study, store: Store) -> CellSummary:
    """The study's counts, seconds (the wall time of its distinct trial runs in ``store``), untuned and best."""
    optuna = load_optuna()
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    attrs = study.user_attrs
    done = [t for t in trials if t.state == states.COMPLETE]
    best = max(done, key=lambda t: (t.value, -t.number)) if done else None
    untuned = next((t for t in trials if t.user_attrs.get("untuned")), None)
    hashes = {}
    for t in trials:
        if "hash" in t.user_attrs and t.user_attrs["hash"] not in hashes:
            record = store.read_run(t.user_attrs["hash"]) or {}
            hashes[t.user_attrs["hash"]] = float(record.get("wall_seconds") or 0.0)
    space = attrs.get("space", [])
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
        seconds=sum(hashes.values()),
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
