"""Pruning tuning trials on their val curve (bench/run/pruning.py): the run reports after each
validation, a pruned trial stops early, is stored as "pruned", counts toward N and is never rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.commands.cli import main
from tests.helpers import TUNED_CELLS, count_computed, run_tune, tuning_studies

optuna = pytest.importorskip("optuna")


@pytest.fixture
def always_prune(monkeypatch):
    """The median rule replaced by one that prunes every trial at its first report (the tiny grid's
    val scores all tie, so the real median rule never fires there). jobs = 1: runs in this process."""
    monkeypatch.setattr(optuna.pruners, "MedianPruner", lambda **kwargs: optuna.pruners.ThresholdPruner(lower=2.0))


def _records(results: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in (results / "tuning" / "runs").glob("*/run.json")}


def test_pruned_trials_stop_at_their_first_validation_count_toward_n_and_are_not_rerun(
    run_data, tune_grid_file, tmp_path, monkeypatch, always_prune, capsys
):
    computed = count_computed(monkeypatch)
    results = tmp_path / "results"
    assert run_tune(run_data, tune_grid_file, results, 2) == 0
    out = capsys.readouterr().out
    studies = tuning_studies(results)
    assert set(studies) == TUNED_CELLS
    assert all([state for state, _, _ in trials] == ["PRUNED"] * 2 for trials in studies.values())  # N counts pruned ones
    assert "tune maml[random]: trial 0 pruned at step 2" in out and "tune gru4rec: trial 0 pruned at step 1" in out
    records = _records(results)
    assert records and all(r["status"] == "pruned" for r in records.values())
    for run_hash, record in records.items():
        assert not (results / "tuning" / "runs" / run_hash / "episodes.parquet").exists()
        # MAML validates at iterations 2 and 3 (val_every 2 of 3): stopped at 2; GRU4Rec after epoch 1 of 1
        assert record["pruned_at"] == (1 if record["cell"] == "gru4rec" else 2) and record["wall_seconds"] > 0
    assert not list((results / "tuning" / "pruning").glob("*.json"))  # the specs are cleared
    assert "| maml[random] | tiny 3/4 | few-shot | 2/2 | 2 | 0 |" in out  # the tuning table counts them
    # a resumed study has nothing left to run: pruned runs are never rerun
    computed.clear()
    assert run_tune(run_data, tune_grid_file, results, 2) == 0
    assert computed == []
    # no complete trial: --tuned refuses in one line
    capsys.readouterr()
    assert main(["run", "--grid", str(tune_grid_file), "--data-dir", str(run_data), "--results", str(results), "--dry-run", "--tuned"]) == 2
    assert capsys.readouterr().err.count("error:") == 1


def test_each_validation_reports_the_kept_weights_score_and_pruner_none_runs_whole(run_data, tune_grid_file, tmp_path, always_prune):
    results = tmp_path / "results"
    assert run_tune(run_data, tune_grid_file, results, 1, "--pruner", "none") == 0
    records = {r["cell"]: r for r in _records(results).values()}
    assert all(r["status"] == "complete" for r in records.values())
    for path in sorted((results / "tuning" / "tinytune").glob("*.log")):
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
        (name,) = optuna.get_all_study_names(storage)
        study = optuna.load_study(study_name=name, storage=storage)
        (trial,) = study.trials
        assert study.user_attrs["pruner"] == "none"
        fit = records[study.user_attrs["cell"]]["fit"]
        steps = trial.intermediate_values
        if study.user_attrs["cell"] == "gru4rec":
            assert sorted(steps) == list(range(1, fit["gru4rec"]["epochs_trained"] + 1))
        else:  # every validation after iteration 0; the last value is the kept weights' val score
            assert sorted(steps) == [2, 3]
            assert steps[3] == pytest.approx(fit["best_val_acc@1"]) and steps[2] <= steps[3]
