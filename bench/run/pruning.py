"""Pruning tuning trials on their validation curve (Optuna's MedianPruner), across processes.

A tuning trial is a normal run executed by a worker process (bench/run/local.py); its study lives in a
JournalStorage file the driver (bench/run/tune.py) and the workers share. Before it hands a trial's
run to the executor, the driver writes the run's *pruning spec* (study file, study name, trial id)
to ``<store>/pruning/<run hash>.json``. The worker's run function (bench/run/execute.py) finds it and
gives the method a ``report(step, value)`` hook (RunContext.report): after each validation of the
run's own training (MAML-family meta-training: every ``val_every`` iterations; GRU4Rec and SASRec:
every epoch) it reports the val Acc@1 of the weights the run would keep so far to the trial, and if
the pruner says so it raises :class:`Pruned`. The run is then stored with status "pruned" (never
"complete", so no grid report reads it) and the driver tells the study the trial was pruned.

The pruner: the median rule. After ``N_STARTUP_TRIALS`` finished trials of the cell, a trial whose
best value so far at a step is below the median of the finished trials' values at that step stops.
It is rebuilt from ``PRUNER`` in every process (Optuna does not store pruners in the storage).
Runs outside a study have no spec, so their ``report`` is a no-op.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.core.atomic import atomic_write_text

PRUNING_DIR = "pruning"  # under the store's root: one spec per trial run being executed
PRUNER = {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0}  # recorded in every study


class Pruned(Exception):
    """Raised by a trial's report hook when its study's pruner stops it."""

    def __init__(self, step: int, value: float):
        super().__init__(f"pruned at step {step} (val {value:.4f})")
        self.step, self.value = int(step), float(value)


def make_pruner(settings: dict | None = None):
    """The pruner ``settings`` (default ``PRUNER``) name, or None for ``{"name": "none"}``."""
    import optuna

    settings = settings or PRUNER
    if settings["name"] == "none":
        return optuna.pruners.NopPruner()
    if settings["name"] != "median":
        raise ValueError(f"unknown pruner {settings['name']!r}")
    return optuna.pruners.MedianPruner(n_startup_trials=int(settings["n_startup_trials"]), n_warmup_steps=int(settings["n_warmup_steps"]))


def describe(settings: dict | None = None) -> str:
    settings = settings or PRUNER
    if settings["name"] == "none":
        return "none"
    return f"median (after {settings['n_startup_trials']} finished trials, from step {settings['n_warmup_steps']})"


def spec_path(store_root, run_hash: str) -> Path:
    return Path(store_root) / PRUNING_DIR / f"{run_hash}.json"


def write_spec(store_root, run_hash: str, study_file, study_name: str, trial_id: int, settings: dict) -> None:
    spec = {"study_file": str(study_file), "study": study_name, "trial_id": int(trial_id), "pruner": settings}
    atomic_write_text(spec_path(store_root, run_hash), json.dumps(spec, sort_keys=True) + "\n")


def clear_spec(store_root, run_hash: str) -> None:
    spec_path(store_root, run_hash).unlink(missing_ok=True)


def read_spec(store_root, run_hash: str) -> dict | None:
    path = spec_path(store_root, run_hash)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def trial_reporter(spec: dict):
    """``report(step, value)`` for the trial of ``spec``: reports to its study, raises Pruned when pruned."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(spec["study_file"]))
    study = optuna.load_study(study_name=spec["study"], storage=storage, pruner=make_pruner(spec.get("pruner")))
    trial = optuna.trial.Trial(study, int(spec["trial_id"]))

    def report(step: int, value: float) -> None:
        trial.report(float(value), int(step))
        if trial.should_prune():
            raise Pruned(step, value)

    return report
