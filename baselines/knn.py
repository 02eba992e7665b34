"""Session-based kNN (SKNN) and its position-weighted variant (V-SKNN), as defined in session-rec.

Neighbour sessions are the train split's sessions, each the set of its items, ordered by recency
(the label time of its last pair). For a query prefix: the candidates are the ``sample_size`` most
recent sessions sharing an item with the prefix ("recent" sampling); each gets a similarity to the
prefix; the ``k`` most similar (ties: the more recent) vote for their items with their similarity
(times a decay by how far back the prefix last met them, for V-SKNN). session-rec's defaults:
SKNN (ContextKNN) k=100, sample_size=1000, jaccard; V-SKNN (VMContextKNN) k=100, sample_size=1000,
similarity 'vec' with 'div' position weights (item at position i of L weighs i/L, a repeated item
its last position; sum over shared items / distinct prefix items), score decay 'div' (1/step, step
1 when the prefix's last item is in the neighbour). Both keep the prefix's own items among the
recommendations (session-rec's ``remind=True``); ``remind=False`` drops them (VMContextKNN's option).
The support part: the K support pairs (prefix plus label) as the only neighbour sessions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from baselines.memory import SUPPORT_DEFAULTS, MemoryMethod
from bench.core.errors import BenchError


def jaccard(overlap, weighted_overlap, n_query, n_session):
    return overlap / (n_query + n_session - overlap)


def cosine(overlap, weighted_overlap, n_query, n_session):
    return overlap / np.sqrt(n_query * n_session)


def vec(overlap, weighted_overlap, n_query, n_session):
    return weighted_overlap / n_query


SIMILARITIES = {"jaccard": jaccard, "cosine": cosine, "vec": vec}
POSITION_WEIGHTS = {  # weight of the item at 1-based position i of a prefix of length L
    "same": lambda i, L: np.ones_like(i, dtype=np.float64),
    "div": lambda i, L: i / L,
}
SCORE_DECAYS = {  # factor of a neighbour whose most recent shared prefix item is ``step`` back (1 = last)
    "same": lambda step: np.ones_like(step, dtype=np.float64),
    "div": lambda step: 1.0 / step,
}
SKNN_DEFAULTS: dict = {
    "k": 100,
    "sample_size": 1000,
    "similarity": "jaccard",
    "weighting": "same",
    "weighting_score": "same",
    "remind": True,
    **SUPPORT_DEFAULTS,
}
VSKNN_DEFAULTS: dict = {
    "k": 100,
    "sample_size": 1000,
    "similarity": "vec",
    "weighting": "div",
    "weighting_score": "div",
    "remind": True,
    **SUPPORT_DEFAULTS,
}


def _choice(table: dict, value, param: str):
    if value not in table:
        raise BenchError(f"{param} {value!r} is not known", f"choose one of {', '.join(table)}")
    return table[value]


def session_matrix(pairs: pd.DataFrame, vocab_size: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Binary [sessions, V] item sets of the (user, session) groups of ``pairs`` (every label and every
    prefix's first item; together they are all the session's items), most recent session first,
    and each session's distinct-item count."""
    keys = pairs["user_id"].astype(str) + "\x1f" + pairs["session_id"].astype(str)
    codes, _ = pd.factorize(keys, sort=True)
    last_time = np.full(codes.max() + 1, np.iinfo(np.int64).min)
    np.maximum.at(last_time, codes, pairs["timestamp"].to_numpy().astype(np.int64))
    recency = np.empty(len(last_time), dtype=np.int64)
    recency[np.lexsort((np.arange(len(last_time)), -last_time))] = np.arange(len(last_time))  # 0 = most recent
    first_items = np.fromiter((prefix[0] for prefix in pairs["prefix"]), dtype=np.int64, count=len(pairs))
    rows = recency[np.concatenate([codes, codes])]
    cols = np.concatenate([pairs["label"].to_numpy().astype(np.int64), first_items])
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(last_time), vocab_size))
    matrix.data[:] = 1.0  # a set: duplicates summed, then clipped
    return matrix, np.asarray(matrix.sum(axis=1)).ravel()


def support_sessions(support_prefixes: list, support_labels: list, vocab_size: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Binary [K, V]: each support pair's prefix items plus its label."""
    rows = np.repeat(np.arange(len(support_prefixes)), [len(p) + 1 for p in support_prefixes])
    cols = np.concatenate([np.append(np.asarray(p, dtype=np.int64), label) for p, label in zip(support_prefixes, support_labels)])
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(support_prefixes), vocab_size))
    matrix.data[:] = 1.0
    return matrix, np.asarray(matrix.sum(axis=1)).ravel()


class SessionKNNMethod(MemoryMethod):
    def __init__(self, ctx, name: str, params: dict):
        super().__init__(ctx, name, params)
        self.k, self.sample_size = int(params["k"]), int(params["sample_size"])
        if self.k < 1 or self.sample_size < 1:
            raise BenchError(f"k {self.k} and sample_size {self.sample_size} must be at least 1", "use session-rec's k=100, sample_size=1000")
        self.similarity = _choice(SIMILARITIES, params["similarity"], "similarity")
        self.position_weight = _choice(POSITION_WEIGHTS, params["weighting"], "weighting")
        self.score_decay = _choice(SCORE_DECAYS, params["weighting_score"], "weighting_score")
        self.remind = bool(params["remind"])
        self.sessions: sp.csr_matrix | None = None

    def fit_train(self, ctx) -> dict:
        self.sessions, self.session_sizes = session_matrix(ctx.dataset.pairs("train"), self.vocab_size)
        self.item_sessions = self.sessions.tocsc()  # per item: its sessions, most recent first (sorted rows)
        self.item_sessions.sort_indices()
        return {"n_train_sessions": int(self.sessions.shape[0])}

    def candidates(self, items: np.ndarray) -> np.ndarray:
        """The ``sample_size`` most recent sessions holding any of ``items`` (each item's list is
        sorted by recency, so its first ``sample_size`` entries hold every session that can make it)."""
        indptr, indices = self.item_sessions.indptr, self.item_sessions.indices
        lists = [indices[indptr[i] : min(indptr[i + 1], indptr[i] + self.sample_size)] for i in items]
        return np.unique(np.concatenate(lists))[: self.sample_size]

    def vote(self, prefix: list, sessions: sp.csr_matrix, sizes: np.ndarray, k: int) -> np.ndarray:
        """Scores [V] from the ``k`` sessions (rows of ``sessions``) most similar to ``prefix``."""
        query = np.asarray(prefix, dtype=np.int64)
        items, last_position = np.unique(query[::-1], return_index=True)
        last_position = len(query) - 1 - last_position  # 0-based position of each distinct item's last occurrence
        binary = np.zeros(self.vocab_size)
        binary[items] = 1.0
        weighted = np.zeros(self.vocab_size)
        weighted[items] = self.position_weight(last_position + 1.0, float(len(query)))
        overlap, weighted_overlap = sessions @ binary, sessions @ weighted
        similarity = self.similarity(overlap, weighted_overlap, float(len(items)), sizes)
        similarity[overlap == 0] = 0.0
        top = np.argsort(-similarity, kind="stable")[:k]
        top = top[similarity[top] > 0]
        if len(top) == 0:
            return np.zeros(self.vocab_size)
        neighbours = sessions[top]
        # step back from the prefix's end to the latest prefix item the neighbour holds (1 = the last item)
        held = neighbours[:, items].toarray() > 0
        latest = np.where(held, last_position[None, :], -1).max(axis=1)
        votes = similarity[top] * self.score_decay((len(query) - latest).astype(np.float64))
        scores = np.asarray(neighbours.T @ votes).ravel()
        if not self.remind:
            scores[items] = 0.0
        return scores

    def train_part(self, prefixes: list) -> np.ndarray:
        out = np.zeros((len(prefixes), self.vocab_size))
        for row, prefix in enumerate(prefixes):
            candidates = self.candidates(np.unique(np.asarray(prefix, dtype=np.int64)))
            if len(candidates):
                out[row] = self.vote(prefix, self.sessions[candidates], self.session_sizes[candidates], self.k)
        return out

    def support_part(self, prefixes: list, support_prefixes: list, support_labels: list) -> np.ndarray:
        sessions, sizes = support_sessions(support_prefixes, support_labels, self.vocab_size)
        return np.stack([self.vote(prefix, sessions, sizes, self.k) for prefix in prefixes])
