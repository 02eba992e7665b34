"""The grid end to end on a tiny dataset: store contents, skipping, and kill -9 then resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.commands.cli import main
from bench.store.results import load_results
from tests.conftest import TINY_GRID

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_data(run_data, tmp_path_factory):
    grid = tmp_path_factory.mktemp("grid") / "resume.toml"
    grid.write_text(TINY_GRID)
    return run_data, grid


def _cli(data_dir, grid, results):
    return [sys.executable, "-m", "bench", "run", "--grid", str(grid), "--data-dir", str(data_dir), "--results", str(results), "--quiet"]


def _env():
    return {**os.environ, "BENCH_THREADS": "1", "PYTHONPATH": str(REPO)}


def _snapshot(results: Path) -> dict:
    """Bytes of every complete run's files, by run hash."""
    snap = {}
    for run_json in sorted((results / "runs").glob("*/run.json")):
        record = json.loads(run_json.read_text())
        if record["status"] == "complete":
            snap[record["hash"]] = {p.name: p.read_bytes() for p in run_json.parent.iterdir()}
    return snap


def test_grid_runs_and_skips_complete_runs(tiny_data, tmp_path, capsys):
    data_dir, grid = tiny_data
    results = tmp_path / "results"
    args = ["run", "--grid", str(grid), "--data-dir", str(data_dir), "--results", str(results), "--quiet"]
    assert main(args) == 0
    loaded = load_results(results)
    assert len(loaded.runs) == 5
    cells = set(loaded.episodes["cell"])
    assert cells == {"random", "popularity", "gru4rec", "maml[random]", "maml[gru4rec]"}
    maml = loaded.episodes[loaded.episodes["method"] == "maml"]
    assert set(maml["mode"]) == {"zero-shot", "few-shot"}
    n_test = loaded.runs[0]["n_test_episodes"]
    assert n_test > 0
    assert all(len(g) == n_test for _, g in loaded.episodes.groupby(["run", "mode"]))
    record = loaded.runs[0]
    for key in ("git", "versions", "device", "started", "finished", "wall_seconds", "cpu_seconds", "train_seconds", "config"):
        assert key in record
    assert record["config"]["dataset_hash"]
    before = _snapshot(results)
    assert main(args) == 0  # everything complete: nothing is redone, nothing changes
    assert "5 of 5 runs already complete" in capsys.readouterr().out
    assert _snapshot(results) == before

    # report --grid shows only the runs a grid declares, from a store shared by several grids
    other = grid.with_name("other.toml")
    other.write_text(TINY_GRID.replace('init = ["random", "gru4rec"]', 'init = "random"'))
    capsys.readouterr()
    assert main(["report", "--results", str(results), "--grid", str(other)]) == 0
    shown = capsys.readouterr().out
    assert "maml[random]" in shown and "maml[gru4rec]" not in shown
    assert main(["report", "--results", str(results), "--grid", "full"]) == 2


def test_kill_dash_nine_then_resume_loses_and_duplicates_nothing(tiny_data, tmp_path):
    data_dir, grid = tiny_data
    reference = tmp_path / "reference"
    subprocess.run(_cli(data_dir, grid, reference), env=_env(), check=True, capture_output=True)
    expected = load_results(reference)

    results = tmp_path / "killed"
    proc = subprocess.Popen(_cli(data_dir, grid, results), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:  # kill while the grid is between its first and last run
        if line.startswith("[2/"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _snapshot(results)
    assert 2 <= len(partial) < 5, "the kill should land mid-grid"

    # resume in two parallel workers: the parallel path must give the same numbers
    resumed = subprocess.run(_cli(data_dir, grid, results) + ["--jobs", "2"], env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(partial)} of 5 runs already complete" in resumed.stdout
    final = _snapshot(results)
    assert len(final) == 5 and sorted(p.name for p in (results / "runs").iterdir()) == sorted(final)
    for run_hash, files in partial.items():  # runs completed before the kill were not redone
        assert final[run_hash] == files

    got = load_results(results)
    key = ["run", "mode", "episode"]
    metrics = ["acc@1", "recall@5", "recall@10", "mrr", "ndcg@10"]
    left = expected.episodes.sort_values(key).reset_index(drop=True)[key + metrics]
    right = got.episodes.sort_values(key).reset_index(drop=True)[key + metrics]
    assert not right.duplicated(key).any()
    pd.testing.assert_frame_equal(left, right)  # same runs, same numbers as the uninterrupted grid


def test_kill_at_random_moments_always_resumes_to_the_same_store(tiny_data, tmp_path):
    data_dir, grid = tiny_data
    results = tmp_path / "random-kills"
    for delay in (4.0, 7.5):
        proc = subprocess.Popen(_cli(data_dir, grid, results), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = subprocess.run(_cli(data_dir, grid, results), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(_snapshot(results)) == 5
    leftovers = [p for p in (results / "runs").rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers


def test_unknown_dataset_and_bad_set_exit_2(tiny_data, tmp_path, capsys):
    data_dir, grid = tiny_data
    base = ["run", "--grid", str(grid), "--data-dir", str(data_dir), "--results", str(tmp_path / "r")]
    assert main(base + ["--dataset", "nope"]) == 2
    assert main(base + ["--set", "nonsense=1"]) == 2
    assert main(base + ["--set", "K=400"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 3
    assert not (tmp_path / "r" / "runs").exists() or not any((tmp_path / "r" / "runs").iterdir())
