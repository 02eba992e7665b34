"""Shared fixtures: one thread for torch, a small generated dataset, small GRU4Rec params."""

from __future__ import annotations

import pytest
import torch

# Tests share 2 cores with other processes: one torch thread each (set at import, before any work).
torch.set_num_threads(1)

# A GRU4Rec small enough to train in about a second on the tiny dataset (3 epochs).
SMALL_GRU4REC = {"embed_dim": 16, "hidden_dim": 32, "max_epochs": 3}

# A grid that runs end to end in seconds on 300 generated learners named "tiny" (runner and executor
# tests): floor baselines, GRU4Rec, and MAML from random and from GRU4Rec (a shared prerequisite).
TINY_GRID = """
name = "tiny"
datasets = ["tiny"]
seeds = [0]
shots = [{ K = 3, Q = 4 }]
[params]
embed_dim = 8
hidden_dim = 8
max_epochs = 1
meta_iterations = 3
meta_batch = 3
val_every = 2
val_episodes = 8
inner_steps = 2
[[cells]]
method = "random"
[[cells]]
method = "popularity"
[[cells]]
method = "gru4rec"
[[cells]]
method = "maml"
init = ["random", "gru4rec"]
"""


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """1,000 generated learners over 100 courses through the real pipeline (about 16k train pairs,
    12k train episodes, 18 val and 20 test episodes at K=5, Q=10)."""
    from bench.data.synth import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("tiny-data"), name="tiny", users=1000, seed=0, n_courses=100, n_topics=10)


@pytest.fixture(scope="session")
def run_data(tmp_path_factory):
    """300 generated learners named "tiny" (default pipeline), for tests that run grids through the CLI."""
    from bench.data.synth import make_synthetic_dataset

    data_dir = tmp_path_factory.mktemp("run-data")
    make_synthetic_dataset(data_dir, name="tiny", users=300, seed=0)
    return data_dir


@pytest.fixture(scope="module")
def tune_grid_file(tmp_path_factory):
    """The tiny grid named "tinytune" with one question, for `bench tune` (test_tune, test_pruning)."""
    path = tmp_path_factory.mktemp("tune-grid") / "tinytune.toml"
    question = '[[compare]]\nquestion = "Does a warm start help MAML?"\na = "maml[gru4rec]:few-shot"\nb = "maml[random]:few-shot"\n'
    path.write_text(TINY_GRID.replace('name = "tiny"', 'name = "tinytune"') + question)
    return path


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """One cache_dir for the whole session, so GRU4Rec is trained once per (dataset, params, seed)."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def one_thread():
    """Every test runs on one torch thread, whatever an earlier test (e.g. perf's) set."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
