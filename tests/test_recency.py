"""recency and recency-markov (baselines/recency.py): rankings known by hand on hand-made data,
deterministic tie-breaks, weight 0 = zero-shot, the weights chosen on val and recorded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from baselines.recency import recency_part, support_courses
from bench.core.metrics import popularity_then_id
from bench.methods.registry import METHODS, RunContext, evaluate_method

N_ITEMS = 10
# train sessions: label popularity 6: 3, 8: 2, 9: 2, 10: 1, the rest 0; Markov row of 5: {9: 1}
SESSIONS = [[1, 6], [2, 6], [4, 6], [1, 8], [2, 8], [1, 9], [5, 9], [2, 10]]
QUERY = [3, 5, 3, 7, 5]  # last item 5; earlier distinct items, most recent first: 7, 3
SUPPORT = ([[2, 4], [4, 1]], [10, 5])  # support courses: 4 in two pairs; 2, 10, 1 in one; 5 (the query's last) left out


class Hand:
    """A dataset handle: the train pairs of SESSIONS; every split's episodes are ``episodes``."""

    def __init__(self, episodes: pd.DataFrame):
        rows = [(f"u{n}", "s", items[:t], items[t], 1000 * n + t) for n, items in enumerate(SESSIONS) for t in range(1, len(items))]
        self.train = pd.DataFrame(rows, columns=["user_id", "session_id", "prefix", "label", "timestamp"])
        self.n_items, self.content_hash, self._episodes = N_ITEMS, "hand", episodes

    def pairs(self, split: str) -> pd.DataFrame:
        return self.train

    def episodes(self, split: str, K: int, Q: int, population_K: int | None = None) -> pd.DataFrame:
        return self._episodes


def episode(query=QUERY, label=1, support=SUPPORT) -> pd.DataFrame:
    return pd.DataFrame(
        [{"user_id": "x", "support_prefixes": support[0], "support_labels": support[1], "query_prefixes": [query], "query_labels": [label]}]
    )


def fitted(name: str, val: pd.DataFrame | None = None, **params):
    spec = METHODS[name]
    data = Hand(val if val is not None else episode())
    ctx = spec.prepare(RunContext(data, seed=0, K=2, Q=1, params=params))
    method = spec.build(ctx)
    return method, method.fit(ctx)


def scores(method, query=QUERY, mode="zero-shot") -> torch.Tensor:
    return torch.cat(list(method.score(episode(query), mode)))[0, 0]


def ranking(score: torch.Tensor) -> list[int]:
    real = score[1:]
    assert len(set(real.tolist())) == len(real), "a tie left among real items"
    return (torch.argsort(real, descending=True) + 1).tolist()


def test_zero_shot_is_the_rule_by_hand():
    method, info = fitted("recency")
    # 7, 3 from the prefix (5, its last, is not a candidate); then popularity 6 > 8 = 9 (lower id first) > 10, then ids 1, 2, 4, 5
    assert ranking(scores(method)) == [7, 3, 6, 8, 9, 10, 1, 2, 4, 5]
    assert ranking(scores(method, [5])) == [6, 8, 9, 10, 1, 2, 3, 4, 5, 7]  # nothing before the last: popularity, then id
    assert ranking(scores(method, [9, 9, 8, 1, 8, 2])) == [8, 1, 9, 6, 10, 2, 3, 4, 5, 7]
    assert scores(method)[0] == float("-inf")
    assert "support_weight" in info


def test_hand_parts_and_tie_break_key():
    part = recency_part([QUERY, [4], []], N_ITEMS + 1)
    assert part[0, 7] == 2.0 and part[0, 3] == 1.5 and part[0].sum() == 3.5 and part[1:].sum() == 0
    assert support_courses(*SUPPORT, N_ITEMS + 1).tolist() == [0, 1, 1, 0, 2, 1, 0, 0, 0, 0, 1]
    key = popularity_then_id(np.array([0.0, 2, 1, 2, 0]))
    assert np.argsort(-key).tolist() == [1, 3, 2, 0, 4]  # popularity, then the lower id


def test_few_shot_support_courses_join_after_the_prefix_or_before_it():
    small, info = fitted("recency", support_weights="0.01")
    assert info["support_weight"] == 0.01
    assert ranking(scores(small, mode="few-shot")) == [7, 3, 4, 10, 1, 2, 6, 8, 9, 5]
    large, _ = fitted("recency", support_weights="100")
    assert ranking(scores(large, mode="few-shot")) == [4, 10, 1, 2, 7, 3, 6, 8, 9, 5]


def test_few_shot_with_weight_zero_equals_zero_shot():
    method, info = fitted("recency", support_weights="0")
    assert info["support_weight"] == 0
    for query in (QUERY, [5], [1, 2, 3, 4, 2]):
        assert torch.equal(scores(method, query, "few-shot"), scores(method, query, "zero-shot"))


def test_the_support_weight_is_chosen_on_val_and_recorded():
    _, prefix_wins = fitted("recency", val=episode(label=7))  # the prefix's course: any weight < 1/2 keeps it first
    assert prefix_wins["support_weight"] == 0 and prefix_wins["support_weight_val_acc@1"]["0.0"] == 1.0
    _, support_wins = fitted("recency", val=episode(label=4))  # a support-only course: a large weight puts it first
    accs = support_wins["support_weight_val_acc@1"]
    assert accs["0.0"] == 0.0 and accs["100.0"] == 1.0
    assert support_wins["support_weight"] == min(float(w) for w, acc in accs.items() if acc == 1.0)


def test_recency_markov_weight_chosen_on_val_and_zero_is_recency():
    recency, _ = fitted("recency")
    zero, info = fitted("recency-markov", markov_weights="0")
    assert info["markov_weight"] == 0
    for query in (QUERY, [5], [2, 1, 2]):
        assert torch.equal(scores(zero, query), scores(recency, query))
    chosen, info = fitted("recency-markov", val=episode(label=9))  # Markov's 5 -> 9 beats the recency candidates
    assert info["markov_weight"] > 0 and info["markov_weight_val_acc@1"]["0.0"] == 0.0
    assert ranking(scores(chosen))[0] == 9
    _, info = fitted("recency-markov", val=episode(label=7))
    assert info["markov_weight"] == 0  # ties to the smaller weight


def test_on_built_data_the_last_prefix_item_is_not_first_and_metrics_are_finite(tiny_dataset):
    spec = METHODS["recency"]
    ctx = spec.prepare(RunContext(tiny_dataset, seed=0, K=5, Q=10))
    method = spec.build(ctx)
    method.fit(ctx)
    test = tiny_dataset.episodes("test", 5, 10)
    top = np.concatenate([chunk.argmax(dim=-1).numpy().ravel() for chunk in method.score(test, "zero-shot")])
    last = np.concatenate([np.asarray(x) for x in test["query_excluded"]])
    earlier = np.array([len(set(map(int, p))) > 1 for prefixes in test["query_prefixes"] for p in prefixes])
    assert earlier.any() and not (top == last)[earlier].any()  # with an earlier course, never the one just taken
    for mode in spec.modes:
        rows = evaluate_method(method, test, mode)
        assert len(rows) == len(test) and all(0 <= row["acc@1"] <= 1 for row in rows)
