"""Data diagnostics on hand-made tiny datasets whose every figure is computed by hand here."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from bench.data import diagnostics, pipeline
from bench.data.diagnostics import compute, summary_items, summary_lines
from tests.helpers import outside_bands, seed_episodes_folder

KEYS = {
    "users_with_pairs_share",
    "pairs_per_user",
    "train_users_ge15_share",
    "courses_per_session_mean",
    "sessions_per_user",
    "prefix_length",
    "top1_label_share",
    "top5_label_share",
    "label_gini",
    "popularity_acc@1",
    "test_episodes",
    "revisit_rate",
    "markov1_acc@1",
    "support_signal",
    "markov_support",
    "prefix_length_hist",
    "label_share_curve",
    "excludes_last_prefix_item",
    "scored_queries",
    "recency_rule_acc@1",
    "scored_query_slices",
}


def pairs(rows) -> pa.Table:
    """rows: (user, session, prefix, label); timestamps follow the row order."""
    users, sessions, prefixes, labels = zip(*rows)
    return pa.Table.from_arrays(
        [
            pa.array(users, pa.string()),
            pa.array(sessions, pa.string()),
            pa.array(prefixes, pa.list_(pa.int64())),
            pa.array(labels, pa.int64()),
            pa.array(range(len(rows)), pa.int64()),
        ],
        schema=pipeline.PAIRS_SCHEMA,
    )


def episodes(rows) -> pa.Table:
    """rows: (user, [(support prefix, label)...], [(query prefix, label)...])."""
    return pa.Table.from_pydict(
        {
            "user_id": [u for u, _, _ in rows],
            "support_prefixes": [[p for p, _ in s] for _, s, _ in rows],
            "support_labels": [[l for _, l in s] for _, s, _ in rows],
            "query_prefixes": [[p for p, _ in q] for _, _, q in rows],
            "query_labels": [[l for _, l in q] for _, _, q in rows],
        }
    )


# Train transitions (last item -> label): 1->2 twice, 2->3, 2->4 (a tie in row 2), 3->1, 4->2, 4->5.
# Prefixes are cut at max_prefix=2: u1's third pair has position 3 but stores [2, 3].
TRAIN = pairs(
    [
        ("u1", "s1", [1], 2),
        ("u1", "s1", [1, 2], 3),
        ("u1", "s1", [2, 3], 1),
        ("u2", "s2", [1], 2),
        ("u2", "s3", [2], 4),
        ("u2", "s3", [2, 4], 2),  # the one revisit: 2 is in [2, 4]
        ("u3", "s4", [4], 5),
    ]
)
VAL = pairs([("v1", "s5", [5], 3), ("v1", "s6", [1], 2), ("v1", "s7", [2], 3)])
TEST = pairs([("t1", "sa", [5], 3), ("t1", "sb", [1], 2), ("t1", "sc", [2], 3), ("t2", "sd", [4], 1), ("t2", "se", [2], 4), ("t2", "sf", [5], 1)])
TEST_EPISODES = episodes([("t1", [([5], 3)], [([1], 2), ([2], 3)]), ("t2", [([4], 1)], [([2], 4), ([5], 1)])])
# val A: the support item 3 wins a tie in row 2 (any bonus > 0), while a bonus >= 1 would lose the
# query [1] -> 2 to the support items: the smallest positive bonus is best
VAL_A = episodes([("v1", [([5], 3)], [([1], 2), ([2], 3)])])


def _compute(val=VAL_A, test=TEST_EPISODES, **kw):
    args = {"max_prefix": 2, "n_users": 12, "n_sessions": 20, "sessions_per_user": [1, 1, 2, 5], **kw}
    return compute({"train": TRAIN, "val": VAL, "test": TEST}, {"val": val, "test": test}, 5, **args)


def test_every_documented_key_is_there():
    assert set(_compute()) == KEYS


def test_counts_shares_and_quantiles_by_hand():
    d = _compute()
    assert d["users_with_pairs_share"] == 0.5  # 6 users with pairs of 12
    assert d["pairs_per_user"] == {"p50": 3.0, "p90": 3.0}  # [1, 3, 3, 3, 3, 3]
    assert d["train_users_ge15_share"] == 0.0
    assert d["courses_per_session_mean"] == 1.8  # (16 pairs + 20 sessions) / 20
    assert d["sessions_per_user"] == {"p50": 1.5, "p90": 4.1, "mean": 2.25}  # [1, 1, 2, 5], linear percentiles
    assert d["test_episodes"] == 2


def test_prefix_lengths_are_session_positions_and_cut_at_max_prefix():
    d = _compute()
    # positions: thirteen 1s, two 2s, one 3 (u1's third pair, stored as [2, 3])
    assert d["prefix_length"] == {"p50": 1.0, "p90": 2.0, "p99": 2.85, "cut_share": 0.0625}
    assert d["prefix_length_hist"] == [13, 3]  # stored lengths 1 and 2
    assert d["revisit_rate"] == 0.0625  # 1 of 16


def test_without_sessions_the_stored_lengths_are_used():
    d = _compute(n_sessions=None, n_users=None, sessions_per_user=None)
    assert d["prefix_length"]["p99"] == 2.0 and d["prefix_length"]["cut_share"] == 0.1875  # 3 of 16 stored at the cap
    assert d["courses_per_session_mean"] is None and d["users_with_pairs_share"] is None
    assert d["sessions_per_user"] == {"p50": None, "p90": None, "mean": None}


def test_label_concentration():
    d = _compute()  # train labels 2, 3, 1, 2, 4, 2, 5
    assert d["top1_label_share"] == round(3 / 7, 6) and d["top5_label_share"] == 1.0
    # Gini of the counts [1, 1, 1, 1, 3]: 2 * (1 + 2 + 3 + 4 + 5 * 3) / (5 * 7) - 6 / 5
    assert d["label_gini"] == round(50 / 35 - 6 / 5, 6)
    assert d["label_share_curve"] == [[r, round(s / 7, 6)] for r, s in zip(range(1, 6), (3, 4, 5, 6, 7))]


def test_popularity_and_markov1_count_ties_against_the_model():
    d = _compute()
    # popularity: 2 is the only top label; test labels 2, 3, 4, 1 -> only the first is a hit (the rest tie at 1)
    assert d["popularity_acc@1"] == 0.25
    # Markov-1: [1] -> 2 hit; [2] -> 3 and [2] -> 4 tie in row 2 -> misses; [5] has no row -> miss
    assert d["markov1_acc@1"] == 0.25


def test_markov_support_bonus_is_chosen_on_val_then_applied_to_test():
    d = _compute(val=VAL_A)["markov_support"]
    # smallest positive bonus: ties in row 2 go to the support item; [5] -> 1 still ties 4 (both support items)
    assert d == {"bonus": diagnostics.BONUSES[1], "acc_without": 0.25, "acc_with": 0.75, "gain": 0.5}


def test_a_bonus_chosen_on_val_is_applied_to_test_even_where_it_hurts():
    train = pairs([("w1", "z1", [6], 7), ("w2", "z2", [6], 7), ("w3", "z3", [6], 8)])  # row 6: 7 (2/3), 8 (1/3)
    test = episodes([("t", [([9], 8)], [([6], 7), ([6], 7), ([6], 8)])])
    # val where the support does not help: bonus 0 (the smallest of the best)
    val = episodes([("v", [([9], 8)], [([6], 7), ([6], 7)])])
    d = compute({"train": train, "val": VAL, "test": TEST}, {"val": val, "test": test}, 9, max_prefix=2)["markov_support"]
    assert d == {"bonus": 0.0, "acc_without": round(2 / 3, 6), "acc_with": round(2 / 3, 6), "gain": 0.0}
    # val where the support item 8 must overtake 7: a bonus > 1/3, so 1.0; on test it loses two queries, wins one
    val = episodes([("v", [([9], 8)], [([6], 8), ([6], 8)])])
    d = compute({"train": train, "val": VAL, "test": TEST}, {"val": val, "test": test}, 9, max_prefix=2)["markov_support"]
    assert d == {"bonus": 1.0, "acc_without": round(2 / 3, 6), "acc_with": round(1 / 3, 6), "gain": round(-1 / 3, 6)}


# Test queries with returns: prefixes hold earlier courses, the last is never the label (repeats removed).
# popularity (train labels): 2 (3), then 1, 3, 4, 5 (1 each; ties: the lower id first for the rule)
RETURNS = episodes(
    [
        ("r1", [([5], 3)], [([1, 2], 1), ([3, 1, 2], 3)]),  # before last: 1 (hit); 2 excluded, 1 before last -> miss (label 3)
        ("r2", [([2, 4], 1)], [([4], 2), ([1, 4, 3], 1)]),  # no course before last: popularity -> 2 (hit); 4 before last -> miss
    ]
)


def test_repeat_ceiling_and_scored_query_shares_by_hand():
    d = _compute(test=RETURNS)
    # labels in their prefix: [1, 2] -> 1, [3, 1, 2] -> 3, [1, 4, 3] -> 1: 3 of 4; the course before last: only the first
    assert d["scored_queries"] == {"n": 4, "label_in_prefix": 0.75, "label_is_before_last": 0.25}
    # recency: [1, 2] -> 1 hit; [3, 1, 2] -> 1 miss; [4] -> popularity 2 hit; [1, 4, 3] -> 4 miss
    assert d["recency_rule_acc@1"] == 0.5 and d["excludes_last_prefix_item"] is True
    # popularity with the last item excluded: [1, 2] -> 2 is the last, so 1 (tied with 3, 4, 5: a miss) ...
    # [4] -> 2 hit; [3, 1, 2] -> 2 excluded, the rest tie: miss; [1, 4, 3] -> 2: miss (label 1)
    assert d["popularity_acc@1"] == 0.25


def test_rules_on_repeat_and_explore_queries_by_hand():
    d = _compute(test=RETURNS)["scored_query_slices"]
    # repeat: r1 [1, 2] -> 1, [3, 1, 2] -> 3; r2 [1, 4, 3] -> 1; explore: r2 [4] -> 2 (the recency rule's popularity fallback hits)
    # recency on repeat: r1 1 of 2, r2 0 of 1 -> (0.5 + 0) / 2 episodes (pooled over queries it would be 1/3)
    # Markov-1 rows: 2 -> 3 | 4 tie (r1 misses both), 3 -> 1 (r2 hits) -> (0 + 1) / 2; 4 -> 2 | 5 tie (explore miss)
    assert d == {
        "repeat": {"queries": 3, "share": 0.75, "episodes": 2, "popularity_acc@1": 0.0, "markov1_acc@1": 0.5, "recency_rule_acc@1": 0.25},
        "explore": {"queries": 1, "share": 0.25, "episodes": 1, "popularity_acc@1": 1.0, "markov1_acc@1": 0.0, "recency_rule_acc@1": 1.0},
    }


def test_a_slice_without_queries_has_no_accuracy():
    d = _compute()["scored_query_slices"]  # TEST_EPISODES: no label is in its prefix
    assert d["repeat"] == {"queries": 0, "share": 0.0, "episodes": 0, "popularity_acc@1": None, "markov1_acc@1": None, "recency_rule_acc@1": None}
    assert d["explore"]["queries"] == 4 and d["explore"]["popularity_acc@1"] == _compute()["popularity_acc@1"]


def test_markov_support_bonus_counts_only_support_courses_outside_the_query_prefix():
    # row 6 -> 7 (2/3), 8 (1/3); the support holds 8, which is also in the first query's prefix
    train = pairs([("w1", "z1", [6], 7), ("w2", "z2", [6], 7), ("w3", "z3", [6], 8)])
    val = episodes([("v", [([9], 8)], [([6], 8), ([6], 8)])])  # the bonus that lets 8 overtake 7 is chosen (1.0)
    test = episodes([("t", [([9], 8)], [([8, 6], 8), ([6], 8)])])
    d = compute({"train": train, "val": VAL, "test": TEST}, {"val": val, "test": test}, 9, max_prefix=2)["markov_support"]
    # the first query's 8 is in its prefix: no bonus there (a miss, 7 wins); the second gets it (a hit)
    assert d["bonus"] == 1.0 and d["acc_with"] == 0.5 and d["acc_without"] == 0.0


def test_nothing_is_excluded_where_the_data_keeps_consecutive_repeats():
    train = pairs([("w1", "z1", [6], 6), ("w2", "z2", [6], 7), ("w3", "z3", [7], 6)])  # a label equal to its prefix's last
    test = episodes([("t", [([7], 6)], [([6], 6), ([7], 6)])])
    d = compute({"train": train, "val": VAL, "test": TEST}, {"val": VAL_A, "test": test}, 9, max_prefix=2)
    assert d["excludes_last_prefix_item"] is False
    assert d["popularity_acc@1"] == 1.0  # 6 is the top label and may be predicted after [6]


def test_support_signal_own_against_another_learners_support():
    d = _compute()["support_signal"]
    # own: [2] -> 3 (support {5, 3}), [2] -> 4 and [5] -> 1 (support {4, 1}); the other's support holds none
    assert d == {"own": 0.75, "shuffled": 0.0, "ratio": None}


def test_support_signal_ratio_and_labels_already_in_the_prefix_do_not_count():
    # whichever cycle the seeded pairing draws, exactly one query (label 1) finds its label in another's support
    test = episodes(
        [
            ("a", [([7], 1)], [([2], 1), ([2], 5)]),
            ("b", [([8], 1)], [([3], 1), ([3], 6)]),
            ("c", [([9], 4)], [([4, 5], 4), ([6], 4)]),  # the first query's label is in its prefix: not counted
        ]
    )
    d = compute({"train": TRAIN, "val": VAL, "test": TEST}, {"val": VAL_A, "test": test}, 9, max_prefix=2)
    assert d["support_signal"] == {"own": 0.5, "shuffled": round(1 / 6, 6), "ratio": 3.0}


def test_many_pairs_per_user():
    train = pairs(
        [("a", "s", list(range(1, k + 1)), k + 1) for k in range(1, 16)]  # 15 pairs, one session
        + [("b", "t", [1], 2), ("c", "u", [1], 2), ("c", "v", [3], 4)]
    )
    d = compute({"train": train, "val": VAL, "test": TEST}, {"val": VAL_A, "test": TEST_EPISODES}, 16, max_prefix=50, n_users=5, n_sessions=10)
    assert d["train_users_ge15_share"] == round(1 / 3, 6)
    assert d["pairs_per_user"] == {"p50": 3.0, "p90": 9.0}  # [1, 2, 3, 3, 3, 15] (val v1, test t1 and t2 hold 3)
    assert d["prefix_length"]["p99"] > 14 and d["prefix_length"]["cut_share"] == 0.0


def test_sessions_per_user_from_collapsed_interactions():
    collapsed = pd.DataFrame({"user": ["x", "x", "x", "y", "z", "z"], "session": ["1", "1", "2", "3", "4", "5"]})
    assert sorted(diagnostics.sessions_per_user(collapsed).tolist()) == [1, 2, 2]


def test_summary_lines_are_phrases_that_name_the_figures():
    items = summary_items({"diagnostics": _compute(test=RETURNS)})
    assert 3 <= len(items) <= 10 and all(len(item) <= 76 for line in items for item in line)  # each fits an 80-column line
    text = "\n".join(summary_lines({"diagnostics": _compute(test=RETURNS)}))
    assert "users with pairs 50.0%" in text and "Markov-1 Acc@1 25.0%" in text and "pts" in text
    assert "repeat (label already in the prefix) 75.0%" in text and "explore (a course new to the prefix) 25.0%" in text
    assert "a rule that only repeats prefix courses can score at most 75.0% Acc@1" in text
    assert "recency rule, no parameters, Acc@1 50.0%" in text and "repeat ceiling" not in text
    assert "popularity 0.0% | 100.0%;" in text and "recency rule 25.0% | 100.0% (its popularity fallback)" in text
    assert "not in the prefix" in text and "(x-)" in summary_lines({"diagnostics": _compute()})[-1]  # no ratio without a label in another's support
    assert summary_lines({"counts": {}}) == []


def test_a_dataset_built_before_the_slices_reads_and_says_how_to_get_them():
    old = _compute(test=RETURNS)
    old["recency_acc@1"] = old.pop("recency_rule_acc@1")
    del old["scored_query_slices"]
    text = "\n".join(summary_lines({"diagnostics": old}))
    assert "recency rule, no parameters, Acc@1 50.0%" in text
    assert "repeat | explore queries: not recorded" in text and "--force" in text


def test_outside_bands_names_the_statistics_that_miss():
    d = _compute()
    bad = outside_bands(d)
    assert "test_episodes=2" in bad and "users_with_pairs_share=0.5" in bad
    assert not any(name.startswith("pairs_per_user.p50") for name in bad)  # 3 is inside 1..3


def test_every_build_stores_the_diagnostics(tiny_dataset):
    d = tiny_dataset.manifest["diagnostics"]
    assert set(d) == KEYS
    assert d["test_episodes"] == tiny_dataset.manifest["counts"]["splits"]["test"]["episodes"]
    assert len(d["prefix_length_hist"]) == 50 and sum(d["prefix_length_hist"]) == tiny_dataset.manifest["counts"]["pairs"]
    assert 0 < d["label_share_curve"][0][1] <= d["label_share_curve"][-1][1] == pytest.approx(1.0)
    assert len(d["label_share_curve"]) <= diagnostics.CURVE_POINTS


def test_seed_episode_imports_get_diagnostics_without_session_figures(tmp_path):
    from bench.data import importers

    seed_episodes_folder(tmp_path / "s", first_id=1)
    ds = importers.import_seed_episodes(tmp_path / "s", name="seeded", data_dir=tmp_path)
    d = ds.manifest["diagnostics"]
    assert set(d) == KEYS
    assert d["test_episodes"] == ds.manifest["counts"]["splits"]["test"]["episodes"]
    assert d["courses_per_session_mean"] is None and d["users_with_pairs_share"] is None  # the seed kept no sessions
    assert d["markov1_acc@1"] is not None and d["support_signal"]["own"] is not None


def test_the_headers_recency_rule_is_the_recency_rows_acc1(tiny_dataset, tmp_path):
    """The header's figure and the leaderboard's recency row are one rule scored by one evaluator."""
    import numpy as np

    from bench.methods.registry import METHODS, RunContext, evaluate_method

    spec = METHODS["recency"]
    ctx = spec.prepare(RunContext(tiny_dataset, seed=0, params={}, cache_dir=tmp_path))
    method = spec.build(ctx)
    method.fit(ctx)
    rows = evaluate_method(method, tiny_dataset.episodes("test", 5, 10), "zero-shot")
    queries = sum(len(labels) for labels in tiny_dataset.episodes("test", 5, 10)["query_labels"])
    pooled = float(np.sum([row["acc@1"] for row in rows]) * 10 / queries)  # per-query, as the diagnostic pools
    assert tiny_dataset.manifest["diagnostics"]["recency_rule_acc@1"] == pytest.approx(pooled, abs=1e-6)
    assert pooled > 0


def test_data_info_lists_the_per_slice_figures():
    from bench.data.info import diagnostics_table

    names = list(diagnostics_table(_compute(test=RETURNS)).columns[0].cells)
    assert "scored_query_slices.repeat.recency_rule_acc@1" in names and "scored_query_slices.explore.queries" in names
