"""The shared pipeline on small synthetic data: split, ordering, ids, determinism, lazy episodes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.core.errors import BenchError
from bench.data import pipeline
from bench.data.dataset import open_dataset
from bench.data.synth import make_synthetic_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("data"), name="tiny", users=500, seed=0)


def test_split_is_user_disjoint_and_covers_every_user_with_pairs(tiny):
    users = {split: set(tiny.pairs(split)["user_id"]) for split in pipeline.SPLITS}
    assert not users["train"] & users["val"]
    assert not users["train"] & users["test"]
    assert not users["val"] & users["test"]
    total = sum(len(u) for u in users.values())
    assert total == tiny.manifest["counts"]["users_with_pairs"]
    assert len(users["train"]) == int(0.8 * total) and len(users["val"]) == int(0.1 * total)
    for split in pipeline.SPLITS:
        assert set(tiny.episodes(split, 5, 10)["user_id"]) <= users[split]


def test_support_precedes_query_in_time(tiny):
    for split in pipeline.SPLITS:
        episodes = tiny.episodes(split, 5, 10)
        assert len(episodes) > 0
        for support, query in zip(episodes["support_timestamps"], episodes["query_timestamps"]):
            assert len(support) == 5 and len(query) == 10
            assert max(support) <= min(query)
            assert list(support) == sorted(support) and list(query) == sorted(query)


def test_id_zero_is_never_a_real_item(tiny):
    ids = sorted(tiny.vocab.values())
    assert ids == list(range(1, tiny.n_items + 1))
    assert list(tiny.vocab) == sorted(tiny.vocab)  # ids follow the sorted raw ids
    for split in pipeline.SPLITS:
        pairs = tiny.pairs(split)
        flat = np.concatenate(pairs["prefix"].to_list())
        assert flat.min() >= 1 and pairs["label"].min() >= 1
        assert flat.max() <= tiny.n_items and pairs["label"].max() <= tiny.n_items
        episodes = tiny.episodes(split, 5, 10)
        labels = np.concatenate(episodes["support_labels"].to_list() + episodes["query_labels"].to_list())
        assert labels.min() >= 1


def test_pairs_follow_the_session_rules(tiny):
    pairs = tiny.pairs("train")
    assert list(pairs.columns)[:5] == ["user_id", "session_id", "prefix", "label", "timestamp"]
    assert list(pairs.columns)[5:] == list(tiny.manifest["srs"]["pair_columns"])  # each pair's session statistics and SRS
    assert pairs["user_id"].map(type).eq(str).all() and pairs["timestamp"].dtype == np.int64
    lengths = pairs["prefix"].map(len)
    assert lengths.min() >= 1 and lengths.max() <= 50
    # consecutive repeats are removed, so a label never equals the last item of its prefix
    assert (pairs["label"].to_numpy() != np.array([p[-1] for p in pairs["prefix"]])).all()
    # inside a session, each pair's prefix is the previous pair's prefix plus its label
    first = pairs.groupby(["user_id", "session_id"], sort=False).head(2)
    for _, group in first.groupby(["user_id", "session_id"]):
        if len(group) == 2:
            a, b = group.iloc[0], group.iloc[1]
            assert list(b["prefix"]) == (list(a["prefix"]) + [a["label"]])[-50:]


def test_prefixes_are_truncated_to_max_prefix(tmp_path):
    ds = make_synthetic_dataset(tmp_path, name="short", users=300, seed=1, max_prefix=2, K=1, Q=1)
    lengths = pd.concat([ds.pairs(s) for s in pipeline.SPLITS])["prefix"].map(len)
    assert lengths.max() == 2 and (lengths == 1).any()
    assert ds.manifest["pipeline"]["max_prefix"] == 2


def test_val_and_test_take_each_users_last_pairs_and_train_slides(tiny):
    for split in ("val", "test"):
        pairs = tiny.pairs(split)
        episodes = tiny.episodes(split, 5, 10)
        assert episodes["user_id"].is_unique
        for _, ep in episodes.head(5).iterrows():
            own = pairs[pairs["user_id"] == ep["user_id"]].sort_values("timestamp", kind="stable")
            assert list(own["label"].iloc[-15:]) == list(ep["support_labels"]) + list(ep["query_labels"])
    pairs = tiny.pairs("train")
    counts = pairs["user_id"].value_counts()
    expected = int((counts[counts >= 15] - 15 + 1).sum())
    assert len(tiny.episodes("train", 5, 10)) == expected


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = make_synthetic_dataset(tmp_path / "a", name="d", users=300, seed=7)
    b = make_synthetic_dataset(tmp_path / "b", name="d", users=300, seed=7)
    c = make_synthetic_dataset(tmp_path / "c", name="d", users=300, seed=8)
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert any(str(f).endswith(".parquet") for f in files)
    for rel in files:
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel
    assert a.content_hash == b.content_hash != c.content_hash
    assert a.manifest["source"]["parameters"]["seed"] == 7


def test_other_k_q_are_built_lazily_and_cached(tiny):
    path = tiny.episodes_path("train", 1, 3)
    assert not path.exists()
    episodes = tiny.episodes("train", 1, 3)
    assert path.exists()
    assert episodes["support_labels"].map(len).eq(1).all() and episodes["query_labels"].map(len).eq(3).all()
    counts = tiny.pairs("train")["user_id"].value_counts()
    assert len(episodes) == int((counts[counts >= 4] - 4 + 1).sum())
    mtime = path.stat().st_mtime_ns
    again = open_dataset(tiny.name, tiny.root.parent.parent).episodes("train", 1, 3)
    assert path.stat().st_mtime_ns == mtime
    assert again["user_id"].tolist() == episodes["user_id"].tolist()
    assert not list(path.parent.glob(".*tmp*"))


def test_k_plus_q_too_large_names_the_limit(tiny):
    most = int(tiny.pairs("test")["user_id"].value_counts().max())
    with pytest.raises(BenchError, match=rf"K\+Q={most + 1} .*K\+Q <= {most}"):
        tiny.episodes("test", 1, most)
    assert not tiny.episodes_path("test", 1, most).exists()


def test_unknown_dataset_lists_those_present(tiny):
    with pytest.raises(BenchError, match=r"no dataset 'nope'.*present: tiny"):
        open_dataset("nope", tiny.root.parent.parent)


def test_pairs_are_cached_between_opens(tiny):
    a = tiny.pairs("val")
    a["extra"] = 1  # a caller's new column must not leak into the cache
    b = open_dataset(tiny.name, tiny.root.parent.parent).pairs("val")
    assert "extra" not in b.columns and b["prefix"].iloc[0] is a["prefix"].iloc[0]


def test_manifest_records_parameters_counts_and_hashes(tiny):
    m = json.loads((tiny.root / "dataset.json").read_text())
    assert m["source"]["kind"] == "synth" and m["source"]["parameters"]["users"] == 500
    assert m["pipeline"]["split_seed"] == 20260107 and m["pipeline"]["K"] == 5
    assert m["counts"]["splits"]["test"]["episodes"] == len(tiny.episodes("test", 5, 10))
    assert m["files"]["vocab/course2id.json"] == pipeline.sha256_file(tiny.root / "vocab" / "course2id.json")
    assert m["content_hash"] == pipeline.content_hash(m["files"])
