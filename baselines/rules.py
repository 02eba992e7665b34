"""Rule baselines: first-order Markov transitions and session-rec's sequential rules (SR).

Both score a query by the rules whose antecedent is the prefix's last item (a row of a sparse
[V, V] matrix). ``markov``: counts of (prefix's last item -> label) over the train pairs.
``sr`` (Kamehkhosh et al. 2017, as session-rec's SequentialRules with its defaults steps=10,
weighting 'div', pruning 20): every pair adds a rule from each of the last ``steps`` prefix items to
the label, weighted 1/d for the item d steps back; each antecedent keeps its ``pruning`` strongest
rules. The support part is the same rules built from the learner's K support pairs (unpruned).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from baselines.memory import SUPPORT_DEFAULTS, MemoryMethod
from bench.core.errors import BenchError

MARKOV_DEFAULTS: dict = {**SUPPORT_DEFAULTS}
SR_DEFAULTS: dict = {"steps": 10, "pruning": 20, **SUPPORT_DEFAULTS}  # session-rec's SequentialRules defaults


def rule_matrix(prefixes: list, labels, steps: int, vocab_size: int) -> sp.csr_matrix:
    """[V, V] sums of 1/d over the rules (prefix[-d] -> label) for d = 1..steps (steps=1: transition counts)."""
    tails = [np.asarray(prefix[-steps:], dtype=np.int64) for prefix in prefixes]
    lengths = np.fromiter((len(t) for t in tails), dtype=np.int64, count=len(tails))
    antecedents = np.concatenate(tails) if tails else np.zeros(0, dtype=np.int64)
    consequents = np.repeat(np.asarray(labels, dtype=np.int64), lengths)
    ends = np.cumsum(lengths)
    distance = np.repeat(ends, lengths) - np.arange(len(antecedents))  # 1 for the last prefix item
    weights = 1.0 / distance
    matrix = sp.coo_matrix((weights, (antecedents, consequents)), shape=(vocab_size, vocab_size))
    return matrix.tocsr()  # duplicates summed


def prune_rows(matrix: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Each row's ``keep`` largest entries (ties: the lower item id), the rest dropped."""
    matrix = matrix.tocsr()
    matrix.sort_indices()
    rows, cols, vals = [], [], []
    for row in range(matrix.shape[0]):
        lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
        best = np.argsort(-matrix.data[lo:hi], kind="stable")[:keep]
        rows.append(np.full(len(best), row))
        cols.append(matrix.indices[lo:hi][best])
        vals.append(matrix.data[lo:hi][best])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=matrix.shape)


class RuleMethod(MemoryMethod):
    """Scores of a query = the rule matrix's row for the prefix's last item."""

    steps = 1

    def __init__(self, ctx, name: str, params: dict):
        super().__init__(ctx, name, params)
        self.rules: sp.csr_matrix | None = None

    def fit_train(self, ctx) -> dict:
        pairs = ctx.dataset.pairs("train")
        self.rules = self.prune(rule_matrix(list(pairs["prefix"]), pairs["label"].to_numpy(), self.steps, self.vocab_size))
        return {"n_train_pairs": len(pairs), "n_rules": int(self.rules.nnz)}

    def prune(self, rules: sp.csr_matrix) -> sp.csr_matrix:
        return rules

    def train_part(self, prefixes: list) -> np.ndarray:
        return self.rules[[prefix[-1] for prefix in prefixes]].toarray()

    def support_part(self, prefixes: list, support_prefixes: list, support_labels: list) -> np.ndarray:
        rules = rule_matrix(support_prefixes, support_labels, self.steps, self.vocab_size)
        return rules[[prefix[-1] for prefix in prefixes]].toarray()


class MarkovMethod(RuleMethod):
    steps = 1


class SequentialRulesMethod(RuleMethod):
    def __init__(self, ctx, name: str, params: dict):
        super().__init__(ctx, name, params)
        self.steps, self.pruning = int(params["steps"]), int(params["pruning"])
        if self.steps < 1 or self.pruning < 0:
            raise BenchError(f"sr steps {self.steps} must be >= 1 and pruning {self.pruning} >= 0", "use session-rec's steps=10, pruning=20")

    def prune(self, rules: sp.csr_matrix) -> sp.csr_matrix:
        return prune_rows(rules, self.pruning) if self.pruning > 0 else rules
