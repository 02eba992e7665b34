"""markov, sr, sknn, vsknn: top items known by hand on tiny hand-made data; the few-shot versions;
the support weight's choice on val; the popularity tie-break's exactness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from baselines.memory import rank_scores
from bench.core.errors import BenchError
from bench.methods.registry import METHODS, RunContext, evaluate_method

N_ITEMS = 12


class HandData:
    """A dataset handle over hand-written train sessions; every split's episodes are ``episodes``."""

    def __init__(self, sessions: list[tuple[list[int], int]], episodes: pd.DataFrame | None = None):
        # one session per (prefix, label): items prefix + [label]; later sessions are more recent
        rows = []
        for number, (prefix, label) in enumerate(sessions):
            items = list(prefix) + [label]
            for t in range(1, len(items)):
                rows.append((f"u{number}", "s", items[:t], items[t], 1000 * number + t))
        self.train = pd.DataFrame(rows, columns=["user_id", "session_id", "prefix", "label", "timestamp"])
        self.n_items, self.content_hash = N_ITEMS, "hand"
        self._episodes = episodes if episodes is not None else episode([[1]], [2], [[1]], [2])

    def pairs(self, split: str) -> pd.DataFrame:
        return self.train

    def episodes(self, split: str, K: int, Q: int, population_K: int | None = None) -> pd.DataFrame:
        return self._episodes


def episode(support_prefixes, support_labels, query_prefixes, query_labels) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "user_id": "x",
                "support_prefixes": support_prefixes,
                "support_labels": support_labels,
                "query_prefixes": query_prefixes,
                "query_labels": query_labels,
            }
        ]
    )


def fitted(name: str, data, **params):
    spec = METHODS[name]
    ctx = spec.prepare(RunContext(data, seed=0, K=1, Q=1, params=params))
    method = spec.build(ctx)
    return method, method.fit(ctx)


def scores(method, query: list[int], mode: str = "zero-shot", support=([[11]], [12])) -> torch.Tensor:
    """Scores [V] of one query prefix (the support set only matters few-shot)."""
    return torch.cat(list(method.score(episode(support[0], support[1], [query], [1]), mode)))[0, 0]


def top(score: torch.Tensor, exclude=()) -> int:
    score = score.clone()
    score[list(exclude)] = float("-inf")
    return int(score.argmax())


def test_markov_follows_the_dominant_transition_and_falls_back_to_popularity():
    data = HandData([([1], 2)] * 3 + [([1], 3)] + [([4], 3)] * 5)  # 3 is the most popular label
    markov, _ = fitted("markov", data)
    assert top(scores(markov, [5, 1])) == 2
    assert top(scores(markov, [6])) == 3  # no transition from 6: popularity
    popularity_order = scores(markov, [6])
    assert popularity_order[3] > popularity_order[2] > popularity_order[7]  # labels 3 (6x) > 2 (3x) > never


def test_sr_weights_rules_from_earlier_items_by_one_over_distance():
    # from 1: -> 6 two steps back three times (3 x 1/2 = 1.5) beats -> 2, 5, 9, 10 directly once (1 each)
    data = HandData([([1, 5], 6), ([1, 9], 6), ([1, 10], 6), ([1], 2)] + [([8], 2)] * 5)  # 2 is the popular label
    sr, _ = fitted("sr", data)
    assert top(scores(sr, [1])) == 6
    markov, _ = fitted("markov", data)
    assert top(scores(markov, [1])) == 2  # only direct transitions count: a tie, popularity decides
    one_step, _ = fitted("sr", data, steps=1)
    assert top(scores(one_step, [1])) == 2  # steps=1 is first-order
    # three rules two steps back weigh 3 x 1/2 = 1.5 < two direct ones (2), though 6 is the popular label
    halved = HandData([([1, 5], 6), ([1, 9], 6), ([1, 10], 6), ([1], 2), ([1], 2)])
    assert top(scores(fitted("sr", halved)[0], [1])) == 2


def test_sr_pruning_keeps_each_items_strongest_rules_and_popularity_orders_the_rest():
    # rules from 1: -> 2 (2.0), -> 6 (1.5), -> 5 (1.0); label popularity 5 > 6 > 2
    data = HandData([([1, 5], 6), ([1, 9], 6), ([1, 10], 6), ([1], 2), ([1], 2)] + [([8], 5)] * 5)
    unpruned = scores(fitted("sr", data)[0], [1])
    pruned = scores(fitted("sr", data, pruning=1)[0], [1])
    assert top(unpruned) == top(pruned) == 2
    assert unpruned[6] > unpruned[5] and pruned[5] > pruned[6]


def test_sknn_the_most_similar_session_decides_and_sampling_takes_the_most_recent():
    # query [1, 2]: session {1, 2, 3} (jaccard 2/3) outvotes {1, 4} (1/3), though 4 is the popular label
    sessions = [([7], 4)] * 5 + [([1, 2], 3), ([1], 4)]
    sknn, _ = fitted("sknn", HandData(sessions))
    assert top(scores(sknn, [1, 2]), exclude=[1, 2]) == 3
    recent_only, _ = fitted("sknn", HandData(sessions), sample_size=1)  # {1, 4} is the most recent candidate
    assert top(scores(recent_only, [1, 2]), exclude=[1, 2]) == 4
    one_neighbour, _ = fitted("sknn", HandData([([1, 2], 3)] + [([1, 9], 4)] * 3), k=1)
    assert top(scores(one_neighbour, [1, 2]), exclude=[1, 2]) == 3  # k=1: the three {1, 9, 4} never vote


def test_vsknn_weighs_later_prefix_items_more_where_sknn_cannot_tell():
    data = HandData([([1], 5), ([3], 6)])  # 5 and 6 equally popular
    vsknn, _ = fitted("vsknn", data)
    assert top(scores(vsknn, [3, 1]), exclude=[1, 3]) == 5
    assert top(scores(vsknn, [1, 3]), exclude=[1, 3]) == 6
    sknn, _ = fitted("sknn", data)
    for query in ([3, 1], [1, 3]):
        score = scores(sknn, query)
        assert score[5] == score[6]  # jaccard 1/3 each: a tie, counted against the model


# train: after 1 comes 2; the learner's support says 1 -> 7 (or says nothing about 1)
FEW_SHOT_TRAIN = [([1], 2)] * 3
SAYS_SO = ([[1], [1]], [7, 7])
SAYS_NOTHING = ([[8], [8]], [9, 9])


@pytest.mark.parametrize("name", ["markov", "sr", "sknn", "vsknn"])
def test_few_shot_changes_the_prediction_only_when_the_support_says_so(name):
    method, info = fitted(name, HandData(FEW_SHOT_TRAIN), support_weights="100")
    assert info["support_weight"] == 100.0
    zero = scores(method, [1], "zero-shot", SAYS_SO)
    assert top(zero, exclude=[1]) == 2
    assert top(scores(method, [1], "few-shot", SAYS_SO), exclude=[1]) == 7
    assert torch.equal(scores(method, [1], "few-shot", SAYS_NOTHING), zero)


# kNN votes for the prefix's own item 1 at least as much as for 7 unless remind=False drops it
@pytest.mark.parametrize("name, params", [("markov", {}), ("sr", {}), ("sknn", {"remind": False}), ("vsknn", {"remind": False})])
def test_support_weight_is_the_best_on_val_ties_to_the_smaller(name, params):
    helpful = HandData(FEW_SHOT_TRAIN, episode(*SAYS_SO, [[1]], [7]))
    _, info = fitted(name, helpful, support_weights="0,100", **params)
    assert info["support_weight"] == 100.0 and info["support_weight_val_acc@1"] == {"0.0": 0.0, "100.0": 1.0}
    misleading = HandData(FEW_SHOT_TRAIN, episode(*SAYS_SO, [[1]], [2]))
    assert fitted(name, misleading, support_weights="0,100", **params)[1]["support_weight"] == 0.0
    silent = HandData(FEW_SHOT_TRAIN, episode(*SAYS_NOTHING, [[1]], [2]))
    assert fitted(name, silent, support_weights="100,0,3", **params)[1]["support_weight"] == 0.0  # all equal: the smallest


@pytest.mark.parametrize("name", ["sknn", "vsknn"])
def test_remind_false_never_recommends_the_prefix_items(name):
    data = HandData(FEW_SHOT_TRAIN + [([1], 3)])  # item 1 is in every neighbour of the query [1]
    assert top(scores(fitted(name, data)[0], [1])) == 1  # session-rec's default keeps it
    assert top(scores(fitted(name, data, remind=False)[0], [1])) == 2


def test_rank_scores_orders_by_primary_then_secondary_exactly_in_float32():
    primary = np.array([[0.0, 1e-12, 2e-12, 1e12, 1e12, 1e-12]])
    secondary = np.array([0.0, 5.0, 0.0, 1.0, 2.0, 5.0])
    ranked = rank_scores(primary, secondary)[0]
    assert ranked.dtype == torch.float32 and torch.isinf(ranked[0]) and ranked[0] < 0
    assert ranked[4] > ranked[3] > ranked[2] > ranked[1] == ranked[5]
    rng = np.random.default_rng(0)  # every pair of items compares as (primary, secondary) does, row by row
    primary = rng.choice([0.0, 0.0, 0.5, 1.0, 3.0], size=(4, 3, 9))
    secondary = rng.choice([0.0, 1.0, 2.0], size=9)
    ranked = rank_scores(primary, secondary).numpy()[..., 1:]
    key = primary[..., 1:] * 10 + secondary[1:]  # exact here: secondary < 10
    assert np.array_equal(np.sign(ranked[..., :, None] - ranked[..., None, :]), np.sign(key[..., :, None] - key[..., None, :]))


def test_bad_params_are_refused():
    with pytest.raises(BenchError, match="support_weights"):
        fitted("markov", HandData(FEW_SHOT_TRAIN), support_weights="a,b")
    with pytest.raises(BenchError, match="jaccard, cosine, vec"):
        fitted("sknn", HandData(FEW_SHOT_TRAIN), similarity="dice")
    with pytest.raises(BenchError, match="steps"):
        fitted("sr", HandData(FEW_SHOT_TRAIN), steps=0)


def test_rules_learn_from_generated_data(tiny_dataset):
    """On the tiny build (20 test episodes, weak signal) the rules must beat the random floor and
    Markov-1 popularity; which of the learned methods wins is the grids' business, not a test's."""
    test = tiny_dataset.episodes("test", 5, 10)
    acc = {}
    for name in ("random", "popularity", "markov", "sr"):
        spec = METHODS[name]
        ctx = spec.prepare(RunContext(tiny_dataset, seed=0))
        method = spec.build(ctx)
        method.fit(ctx)
        for mode in spec.modes:
            acc[name, mode] = float(np.mean([row["acc@1"] for row in evaluate_method(method, test, mode)]))
    assert min(acc["markov", "zero-shot"], acc["sr", "zero-shot"]) > acc["random", "zero-shot"], acc
    assert acc["markov", "zero-shot"] > acc["popularity", "zero-shot"], acc


def test_defaults_are_session_recs():
    assert {k: METHODS["sr"].defaults[k] for k in ("steps", "pruning")} == {"steps": 10, "pruning": 20}
    for name, similarity, weighting in (("sknn", "jaccard", "same"), ("vsknn", "vec", "div")):
        d = METHODS[name].defaults
        assert (d["k"], d["sample_size"], d["similarity"], d["weighting"], d["weighting_score"], d["remind"]) == (
            100,
            1000,
            similarity,
            weighting,
            weighting,
            True,
        )
