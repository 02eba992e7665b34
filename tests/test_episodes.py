"""Val/test episodes: several per learner (test_episodes_per_user) and one population across K."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pytest

from bench.commands.cli import main
from bench.core.errors import BenchError
from bench.data import pipeline
from bench.data.dataset import open_dataset
from bench.data.synth import SynthConfig, build_synthetic
from bench.plan.grid import RunConfig, expand, load_grid

LENGTHS = [3, 11, 15, 16, 20, 24, 29, 35, 40]  # pairs per hand-made user


def hand_pairs() -> pa.Table:
    """Users u00..u08 with LENGTHS pairs; label = 1000 * user + position, so a label names its pair."""
    users, sessions, prefixes, labels, ts = [], [], [], [], []
    for u, n in enumerate(LENGTHS):
        for i in range(n):
            users.append(f"u{u:02d}")
            sessions.append(f"s{i // 4}")
            prefixes.append([i + 1, u + 1][: 1 + i % 2])
            labels.append(1000 * u + i)
            ts.append(1_000_000 + 60 * i)
    return pa.table(
        {
            "user_id": pa.array(users, pa.string()),
            "session_id": pa.array(sessions, pa.string()),
            "prefix": pa.array(prefixes, pa.list_(pa.int64())),
            "label": pa.array(labels, pa.int64()),
            "timestamp": pa.array(ts, pa.int64()),
        }
    )


def table_digest(table: pa.Table) -> str:
    return hashlib.sha256(json.dumps({"schema": str(table.schema), "rows": table.to_pydict()}, sort_keys=True).encode()).hexdigest()[:16]


# Digests of main's build_episodes (before these options existed) on hand_pairs(): the default must not move them.
MAIN_DIGESTS = {
    ("train", 5, 10): "cbc957b9c02aab7e",
    ("train", 1, 3): "92e0fb4ff7159c25",
    ("train", 10, 10): "a4bcddfe479fc552",
    ("val", 5, 10): "0ce1306f53b927dc",
    ("val", 1, 3): "bfa161a630c70437",
    ("val", 10, 10): "59a39608ddd2dd19",
    ("test", 5, 10): "0ce1306f53b927dc",
    ("test", 1, 3): "bfa161a630c70437",
    ("test", 10, 10): "59a39608ddd2dd19",
}


@pytest.mark.parametrize("split, K, Q", sorted(MAIN_DIGESTS))
def test_default_episodes_are_unchanged(split, K, Q):
    assert table_digest(pipeline.build_episodes(hand_pairs(), split, K, Q)) == MAIN_DIGESTS[(split, K, Q)]
    explicit = pipeline.build_episodes(hand_pairs(), split, K, Q, population_K=K, per_user=1)
    assert table_digest(explicit) == MAIN_DIGESTS[(split, K, Q)]


def _positions(episodes: pa.Table, column: str) -> list[list[int]]:
    return [[label % 1000 for label in labels] for labels in episodes.column(column).to_pylist()]


def test_several_episodes_per_user_go_backwards_with_disjoint_queries():
    episodes = pipeline.build_episodes(hand_pairs(), "test", 5, 10, per_user=3)
    users = episodes.column("user_id").to_pylist()
    # a user with L pairs has episode j (query [L-(j+1)Q, L-jQ)) when L >= K + (j+1)Q
    expected_counts = {f"u{u:02d}": sum(n >= 5 + (j + 1) * 10 for j in range(3)) for u, n in enumerate(LENGTHS)}
    assert {u: users.count(u) for u in set(users)} == {u: c for u, c in expected_counts.items() if c}
    u40 = [i for i, u in enumerate(users) if u == "u08"]  # 40 pairs: three episodes, oldest first
    query, support = _positions(episodes.take(u40), "query_labels"), _positions(episodes.take(u40), "support_labels")
    assert query == [list(range(10, 20)), list(range(20, 30)), list(range(30, 40))]
    assert support == [list(range(5, 10)), list(range(15, 20)), list(range(25, 30))]
    for user in set(users):
        rows = [q for q, u in zip(_positions(episodes, "query_labels"), users) if u == user]
        flat = [p for q in rows for p in q]
        assert len(flat) == len(set(flat))  # query sets of one learner are disjoint
    train = pipeline.build_episodes(hand_pairs(), "train", 5, 10, per_user=3)
    assert table_digest(train) == MAIN_DIGESTS[("train", 5, 10)]  # train stays sliding windows


def test_population_K_gives_every_K_the_same_learners_and_query_pairs():
    by_K = {K: pipeline.build_episodes(hand_pairs(), "test", K, 10, population_K=10) for K in (1, 3, 5, 10)}
    users = {K: t.column("user_id").to_pylist() for K, t in by_K.items()}
    assert all(u == users[10] for u in users.values())
    assert users[10] == [f"u{u:02d}" for u, n in enumerate(LENGTHS) if n >= 20]
    queries = {K: _positions(t, "query_labels") for K, t in by_K.items()}
    assert all(q == queries[10] for q in queries.values())
    # support = the K pairs just before the query
    for K, table in by_K.items():
        for support, query in zip(_positions(table, "support_labels"), queries[K]):
            assert support == list(range(query[0] - K, query[0]))
    # without a population, K=1 scores more learners (the population change this option removes)
    assert len(pipeline.build_episodes(hand_pairs(), "test", 1, 10)) > len(by_K[1])
    with pytest.raises(BenchError, match="population K 3 is smaller than K=5"):
        pipeline.build_episodes(hand_pairs(), "test", 5, 10, population_K=3)


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    """A small synthetic dataset with three test episodes per learner (Q=5 so learners have several)."""
    data_dir = tmp_path_factory.mktemp("multi")
    build_synthetic(
        "multi",
        data_dir,
        SynthConfig(users=400, seed=0, sessions_tail=0.7, switch_tail=1.6),
        pipeline.PipelineConfig(K=5, Q=5, test_episodes_per_user=3),
    )
    return open_dataset("multi", data_dir)


def test_dataset_option_is_recorded_and_used_for_cached_files(multi):
    assert multi.manifest["pipeline"]["test_episodes_per_user"] == 3
    assert "test_episodes_per_user" in multi.manifest["pipeline"]["episode_rules"]["test"]
    for K, population_K in ((5, None), (1, 10)):
        test = multi.episodes("test", K, 5, population_K)
        per_user = test["user_id"].value_counts()
        assert per_user.max() == 3 and per_user.min() >= 1 and len(test) > test["user_id"].nunique()
    assert multi.episodes_path("test", 1, 5, 10).name == "episodes_test_K1_Q5_P10.parquet"
    assert multi.episodes_path("test", 10, 5, 10).name == "episodes_test_K10_Q5.parquet"
    assert multi.episodes_path("train", 1, 5, 10).name == "episodes_train_K1_Q5.parquet"


def test_cli_accepts_test_episodes_per_user_and_refuses_zero(tmp_path, capsys):
    common = [
        "data",
        "synth",
        "--users",
        "300",
        "--switch-tail",
        "1.6",
        "--sessions-tail",
        "0.7",
        "--K",
        "2",
        "--Q",
        "3",
        "--data-dir",
        str(tmp_path),
    ]
    assert main([*common, "--name", "two", "--test-episodes-per-user", "2"]) == 0
    assert open_dataset("two", tmp_path).manifest["pipeline"]["test_episodes_per_user"] == 2
    assert main([*common, "--name", "zero", "--test-episodes-per-user", "0"]) == 2
    assert "test_episodes_per_user 0" in capsys.readouterr().err
    assert not (tmp_path / "processed" / "zero").exists()


# ----------------------------------------------------------------------------------------------
# Grids: one population per Q, run hashes of single-K grids unchanged


def _grid(tmp_path, shots: str) -> str:
    path = tmp_path / "g.toml"
    path.write_text(f'name = "g"\ndatasets = ["d"]\nseeds = [0, 1]\nshots = [{shots}]\n[[cells]]\nmethod = "random"\n')
    return str(path)


# RunConfig.hash of these random runs, computed by main's code before population_K existed.
MAIN_RUN_HASHES = {(5, 0): "3cdff3cb95bfdd39", (5, 1): "2a31002a46c52038", (10, 0): "7576fdf9b33081c3", (10, 1): "9e05a1041db585d4"}
DATASET_HASH = "h" * 8


def test_single_K_grids_keep_their_run_hashes(tmp_path):
    runs = expand(load_grid(_grid(tmp_path, "{ K = 5, Q = 10 }")), {"d": DATASET_HASH}, code="")  # no fingerprint: main's identity
    assert {(r.K, r.seed): r.hash for r in runs} == {k: v for k, v in MAIN_RUN_HASHES.items() if k[0] == 5}
    assert all(r.population_K is None and "population_K" not in r.identity() for r in runs)


def test_several_K_share_the_population_of_the_largest_K_at_each_Q(tmp_path):
    shots = "{ K = 1, Q = 10 }, { K = 5, Q = 10 }, { K = 10, Q = 10 }, { K = 2, Q = 3 }"
    runs = expand(load_grid(_grid(tmp_path, shots)), {"d": DATASET_HASH}, code="")
    assert {(r.K, r.Q): r.population_K for r in runs} == {(1, 10): 10, (5, 10): 10, (10, 10): None, (2, 3): None}
    hashes = {(r.K, r.seed): r.hash for r in runs if r.Q == 10}
    assert hashes[(10, 0)] == MAIN_RUN_HASHES[(10, 0)] and hashes[(10, 1)] == MAIN_RUN_HASHES[(10, 1)]
    assert hashes[(5, 0)] != MAIN_RUN_HASHES[(5, 0)]  # a K=5 run scored on another population is another run
    assert RunConfig("d", DATASET_HASH, "random", None, 0, 5, 10, (), "random", code="", population_K=5).hash == MAIN_RUN_HASHES[(5, 0)]
    shots_grid = expand(load_grid("shots"), {"xuetangx-synth": DATASET_HASH})
    assert {r.population_K or r.K for r in shots_grid} == {10}


def test_shots_grid_runs_score_K1_and_K10_on_the_same_learners_and_query_pairs(tmp_path, capsys):
    """End to end through the runner: popularity ignores the support set, so equal per-episode scores
    across K mean equal query pairs; and the dry run reports the episode count once."""
    from bench.run.execute import execute_run
    from bench.store.results import load_results

    build_synthetic("pop", tmp_path, SynthConfig(users=400, seed=1, sessions_tail=0.7, switch_tail=1.6), pipeline.PipelineConfig())
    dataset = open_dataset("pop", tmp_path)
    path = tmp_path / "shots.toml"
    path.write_text(
        'name = "s"\ndatasets = ["pop"]\nseeds = [0]\n'
        'shots = [{ K = 1, Q = 10 }, { K = 3, Q = 10 }, { K = 10, Q = 10 }]\n[[cells]]\nmethod = "popularity"\n'
    )
    runs = expand(load_grid(str(path)), {"pop": dataset.content_hash})
    for run in runs:
        execute_run(run, str(tmp_path), str(tmp_path / "results"), 1, "cpu")
    episodes = load_results(tmp_path / "results").episodes
    by_K = {K: frame.sort_values("episode") for K, frame in episodes.groupby("K")}
    assert set(by_K) == {1, 3, 10}
    for K in (1, 3):
        assert list(by_K[K]["user_id"]) == list(by_K[10]["user_id"])
        assert list(by_K[K]["acc@1"]) == list(by_K[10]["acc@1"]) and list(by_K[K]["mrr"]) == list(by_K[10]["mrr"])
    labels = {K: [list(q) for q in dataset.episodes("test", K, 10, 10)["query_labels"]] for K in (1, 10)}
    assert labels[1] == labels[10]

    capsys.readouterr()
    assert main(["run", "--grid", str(path), "--data-dir", str(tmp_path), "--results", str(tmp_path / "results"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    n = len(by_K[10])
    assert out.count("test episodes") == 1 and f"pop: {n:,} test episodes" in out and "the same for K = 1, 3, 10" in out


def test_maml_validates_on_the_population_of_its_run(tmp_path, monkeypatch):
    """The val episodes MAML selects its checkpoint on come from the run's population too."""
    from bench.data.dataset import Dataset
    from bench.methods.registry import METHODS, RunContext

    build_synthetic("val", tmp_path, SynthConfig(users=400, seed=1, sessions_tail=0.7, switch_tail=1.6), pipeline.PipelineConfig())
    dataset = open_dataset("val", tmp_path)
    calls = []
    original = Dataset.episodes

    def spy(self, split, K, Q, population_K=None):
        calls.append((split, K, Q, population_K))
        return original(self, split, K, Q, population_K)

    monkeypatch.setattr(Dataset, "episodes", spy)
    params = {"embed_dim": 8, "hidden_dim": 8, "meta_iterations": 1, "meta_batch": 2, "val_every": 1, "val_episodes": 2, "inner_steps": 1}
    ctx = RunContext(dataset, seed=0, K=1, Q=10, population_K=10, params=params, init="random", cache_dir=tmp_path)
    METHODS["maml"].build(ctx).fit(ctx)
    assert ("val", 1, 10, 10) in calls and ("train", 1, 10, None) in calls
