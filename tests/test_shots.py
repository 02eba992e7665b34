"""`--shots K:Q[,K:Q...]` for run, tune, report and export: the grid's shots replaced, refused in one
line where the data cannot serve them, and the runs made at them picked by the reports."""

from __future__ import annotations

import pytest

from bench.commands.cli import main
from bench.commands.common import parse_shots, with_shots
from bench.core.errors import BenchError
from bench.plan.grid import expand, load_grid
from bench.store.results import load_results

GRID = """
name = "shots"
datasets = ["tiny"]
seeds = [0]
shots = [{ K = 3, Q = 4 }]
[[cells]]
method = "random"
[[cells]]
method = "popularity"
"""


def test_parse_shots():
    assert parse_shots(None) is None
    assert parse_shots("3:2") == ((3, 2),)
    assert parse_shots(" 1:5, 5:5 ,1:5") == ((1, 5), (5, 5))  # a pair given twice is one


@pytest.mark.parametrize("text", ["3", "3:x", "3:2,", ":2", "3-2", "2:2:2", ""])
def test_a_malformed_shots_is_one_line(text):
    with pytest.raises(BenchError) as err:
        parse_shots(text)
    assert "\n" not in str(err.value) and "is not K:Q" in str(err.value) and "write K:Q" in str(err.value)


@pytest.mark.parametrize("text", ["0:2", "3:0", "-1:2"])
def test_k_or_q_below_one_is_refused(text):
    with pytest.raises(BenchError, match="both must be at least 1"):
        parse_shots(text)


def test_the_grids_own_shots_give_the_same_run_hashes():
    grid = load_grid("default")
    same = expand(with_shots(grid, ((5, 10),)), {"d": "hash"})
    assert [r.hash for r in same] == [r.hash for r in expand(grid, {"d": "hash"})]
    other = expand(with_shots(grid, ((2, 2), (3, 2))), {"d": "hash"})
    assert {(r.K, r.Q, r.population_K or r.K) for r in other} == {(2, 2, 3), (3, 2, 3)}  # every K at Q=2 scored on one population


def test_shots_beside_set_k_or_q_is_refused():
    with pytest.raises(BenchError, match="--shots and --set K/Q"):
        with_shots(load_grid("smoke"), ((2, 2),), {"K": 3})
    assert with_shots(load_grid("smoke"), ((2, 2),), {"lr": 0.1}).shots == ((2, 2),)


@pytest.fixture(scope="module")
def shots_grid(tmp_path_factory):
    path = tmp_path_factory.mktemp("shots-grid") / "shots.toml"
    path.write_text(GRID)
    return path


def test_shots_no_test_learner_can_give_are_refused_before_any_run(run_data, shots_grid, tmp_path, capsys):
    results = tmp_path / "results"
    argv = ["run", "--grid", str(shots_grid), "--data-dir", str(run_data), "--results", str(results), "--quiet", "--shots", "2:2,400:10"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    first = "error: dataset tiny can give no test episode at K=400, Q=10: an episode needs K+Q=410 pairs, a test learner has at most "
    assert err[0].startswith(first)
    assert "(ask smaller shots: --shots K:Q with K+Q <= " in err[0]
    assert not (results / "runs").exists() or not any((results / "runs").iterdir())  # nothing ran


def test_a_run_at_shots_stores_those_shots_and_the_reports_pick_them(run_data, shots_grid, tmp_path, capsys):
    results = tmp_path / "results"
    base = ["--grid", str(shots_grid), "--results", str(results)]
    assert main(["run", *base, "--data-dir", str(run_data), "--quiet", "--shots", "2:2"]) == 0
    runs = load_results(results).runs
    assert len(runs) == 2 and {(r["config"]["K"], r["config"]["Q"]) for r in runs} == {(2, 2)}
    capsys.readouterr()
    assert main(["report", *base, "--data-dir", str(run_data), "--shots", "2:2"]) == 0
    out = capsys.readouterr().out
    assert "popularity" in out and "random" in out and "K=2" in out
    # the grid's runs at those shots keep their per-query results: a slice of them reports
    assert main(["report", *base, "--data-dir", str(run_data), "--shots", "2:2", "--slice", "repeat"]) == 0
    assert "repeat queries" in capsys.readouterr().out
    assert main(["report", *base, "--data-dir", str(run_data)]) == 2  # the grid's own shots (K=3, Q=4) never ran
    assert "no complete runs of grid" in capsys.readouterr().err
    assert main(["export", "markdown", "--results", str(results), "--data-dir", str(run_data), "--shots", "2:2"]) == 0
    assert "popularity" in capsys.readouterr().out
    assert main(["report", "--results", str(results), "--data-dir", str(run_data), "--shots", "3:4"]) == 2  # no run at 3:4


def test_a_missing_run_at_the_asked_shots_is_named_with_its_repair(run_data, shots_grid, tmp_path, capsys):
    results = tmp_path / "results"
    base = ["--grid", str(shots_grid), "--results", str(results), "--data-dir", str(run_data)]
    assert main(["run", *base, "--quiet", "--shots", "2:2"]) == 0
    capsys.readouterr()
    assert main(["report", *base, "--shots", "2:2,1:2"]) == 0  # 1:2 never ran: named, with the command that runs it
    out = capsys.readouterr().out
    assert "missing run" in out and f"--shots 2:2,1:2 --results {results}" in out


def test_tune_takes_shots_and_refuses_those_val_cannot_serve(run_data, shots_grid, tmp_path, capsys):
    argv = ["tune", "--grid", str(shots_grid), "--trials", "1", "--data-dir", str(run_data), "--results", str(tmp_path / "r"), "--shots", "400:10"]
    assert main(argv) == 2
    assert "dataset tiny can give no val episode at K=400, Q=10" in capsys.readouterr().err
