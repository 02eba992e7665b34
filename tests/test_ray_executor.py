"""`--executor ray` on a real Ray cluster (a head and two 1-CPU worker nodes as processes here).

Same hashes and per-episode metrics as the local runner; a run that raises is recorded failed while
the others complete; a worker node removed mid-grid still leaves a complete store, every run once.
"""

from __future__ import annotations

import os
import threading
import time

import pandas as pd
import pytest

# Everything on loopback (set before ray is imported: Ray reads it once, at import).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from bench.commands.cli import main  # noqa: E402
from bench.plan.grid import expand, load_grid  # noqa: E402
from bench.store.results import Store, load_results  # noqa: E402
from tests.conftest import TINY_GRID  # noqa: E402

GRID = TINY_GRID + '[[cells]]\nmethod = "gru4rec-finetune"\n'  # a second run on the shared GRU4Rec weights
LOOPBACK = {"node_ip_address": "127.0.0.1"}


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory):
    from bench.data.synth import make_synthetic_dataset

    data_dir = tmp_path_factory.mktemp("data")
    make_synthetic_dataset(data_dir, name="tiny", users=300, seed=0, K=3, Q=4)
    grid = tmp_path_factory.mktemp("grid") / "ray.toml"
    grid.write_text(GRID)
    return data_dir, grid


@pytest.fixture(scope="module")
def cluster():
    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, **LOOPBACK})
    workers = [cluster.add_node(num_cpus=1, **LOOPBACK) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def _connect(cluster, env: dict | None = None):
    ray.shutdown()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env or {}})


def _args(data_dir, grid, results, *extra):
    return ["run", "--grid", str(grid), "--data-dir", str(data_dir), "--results", str(results), "--quiet", *extra]


def _episodes(results) -> dict[str, pd.DataFrame]:
    loaded = load_results(results)
    frame = loaded.episodes.drop(columns=["run"], errors="ignore")
    return {h: frame[loaded.episodes["run"] == h].reset_index(drop=True) for h in sorted(loaded.episodes["run"].unique())}


def test_ray_equals_local(cluster, tiny_grid, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_THREADS", "1")
    data_dir, grid = tiny_grid
    assert main(_args(data_dir, grid, tmp_path / "local")) == 0
    _connect(cluster[0])
    assert main(_args(data_dir, grid, tmp_path / "ray", "--executor", "ray", "--ray-address", cluster[0].address)) == 0

    local, remote = _episodes(tmp_path / "local"), _episodes(tmp_path / "ray")
    assert sorted(local) == sorted(remote) and len(local) == 6
    for run_hash in local:
        pd.testing.assert_frame_equal(local[run_hash], remote[run_hash], check_exact=True)
    # the GRU4Rec weights were trained once (a prerequisite task) and written to the driver's cache
    assert len(list((tmp_path / "ray" / "cache" / "gru4rec").glob("*/model.pt"))) == 1
    assert {r["host"] for r in load_results(tmp_path / "ray").runs}  # recorded where each ran


def test_failing_run_is_recorded_and_the_rest_complete(cluster, tiny_grid, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_THREADS", "1")
    data_dir, grid = tiny_grid
    _connect(cluster[0], {"BENCH_FAIL_CELL": "popularity"})
    code = main(_args(data_dir, grid, tmp_path, "--executor", "ray", "--ray-address", cluster[0].address))
    assert code == 1
    runs = {r["cell"]: r for r in load_results(tmp_path).runs}
    assert "popularity" not in runs and len(runs) == 5  # the other five complete
    assert "RuntimeError: injected failure for cell popularity" in capsys.readouterr().out
    failed = [d for d in (tmp_path / "runs").iterdir() if (d / "error.txt").is_file()]
    assert len(failed) == 1 and "injected failure" in (failed[0] / "error.txt").read_text()


def test_node_lost_mid_grid_still_completes_every_run_once(cluster, tiny_grid, tmp_path, monkeypatch):
    from bench.run.executors import run_grid

    monkeypatch.setenv("BENCH_THREADS", "1")
    data_dir, grid_path = tiny_grid
    cluster_, workers = cluster
    _connect(cluster_)
    from bench.data.dataset import open_dataset

    dataset = open_dataset("tiny", data_dir)
    # two long MAML runs, so both worker nodes are busy when one is removed
    runs = expand(load_grid(str(grid_path)), {"tiny": dataset.content_hash}, None, {"meta_iterations": 400, "val_every": 400})
    store = Store(tmp_path)
    meta_training: set[str] = set()  # runs in meta-training right now
    outcomes: list = []

    def progress(run_hash, phase, done, total):
        if phase == "meta-train" and 0 < done < total:
            meta_training.add(run_hash)
        else:
            meta_training.discard(run_hash)

    thread = threading.Thread(
        target=lambda: outcomes.extend(
            run_grid(runs, str(data_dir), store, jobs=2, on_progress=progress, executor="ray", ray_address=cluster_.address)
        )
    )
    thread.start()
    deadline = time.time() + 180
    while len(meta_training) < 2 and time.time() < deadline and thread.is_alive():
        time.sleep(0.1)
    assert len(meta_training) >= 2, "the two long runs never ran at the same time"
    cluster_.remove_node(workers[0])
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert all(o.error is None for o in outcomes), [o.error for o in outcomes if o.error]
    complete = {r["hash"] for r in store.complete_runs()}
    assert complete == {r.hash for r in runs}
    episodes = load_results(tmp_path).episodes
    assert not episodes.duplicated(["run", "episode", "mode"]).any()
