"""Repeat-aware rules: the learner's own recent courses first (``recency``, ``recency-markov``).

``recency`` has no parameter zero-shot: a query's candidates are its prefix's distinct items except
its last (the course just taken, which the pipeline's removal of consecutive repeats makes an
impossible label), most recent first (by their last position in the prefix), then every other
course by train-label popularity, then by the lower id: a total order, no tie left.
Few-shot: the learner's support courses (the items of the K support prefixes and the K support
labels) join the candidates, each scored by the number of support pairs it appears in (prefix or
label, once per pair); the support part's weight ``w`` is chosen on the val episodes like every
memory baseline's (baselines/memory.py): w = 0 is the zero-shot rule, a small w puts the support
courses after the prefix's and before the popular rest, a large one before the prefix's.
Scores (before each part is divided by its row maximum): prefix item r-th most recent 1 + 1/r,
so any w < 1/2 keeps every prefix candidate above every support-only one.

``recency-markov``: the recency part plus ``lambda`` x the first-order Markov row of the prefix's
last item (train transition counts, as ``markov``), each divided by its row maximum; ``lambda`` is
chosen on the val episodes (the run's K, Q, population_K), zero-shot (highest mean Acc@1, ties to the smaller), before the support
weight is chosen few-shot with it fixed. lambda = 0 is ``recency``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from baselines.memory import MemoryMethod, normalise_rows, parse_weights, rank_scores
from baselines.rules import rule_matrix
from baselines.simple import CHUNK
from bench.core.metrics import evaluate_scores

RECENCY_DEFAULTS: dict = {"support_weights": "0,0.01,0.1,0.3,1,3,10,100"}  # 0.01: support after the prefix's courses
RECENCY_MARKOV_DEFAULTS: dict = {**RECENCY_DEFAULTS, "markov_weights": "0,0.1,0.3,1,3,10"}


def last_item(prefix) -> int:
    return int(prefix[-1]) if len(prefix) else 0


def recency_part(prefixes: list, vocab_size: int) -> np.ndarray:
    """[n, V]: the r-th most recent distinct item of each prefix, its last excepted, scores 1 + 1/r; others 0."""
    scores = np.zeros((len(prefixes), vocab_size))
    for row, prefix in enumerate(prefixes):
        last, rank, seen = last_item(prefix), 0, set()
        for item in reversed([int(i) for i in prefix[:-1]]):
            if item == last or item in seen or item <= 0:
                continue
            seen.add(item)
            rank += 1
            scores[row, item] = 1.0 + 1.0 / rank
    return scores


def support_courses(support_prefixes: list, support_labels: list, vocab_size: int) -> np.ndarray:
    """[V]: in how many of the K support pairs each item appears (its prefix or its label, once per pair)."""
    counts = np.zeros(vocab_size)
    for prefix, label in zip(support_prefixes, support_labels):
        items = {int(i) for i in prefix} | {int(label)}
        items.discard(0)
        counts[list(items)] += 1.0
    return counts


class RecencyMethod(MemoryMethod):
    """``recency``: see the module docstring. No train-split learning but the popularity tie-break."""

    ties_by_id = True

    def fit_train(self, ctx) -> dict:
        return {"rule": "prefix's distinct items except its last, most recent first; then train-label popularity, then lower id"}

    def train_part(self, prefixes: list) -> np.ndarray:
        return recency_part(prefixes, self.vocab_size)

    def support_part(self, prefixes: list, support_prefixes: list, support_labels: list) -> np.ndarray:
        counts = support_courses(support_prefixes, support_labels, self.vocab_size)
        scores = np.broadcast_to(counts, (len(prefixes), self.vocab_size)).copy()
        scores[np.arange(len(prefixes)), [last_item(p) for p in prefixes]] = 0.0  # never the course just taken
        scores[:, 0] = 0.0
        return scores


class RecencyMarkovMethod(RecencyMethod):
    """``recency-markov``: recency + lambda x Markov-1, lambda chosen zero-shot on val (module docstring)."""

    def __init__(self, ctx, name: str, params: dict):
        super().__init__(ctx, name, params)
        self.markov_weights = parse_weights(params["markov_weights"])
        self.markov_weight: float = 0.0
        self.rules = None

    def fit_train(self, ctx) -> dict:
        pairs = ctx.dataset.pairs("train")
        self.rules = rule_matrix(list(pairs["prefix"]), pairs["label"].to_numpy(), 1, self.vocab_size)
        val = ctx.dataset.episodes("val", ctx.K, ctx.Q, ctx.population_K)  # the population MAML validation and tuning read
        val_acc = self.markov_val_accuracy(val)
        self.markov_weight = max(self.markov_weights, key=lambda lam: (val_acc[lam], -lam))  # ties: the smaller
        return {
            "n_train_pairs": len(pairs),
            "n_rules": int(self.rules.nnz),
            "markov_weight": self.markov_weight,
            "markov_weight_val_acc@1": {str(lam): acc for lam, acc in val_acc.items()},
            "markov_weight_rule": "highest zero-shot mean Acc@1 on the val episodes; ties to the smaller weight",
        }

    def markov_part(self, prefixes: list) -> np.ndarray:
        return self.rules[[last_item(prefix) for prefix in prefixes]].toarray()

    def markov_val_accuracy(self, val: pd.DataFrame) -> dict[float, float]:
        """Mean zero-shot Acc@1 over ``val`` for every candidate lambda (under the dataset's protocol)."""
        excluded = val.get("query_excluded")
        excluded = None if excluded is None else list(excluded)
        labels = list(val["query_labels"])
        correct: dict[float, list[float]] = {lam: [] for lam in self.markov_weights}
        for start in range(0, len(val), CHUNK):
            queries = [list(map(list, prefixes)) for prefixes in val["query_prefixes"].iloc[start : start + CHUNK]]
            flat = [q for qs in queries for q in qs]
            n, Q = len(queries), len(queries[0])
            recency = normalise_rows(recency_part(flat, self.vocab_size)).reshape(n, Q, -1)
            markov = normalise_rows(self.markov_part(flat)).reshape(n, Q, -1)
            chunk_labels = labels[start : start + n]
            chunk_excluded = None if excluded is None else excluded[start : start + n]
            for lam in self.markov_weights:
                rows = evaluate_scores([rank_scores(recency + lam * markov, self.popularity)], chunk_labels, chunk_excluded)
                correct[lam].extend(row["acc@1"] for row in rows)
        return {lam: float(np.mean(values)) for lam, values in correct.items()}

    def train_part(self, prefixes: list) -> np.ndarray:
        recency = normalise_rows(recency_part(prefixes, self.vocab_size))
        if self.markov_weight == 0:
            return recency
        return recency + self.markov_weight * normalise_rows(self.markov_part(prefixes))
