"""Pruning tuning trials on their val curve (bench/run/pruning.py): the run reports after each
validation, a pruned trial stops early, is stored as "pruned", counts toward N and is never rerun."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bench.commands.cli import main
from bench.run import pruning
from bench.run.studies import grid_study_summaries
from tests.helpers import TUNED_CELLS, count_computed, run_tune, tuning_studies

optuna = pytest.importorskip("optuna")


@pytest.fixture
def always_prune(monkeypatch):
    """The median rule replaced by one that prunes every trial at its first report from the cell's
    warm-up step on (the tiny grid's val scores all tie, so the real median rule never fires there).
    jobs = 1: runs in this process."""
    monkeypatch.setattr(
        optuna.pruners, "MedianPruner", lambda **kwargs: optuna.pruners.ThresholdPruner(lower=2.0, n_warmup_steps=kwargs.get("n_warmup_steps", 0))
    )


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
    assert "| maml[random] | tiny 3/4 | few-shot | 2/2 | 0 | 2 | 0 |" in out  # the tuning table counts them
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


def _curve_trial(value: float, steps: int):
    """A complete trial whose val curve is ``value`` at every step 1..steps."""
    return optuna.trial.create_trial(
        params={"x": 0.5},
        distributions={"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
        value=value,
        intermediate_values={step: value for step in range(1, steps + 1)},
    )


def _judged_steps(settings: dict, n_complete: int, value: float, steps: int) -> list[int]:
    """The steps at which a trial reporting ``value`` at each of 1..steps would be pruned, in a study of
    ``n_complete`` complete trials at 0.5 with the pruner of ``settings``."""
    study = optuna.create_study(direction="maximize", pruner=pruning.make_pruner(settings))
    for _ in range(n_complete):
        study.add_trial(_curve_trial(0.5, steps))
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0.0, 1.0)})
    pruned = []
    for step in range(1, steps + 1):
        trial.report(value, step)
        if trial.should_prune():
            pruned.append(step)
    return pruned


def test_no_trial_is_judged_before_half_its_budget_nor_before_half_the_trials_are_complete():
    old = {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0}  # the rule before issue 36
    settings = pruning.cell_pruner(pruning.PRUNER, budget=10, n_trials=8, unit="epochs")
    assert (settings["n_warmup_steps"], settings["n_startup_trials"], settings["budget"]) == (5, 4, 10)
    # a curve below the median: the old rule stopped it at step 1; this one waits for step 5 of 10
    assert _judged_steps(old, 4, 0.1, 10)[0] == 1
    assert _judged_steps(settings, 4, 0.1, 10)[0] == 5
    assert _judged_steps(settings, 4, 0.6, 10) == []  # above the median: never
    assert _judged_steps(settings, 3, 0.1, 10) == []  # 3 of 8 complete: not yet judged, however low
    # half the budget in the steps the run reports, rounded up; no budget (no curve): nothing to judge
    assert pruning.cell_pruner(pruning.PRUNER, 3, 2)["n_warmup_steps"] == 2
    assert pruning.cell_pruner(pruning.PRUNER, 200, 8, "meta-iterations")["n_warmup_steps"] == 100
    assert pruning.cell_pruner(pruning.PRUNER, None, 8) == pruning.NONE == pruning.cell_pruner(pruning.NONE, 200, 8)
    assert "from 50% of each trial's budget" in pruning.describe(settings)


def test_each_cell_records_its_pruner_and_the_workers_get_the_same(run_data, tune_grid_file, tmp_path, monkeypatch, always_prune):
    specs = {}
    write_spec = pruning.write_spec

    def spying(store_root, run_hash, study_file, study_name, trial_id, settings):
        specs[study_name] = settings
        return write_spec(store_root, run_hash, study_file, study_name, trial_id, settings)

    monkeypatch.setattr(pruning, "write_spec", spying)
    results = tmp_path / "results"
    assert run_tune(run_data, tune_grid_file, results, 2) == 0
    summaries = {s.cell: s for s in grid_study_summaries("tinytune", results)}
    # MAML: 3 meta-iterations, judged from 2; GRU4Rec: 1 epoch, judged from 1; N = 2: after 1 complete
    assert summaries["maml[random]"].pruner_settings == specs["maml[random]"]
    assert (specs["maml[random]"]["n_warmup_steps"], specs["gru4rec"]["n_warmup_steps"]) == (2, 1)
    assert all(spec["n_startup_trials"] == 1 and spec["warmup_share"] == 0.5 for spec in specs.values())


def test_the_budget_each_cell_spent_is_the_sum_over_its_trials(run_data, tune_grid_file, tmp_path, always_prune, capsys):
    from bench.store.results import Store

    for pruner in ("median", "none"):  # every trial pruned (by always_prune), then every trial whole
        results = tmp_path / pruner
        assert run_tune(run_data, tune_grid_file, results, 2, "--pruner", pruner) == 0
        out = capsys.readouterr().out
        store = Store(results / "tuning")
        records = _records(results)
        for s in grid_study_summaries("tinytune", results):
            runs = {h: r for h, r in records.items() if r["cell"] == s.cell}
            assert len(runs) == 2 and s.complete + s.pruned == 2
            if pruner == "median":
                assert s.spent == sum(r["pruned_at"] for r in runs.values()) and s.pairs is None  # no complete trial: pairs unknown
            else:
                assert s.spent == sum(int(store.read_curve(h)["iteration"].max()) for h in runs)
                own = "budget_pairs_meta" if s.unit == "meta-iterations" else "budget_pairs_pretraining"
                assert s.pairs == sum(r["fit"][own] for r in runs.values()) > 0
            assert s.budget == (3 if s.unit == "meta-iterations" else 1) and s.allotted == 2 * s.budget
        assert "Same budget: yes (every cell 2 trials" in out
    assert "| maml[random] | tiny 3/4 | few-shot | 2/2 | 2 | 0 | 0 | 0 | 6/6 meta-it |" in out


def test_the_table_says_whether_cells_had_the_same_budget():
    from bench.output.tuning import same_budget_line
    from bench.run.studies import CellSummary

    def cell(name, n, unit="epochs", share=0.5):
        settings = pruning.cell_pruner({**pruning.PRUNER, "warmup_share": share}, 10 if unit else None, n, unit)
        sampler = {"name": "tpe", "n_startup_trials": 2, "multivariate": True, "constant_liar": True, "n_ei_candidates": 24}
        return CellSummary(
            name, "d", 5, 10, "few-shot", n, n, 0, 0, 0, 1.0, None, None, None, pruner_settings=settings, unit=unit, sampler_settings=sampler
        )

    assert same_budget_line([cell("a", 8), cell("b", 8, "meta-iterations"), cell("knn", 8, None)]).startswith("Same budget: yes (every cell 8")
    assert same_budget_line([cell("a", 8), cell("b", 4)]).startswith("Same budget: no (N=8")
    assert "from 25%: b" in same_budget_line([cell("a", 8), cell("b", 8, share=0.25)])
    older = dataclasses.replace(cell("old", 8), sampler_settings={})  # a study from before issue 36
    assert same_budget_line([cell("a", 8), older]).startswith("Same budget: not recorded")
