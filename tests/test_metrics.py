"""The one evaluator (bench/core/metrics.py) against a brute-force reference and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.core.metrics import episode_metrics, evaluate_scores, query_metrics, ranks_from_scores


def brute_force_rank(row: list[float], target: int) -> int:
    """1 + the real items (1..n, never padding 0) other than the target that score >= it or NaN;
    a NaN target ranks last."""
    n_items = len(row) - 1
    if math.isnan(row[target]):
        return n_items
    return 1 + sum(1 for item in range(1, len(row)) if item != target and (math.isnan(row[item]) or row[item] >= row[target]))


def test_ranks_match_a_brute_force_reference_on_random_scores_with_ties_and_nans():
    rng = np.random.default_rng(0)
    for trial in range(30):
        n, n_items = 8, int(rng.integers(2, 15))
        scores = rng.integers(0, 4, size=(n, n_items + 1)).astype(np.float32)  # few values: many ties
        scores[rng.random(scores.shape) < 0.1] = np.nan
        targets = rng.integers(1, n_items + 1, size=n)
        got = ranks_from_scores(torch.from_numpy(scores), torch.from_numpy(targets)).tolist()
        expected = [brute_force_rank(scores[i].tolist(), int(targets[i])) for i in range(n)]
        assert got == expected, f"trial {trial}"


def test_hand_computed_ranks():
    scores = torch.tensor(
        [
            [9.0, 0.5, 0.2, 0.1, 0.0],  # padding scores highest but never competes: target 1 is first
            [0.0, 0.5, 0.5, 0.1, 0.0],  # a tie with item 1 counts against target 2: rank 2
            [0.0, 0.5, 0.5, 0.5, 0.5],  # all tied: last
            [0.0, float("nan"), 0.2, 0.9, 0.1],  # NaN on another item ranks above the target 3
            [0.0, 0.1, float("nan"), 0.2, 0.3],  # NaN on the target: last
        ]
    )
    targets = torch.tensor([1, 2, 4, 3, 2])
    assert ranks_from_scores(scores, targets).tolist() == [1, 2, 4, 2, 4]


def test_nan_elsewhere_counts_against_the_model():
    # the target has the best real score, but one other item is NaN: not a hit
    scores = torch.tensor([[0.0, 5.0, float("nan"), 1.0]])
    assert ranks_from_scores(scores, torch.tensor([1])).tolist() == [2]


def test_hand_computed_metric_values():
    values = query_metrics(np.array([1, 2, 5, 10, 11]))
    assert values["acc@1"].tolist() == [1, 0, 0, 0, 0]
    assert values["recall@5"].tolist() == [1, 1, 1, 0, 0]
    assert values["recall@10"].tolist() == [1, 1, 1, 1, 0]
    assert values["mrr"] == pytest.approx([1, 1 / 2, 1 / 5, 1 / 10, 1 / 11])
    assert values["ndcg@10"] == pytest.approx([1, 1 / math.log2(3), 1 / math.log2(6), 1 / math.log2(11), 0])
    episode = episode_metrics(np.array([1, 3]))
    assert episode["mrr"] == pytest.approx((1 + 1 / 3) / 2)
    assert episode["ndcg@10"] == pytest.approx((1 + 0.5) / 2)  # 1/log2(4) = 0.5


def test_evaluate_scores_lines_episodes_up_across_chunks_and_refuses_a_mismatch():
    n_items = 4
    first = torch.zeros(2, 2, n_items + 1)
    first[0, :, 3] = 1.0  # episode 0: item 3 best for both queries
    first[1, :, 1] = 1.0  # episode 1: item 1 best
    second = [torch.tensor([[100.0, 0.0, 0.0, 0.0, 1.0]])]  # episode 2 (Q=1): padding huge, item 4 best
    rows = evaluate_scores([first, second], [[3, 3], [1, 2], [4]])
    assert [row["acc@1"] for row in rows] == [1.0, 0.5, 1.0]
    assert rows[1]["mrr"] == pytest.approx((1 + 1 / 4) / 2)  # target 2 ties items 2, 3, 4 at 0: rank 4
    with pytest.raises(ValueError, match="cover"):
        evaluate_scores([first], [[3, 3], [1, 2], [4]])


def test_padding_is_never_a_target():
    with pytest.raises(ValueError, match="real item"):
        ranks_from_scores(torch.zeros(1, 4), torch.tensor([0]))
