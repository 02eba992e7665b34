"""A method is one entry: a toy method registered with one MethodSpec (nothing else edited) runs
through a grid, a tuning trial and a projection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baselines.simple import PopularityMethod
from bench.commands.cli import main
from bench.core.params import Space
from bench.methods.registry import EPOCHS, METHODS, ZERO_SHOT, MethodSpec
from bench.run.projection import project_grid
from bench.run.studies import grid_study_summaries


class Toy(PopularityMethod):
    """Popularity, "trained" for max_epochs epochs: one curve row each (what the projection scales)."""

    def fit(self, ctx) -> dict:
        return {**super().fit(ctx), "curve": [{"iteration": epoch} for epoch in range(1, ctx.params["max_epochs"] + 1)]}


# The toy method's one entry: everything the suite needs to know of it.
TOY = MethodSpec(
    name="toy",
    factory=lambda spec, ctx: Toy(ctx, spec.name),
    modes=(ZERO_SHOT,),
    defaults={"max_epochs": 2, "k": 10},
    description="popularity, trained for max_epochs epochs",
    budget=EPOCHS,
    space={"k": Space.int(1, 50)},
)

GRID = 'name = "{name}"\ndatasets = ["tiny"]\nseeds = [0]\nshots = [{{ K = 3, Q = 4 }}]\n[params]\nmax_epochs = {epochs}\n[[cells]]\nmethod = "toy"\n'


def _grid(folder: Path, name: str, epochs: int) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(GRID.format(name=name, epochs=epochs))
    return path


def test_a_toy_method_of_one_entry_runs_through_a_grid_a_tuning_trial_and_a_projection(run_data, tmp_path, monkeypatch, capsys):
    pytest.importorskip("optuna")
    monkeypatch.setitem(METHODS, "toy", TOY)
    small, big = _grid(tmp_path, "toysmall", 2), _grid(tmp_path, "toybig", 6)
    results = tmp_path / "results"
    common = ["--data-dir", str(run_data), "--results", str(results)]

    assert main(["run", "--grid", str(small), *common, "--quiet"]) == 0  # a grid
    (run_json,) = (results / "runs").glob("*/run.json")
    record = json.loads(run_json.read_text())
    assert record["config"]["method"] == "toy" and record["status"] == "complete"

    assert main(["tune", "--grid", str(small), *common, "--trials", "2"]) == 0  # tuning trials, on val
    (summary,) = grid_study_summaries("toysmall", results)
    assert (summary.cell, summary.complete, summary.failed) == ("toy", 2, 0) and set(summary.best_params) == {"k"}

    (projected,) = project_grid(str(big), str(small), str(results))  # a projection: 6 epochs from the 2 measured
    per_epoch = record["train_seconds"] / 2
    assert projected.projected_s == pytest.approx(6 * per_epoch + record["eval_seconds"])
    assert projected.how.startswith("<= 6 epochs")
    capsys.readouterr()
