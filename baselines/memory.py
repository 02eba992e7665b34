"""What the non-neural baselines (markov, sr, sknn, vsknn) share: scores in two parts, mixed by a weight.

Each query's scores are ``train_part / max + w * support_part / max`` (each part divided by its own
row maximum, as session-rec normalises): the train part is what the train split says (counts, rules
or neighbour sessions); the support part is the same computation over the learner's own K support
pairs only. Zero-shot uses w = 0. Few-shot uses the w chosen in fit(): of the candidates in the
``support_weights`` param, the one with the highest mean Acc@1 over the val episodes (few-shot, the
run's K, Q and population_K: the learners MAML validation and tuning read, through bench.core.metrics),
ties to the smaller weight; fit() records the choice and every candidate's val Acc@1 (ranked under
the dataset's protocol: the episodes' ``query_excluded`` item leaves each ranking, as at test). Items
the mix leaves tied (e.g. no rule fires) are ordered by train popularity, so every item gets a score;
remaining ties count against the model in the evaluator.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from baselines.simple import CHUNK, check_mode
from bench.core.errors import BenchError
from bench.core.metrics import evaluate_scores, popularity_then_id

ZERO_SHOT, FEW_SHOT = "zero-shot", "few-shot"
SUPPORT_DEFAULTS: dict = {"support_weights": "0,0.1,0.3,1,3,10,100"}  # candidates for w, chosen on val


def parse_weights(text) -> list[float]:
    """The candidate weights of a ``support_weights`` param ("0,0.1,1" or a number), ascending."""
    try:
        weights = sorted({float(part) for part in str(text).split(",")})
    except ValueError:
        weights = []
    if not weights or min(weights) < 0 or not all(np.isfinite(weights)):
        raise BenchError(f"support_weights {text!r} is not a list of weights >= 0", 'give comma-separated numbers, e.g. "0,0.1,1,10"')
    return weights


def label_popularity(pairs: pd.DataFrame, vocab_size: int) -> np.ndarray:
    """How often each item is a label among ``pairs`` (float64 [vocab_size])."""
    return np.bincount(pairs["label"].to_numpy(), minlength=vocab_size)[:vocab_size].astype(np.float64)


def normalise_rows(scores: np.ndarray) -> np.ndarray:
    """Each row divided by its maximum (rows without a positive score stay as they are)."""
    top = scores.max(axis=-1, keepdims=True)
    return np.divide(scores, top, out=scores.copy(), where=top > 0)


def dense_ranks(values: np.ndarray) -> np.ndarray:
    """0 for the smallest value, 1 for the next distinct one, ... (equal values share a rank)."""
    return np.unique(values, return_inverse=True)[1].astype(np.float64)


def rank_scores(primary: np.ndarray, secondary: np.ndarray) -> torch.Tensor:
    """Float32 scores [..., V] ordering items by ``primary`` [..., V] (>= 0), then ``secondary`` [V]; padding -inf.

    An item with primary 0 scores the dense rank of its secondary value; an item with primary > 0
    scores above all of those, by the dense rank of its (primary, secondary) pair within its row. So
    the order survives float32 exactly whatever the scale of either key, equal pairs stay tied, and
    only the positive entries (few: the rules that fire, the neighbours' items) are sorted.
    """
    shape = primary.shape
    primary = primary.reshape(-1, shape[-1])
    if primary.min(initial=0.0) < 0:
        raise ValueError("rank_scores needs primary scores >= 0")
    secondary_rank = dense_ranks(secondary)
    ranks = np.broadcast_to(secondary_rank, primary.shape).copy()
    rows, cols = np.nonzero(primary)
    if len(rows):
        order = np.lexsort((secondary_rank[cols], primary[rows, cols], rows))
        rows, cols = rows[order], cols[order]
        values, tie_breaks = primary[rows, cols], secondary_rank[cols]
        new_level = np.ones(len(rows))
        new_level[1:] = (values[1:] != values[:-1]) | (tie_breaks[1:] != tie_breaks[:-1])
        row_start = np.ones(len(rows), dtype=bool)
        row_start[1:] = rows[1:] != rows[:-1]
        level = np.cumsum(new_level)
        level -= np.maximum.accumulate(np.where(row_start, level - 1, 0))  # 1, 2, ... within each row
        ranks[rows, cols] = secondary_rank.max() + level
    ranks = ranks.astype(np.float32)
    ranks[:, 0] = -np.inf  # padding is never a prediction
    return torch.from_numpy(ranks.reshape(shape))


class MemoryMethod:
    """Base of the non-neural baselines. Subclasses implement ``fit_train(ctx) -> dict`` (learn from the
    train split), ``train_part(prefixes) -> [n, V]`` and ``support_part(prefixes, support_prefixes,
    support_labels) -> [n, V]`` (float64 numpy)."""

    modes = (ZERO_SHOT, FEW_SHOT)
    ties_by_id = False  # True: items the mix leaves tied are ordered by popularity, then the lower id (no tie left)

    def __init__(self, ctx, name: str, params: dict):
        self.name, self.params = name, params
        self.weights = parse_weights(params["support_weights"])
        self.vocab_size = ctx.dataset.n_items + 1
        self.popularity: np.ndarray | None = None
        self.support_weight: float | None = None

    def fit(self, ctx) -> dict:
        start = time.perf_counter()
        self.popularity = label_popularity(ctx.dataset.pairs("train"), self.vocab_size)
        if self.ties_by_id:
            self.popularity = popularity_then_id(self.popularity)
        info = dict(self.fit_train(ctx))
        val = ctx.dataset.episodes("val", ctx.K, ctx.Q, ctx.population_K)  # the population MAML validation and tuning read
        val_acc = self.val_accuracy(val)
        self.support_weight = max(self.weights, key=lambda w: (val_acc[w], -w))  # ties: the smaller weight
        info.update(
            {
                "curve": [],
                "train_seconds": time.perf_counter() - start,
                "support_weight": self.support_weight,
                "support_weight_val_acc@1": {str(w): acc for w, acc in val_acc.items()},
                "support_weight_rule": "highest few-shot mean Acc@1 on the val episodes; ties to the smaller weight",
                "n_val_episodes": len(val),
            }
        )
        return info

    def parts(self, episodes: pd.DataFrame, with_support: bool) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Per chunk of episodes: (train part [n, Q, V], support part [n, Q, V] or None), rows max-normalised."""
        for start in range(0, len(episodes), CHUNK):
            chunk = episodes.iloc[start : start + CHUNK]
            queries = [list(map(list, prefixes)) for prefixes in chunk["query_prefixes"]]
            n, Q = len(queries), len(queries[0])
            train = normalise_rows(self.train_part([q for qs in queries for q in qs])).reshape(n, Q, -1)
            support = None
            if with_support:
                support = np.stack(
                    [
                        normalise_rows(self.support_part(qs, list(map(list, sp)), list(sl)))
                        for qs, sp, sl in zip(queries, chunk["support_prefixes"], chunk["support_labels"])
                    ]
                )
            yield train, support

    def val_accuracy(self, val: pd.DataFrame) -> dict[float, float]:
        """Mean few-shot Acc@1 over ``val`` for every candidate weight (each part computed once)."""
        labels = list(val["query_labels"])
        excluded = val.get("query_excluded")  # the dataset's protocol, as the test evaluation applies it
        excluded = None if excluded is None else list(excluded)
        correct = {w: [] for w in self.weights}
        done = 0
        for train, support in self.parts(val, with_support=True):
            chunk_labels = labels[done : done + len(train)]
            chunk_excluded = None if excluded is None else excluded[done : done + len(train)]
            done += len(train)
            for w in self.weights:
                rows = evaluate_scores([rank_scores(train + w * support, self.popularity)], chunk_labels, chunk_excluded)
                correct[w].extend(row["acc@1"] for row in rows)
        return {w: float(np.mean(values)) for w, values in correct.items()}

    def score(self, episodes: pd.DataFrame, mode: str) -> Iterator[torch.Tensor]:
        check_mode(mode, self.modes, self.name)
        if self.popularity is None:
            raise BenchError(f"{self.name} scored before fit()", "call fit(ctx) first")
        few_shot = mode == FEW_SHOT
        for train, support in self.parts(episodes, with_support=few_shot):
            mixed = train + self.support_weight * support if few_shot else train
            yield rank_scores(mixed, self.popularity)
