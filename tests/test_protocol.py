"""One protocol for every method: what a label can never be is recorded in dataset.json
(``pipeline.excluded_from_ranking``) and the one evaluator leaves it out of every ranking."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from bench.core.metrics import evaluate_scores, ranks_from_scores
from bench.data import importers, pipeline
from bench.data.dataset import open_dataset
from bench.methods.registry import METHODS, RunContext, evaluate_method


def rank_without(row: list[float], target: int, excluded: int) -> int:
    """The reference: the item ``excluded`` deleted from the catalogue, then 1 + the other real items
    scoring >= the target or NaN; a NaN target ranks last among what is left."""
    kept = [item for item in range(1, len(row)) if item != excluded]
    if math.isnan(row[target]):
        return len(kept)
    return 1 + sum(1 for item in kept if item != target and (math.isnan(row[item]) or row[item] >= row[target]))


# ----------------------------------------------------------------------------------------------
# The evaluator


def test_excluded_ranks_match_the_catalogue_without_that_item():
    rng = np.random.default_rng(1)
    for trial in range(30):
        n, n_items = 8, int(rng.integers(3, 15))
        scores = rng.integers(0, 4, size=(n, n_items + 1)).astype(np.float32)
        scores[rng.random(scores.shape) < 0.1] = np.nan
        targets = rng.integers(1, n_items + 1, size=n)
        excluded = rng.integers(0, n_items + 1, size=n)
        excluded[excluded == targets] = 0  # a row whose excluded item is its target is refused (below)
        got = ranks_from_scores(torch.from_numpy(scores), torch.from_numpy(targets), torch.from_numpy(excluded)).tolist()
        expected = [rank_without(scores[i].tolist(), int(targets[i]), int(excluded[i])) for i in range(n)]
        assert got == expected, f"trial {trial}"


def test_a_scorer_whose_top_item_is_excluded_is_not_penalised():
    scores = torch.tensor(
        [
            [0.0, 0.9, 0.5, 0.1, 0.0],  # item 1 (excluded) on top, target 2 second: a hit
            [0.0, 0.9, 0.5, 0.7, 0.0],  # item 1 excluded, item 3 still beats target 2: rank 2
            [0.0, 0.9, 0.5, 0.1, 0.0],  # nothing excluded (0): rank 2
            [0.0, float("nan"), 0.5, 0.1, 0.0],  # a NaN on the excluded item does not count either
            [0.0, 0.9, float("nan"), 0.1, 0.0],  # a NaN target: last of the 3 items left
        ]
    )
    targets, excluded = torch.tensor([2, 2, 2, 2, 2]), torch.tensor([1, 1, 0, 1, 1])
    assert ranks_from_scores(scores, targets, excluded).tolist() == [1, 2, 2, 1, 3]
    assert ranks_from_scores(scores, targets).tolist() == [2, 3, 2, 2, 4]  # the old call is unchanged
    assert ranks_from_scores(scores, targets, torch.zeros(5, dtype=torch.long)).tolist() == [2, 3, 2, 2, 4]
    removed = torch.cat([scores[:, :1], scores[:, 2:]], dim=1)  # the same scorer with item 1 removed
    assert ranks_from_scores(scores[:2], targets[:2], excluded[:2]).tolist() == ranks_from_scores(removed[:2], targets[:2] - 1).tolist()


def test_an_excluded_target_contradicts_the_protocol():
    with pytest.raises(ValueError, match="contradicts its protocol"):
        ranks_from_scores(torch.zeros(2, 4), torch.tensor([1, 2]), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="excluded"):
        ranks_from_scores(torch.zeros(2, 4), torch.tensor([1, 2]), torch.tensor([0, 4]))  # not an item
    with pytest.raises(ValueError, match="match"):
        ranks_from_scores(torch.zeros(2, 4), torch.tensor([1, 2]), torch.tensor([0]))


def test_evaluate_scores_excludes_per_query_and_equals_the_removed_item_scorer():
    n_items = 5
    chunk = torch.zeros(2, 2, n_items + 1)
    chunk[:, :, 4] = 2.0  # item 4 first everywhere, item 3 second
    chunk[:, :, 3] = 1.0
    labels, excluded = [[3, 3], [3, 1]], [[4, 0], [4, 4]]
    rows = evaluate_scores([chunk], labels, excluded)
    assert [row["acc@1"] for row in rows] == [0.5, 0.5]
    assert rows[1]["mrr"] == pytest.approx((1 + 1 / 4) / 2)  # target 1: item 3 beats it, 2 and 5 tie it, 4 left out: rank 4
    assert evaluate_scores([chunk], labels) == evaluate_scores([chunk], labels, [[0, 0], [0, 0]])
    with pytest.raises(ValueError, match="query_excluded covers"):
        evaluate_scores([chunk], labels, [[4, 0]])


# ----------------------------------------------------------------------------------------------
# The dataset records its protocol; episodes carry it


def test_a_built_dataset_records_the_last_prefix_item_and_episodes_carry_it(tiny_dataset):
    assert tiny_dataset.manifest["pipeline"]["excluded_from_ranking"] == pipeline.LAST_PREFIX_ITEM
    assert tiny_dataset.excluded_from_ranking == "last_prefix_item"
    for split in pipeline.SPLITS:
        episodes = tiny_dataset.episodes(split, 5, 10)
        assert [list(x) for x in episodes["query_excluded"]] == [[int(p[-1]) for p in prefixes] for prefixes in episodes["query_prefixes"]]
        for labels, excluded in zip(episodes["query_labels"], episodes["query_excluded"]):
            assert not (np.asarray(labels) == np.asarray(excluded)).any()


def test_a_dataset_without_the_key_is_decided_from_its_pairs(tiny_dataset, tmp_path):
    import shutil

    copy = tmp_path / "processed" / "old"
    shutil.copytree(tiny_dataset.root, copy)
    manifest = json.loads((copy / pipeline.MANIFEST).read_text())
    del manifest["pipeline"]["excluded_from_ranking"]
    (copy / pipeline.MANIFEST).write_text(json.dumps(manifest))
    assert open_dataset("old", tmp_path).excluded_from_ranking == pipeline.LAST_PREFIX_ITEM
    manifest["pipeline"]["excluded_from_ranking"] = "first_prefix_item"
    (copy / pipeline.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(Exception, match="not a known rule"):
        _ = open_dataset("old", tmp_path).excluded_from_ranking


def test_exclusion_rule_from_pairs_and_query_excluded_from_prefixes():
    prefixes = pa.array([[1, 2], [3], [], [2, 5, 4]], type=pa.list_(pa.int64()))
    assert pipeline.last_items(prefixes).tolist() == [2, 3, 0, 4]
    assert pipeline.labels_repeating_last(prefixes, pa.array([3, 1, 1, 4])) == 1
    assert pipeline.exclusion_rule([(prefixes, pa.array([3, 1, 1, 1]))]) == pipeline.LAST_PREFIX_ITEM
    assert pipeline.exclusion_rule([(prefixes, pa.array([3, 1, 1, 1])), (prefixes, pa.array([2, 1, 1, 1]))]) is None
    nested = pa.array([[[1, 2], [7]], [[3, 9, 8]]], type=pa.list_(pa.list_(pa.int64())))
    assert pipeline.query_excluded(nested, "last_prefix_item").to_pylist() == [[2, 7], [8]]
    assert pipeline.query_excluded(nested, None).to_pylist() == [[0, 0], [0]]
    assert pipeline.query_excluded(nested.slice(1), "last_prefix_item").to_pylist() == [[8]]


def _seed_folder(root, repeat: bool, K=2, Q=3, n_items=12):
    """Seed-style episodes (ids 1..n_items) where no label repeats its prefix's last item, unless ``repeat``."""
    rng = np.random.default_rng(3)
    (root / "episodes").mkdir(parents=True)
    (root / "vocab").mkdir()
    (root / "vocab" / "course2id.json").write_text(json.dumps({f"C{c:03d}": c + 1 for c in range(n_items)}))
    for split, users in (("train", 4), ("val", 3), ("test", 3)):
        rows = []
        for u in range(users):
            seq = []
            for _ in range(K + Q):
                prefix = [int(x) for x in rng.integers(1, n_items + 1, size=int(rng.integers(1, 4)))]
                label = int(rng.integers(1, n_items))
                seq.append((prefix, label + 1 if label >= prefix[-1] else label))  # never prefix[-1]
            if repeat and split == "train" and u == 0:
                seq[1] = (seq[1][0], seq[1][0][-1])  # one label equal to its prefix's last item
            rows.append(
                {
                    "user_id": f"{split}{u}",
                    "support_prefixes": [p for p, _ in seq[:K]],
                    "support_labels": [l for _, l in seq[:K]],
                    "query_prefixes": [p for p, _ in seq[K:]],
                    "query_labels": [l for _, l in seq[K:]],
                }
            )
        pd.DataFrame(rows).to_parquet(root / "episodes" / f"episodes_{split}_K{K}_Q{Q}.parquet")


@pytest.mark.parametrize("repeat, rule", [(False, "last_prefix_item"), (True, None)])
def test_seed_episodes_record_the_protocol_their_data_allows(tmp_path, repeat, rule):
    _seed_folder(tmp_path / "seed", repeat)
    ds = importers.import_seed_episodes(tmp_path / "seed", name="seeded", data_dir=tmp_path)
    assert ds.manifest["pipeline"]["excluded_from_ranking"] == rule and ds.excluded_from_ranking == rule
    test = ds.episodes("test", 2, 3)
    expected = [[int(p[-1]) if rule else 0 for p in prefixes] for prefixes in test["query_prefixes"]]
    assert [list(x) for x in test["query_excluded"]] == expected


# ----------------------------------------------------------------------------------------------
# Every method through evaluate_method, val and test alike


CHEAP = ("random", "popularity", "markov", "sr", "sknn", "vsknn", "recency", "recency-markov")


def fitted(name, dataset, K=5, Q=10):
    spec = METHODS[name]
    ctx = spec.prepare(RunContext(dataset, seed=0, K=K, Q=Q))
    method = spec.build(ctx)
    return method, method.fit(ctx)


@pytest.mark.parametrize("name", CHEAP)
def test_every_method_is_ranked_without_the_excluded_item(tiny_dataset, name):
    method, _ = fitted(name, tiny_dataset)
    test = tiny_dataset.episodes("test", 5, 10)
    for mode in METHODS[name].modes:
        got = evaluate_method(method, test, mode)
        chunks = [episode for chunk in method.score(test, mode) for episode in chunk]
        expected = []
        for scores, labels, excluded in zip(chunks, test["query_labels"], test["query_excluded"]):
            ranks = [rank_without(row.tolist(), int(t), int(e)) for row, t, e in zip(scores, labels, excluded)]
            expected.append(float(np.mean(np.asarray(ranks) == 1)))
        assert [row["acc@1"] for row in got] == pytest.approx(expected), (name, mode)
        no_protocol = evaluate_method(method, test.drop(columns=["query_excluded"]), mode)
        assert no_protocol == evaluate_scores(method.score(test, mode), list(test["query_labels"]))  # without it: nothing excluded


def test_the_rule_baselines_gain_when_the_impossible_course_leaves_the_ranking(tiny_dataset):
    method, _ = fitted("sr", tiny_dataset)
    test = tiny_dataset.episodes("test", 5, 10)
    top = np.concatenate([chunk.argmax(dim=-1).numpy().ravel() for chunk in method.score(test, "zero-shot")])
    last = np.concatenate([np.asarray(x) for x in test["query_excluded"]])
    assert (top == last).mean() > 0.3  # sr's self-rules put the course just taken first

    def acc(frame):
        return np.mean([row["acc@1"] for row in evaluate_method(method, frame, "zero-shot")])

    assert acc(test) > acc(test.drop(columns=["query_excluded"]))


def test_validation_uses_the_test_protocol(tiny_dataset):
    method, info = fitted("sr", tiny_dataset)
    val = tiny_dataset.episodes("val", 5, 10)
    for weight, recorded in info["support_weight_val_acc@1"].items():
        method.support_weight = float(weight)
        assert np.mean([row["acc@1"] for row in evaluate_method(method, val, "few-shot")]) == pytest.approx(recorded)
