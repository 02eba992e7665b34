"""Pairs -> the user split -> episodes: sliding train windows, held-out val/test episodes, their file names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from bench.core.errors import BenchError
from bench.data.pipeline.config import EPISODE_COLUMNS
from bench.data.pipeline.pairs import list_array

_HELD_OUT_RULE = (
    "up to N = test_episodes_per_user episodes per user, taken backwards from the user's L time-ordered pairs: "
    "episode j = 0..N-1 has query = pairs [L-(j+1)Q, L-jQ) and support = the K pairs just before them; it exists "
    "when L >= P+(j+1)Q, where P = the population K (the largest K of the grid at this Q, else K), so every K of a "
    "grid scores the same users on the same query pairs; query sets of one user are disjoint; rows ordered by user, "
    "then oldest episode first. N=1 and P=K: one episode per user, the user's last K+Q pairs"
)


EPISODE_RULES = {
    "train": "sliding windows of K+Q consecutive time-ordered pairs per user, step `stride`",
    "val": _HELD_OUT_RULE,
    "test": _HELD_OUT_RULE,
    "order": "pairs sorted by label timestamp, ties by session id then position; first K are support",
}


def split_users(users, seed: int, fractions=(0.8, 0.1, 0.1)) -> dict[str, list[str]]:
    """Disjoint seeded user split: sorted ids, one permutation, first 80% train, next 10% val, rest test."""
    users = sorted(set(users))
    perm = np.random.default_rng(seed).permutation(len(users))
    n_train = int(fractions[0] * len(users))
    n_val = int(fractions[1] * len(users))
    shuffled = [users[i] for i in perm]
    return {
        "train": sorted(shuffled[:n_train]),
        "val": sorted(shuffled[n_train : n_train + n_val]),
        "test": sorted(shuffled[n_train + n_val :]),
    }


def order_pairs(pairs: pa.Table) -> pa.Table:
    """Stable sort by user, then label timestamp (the file order already breaks ties by session/position)."""
    users = pairs.column("user_id").to_numpy(zero_copy_only=False)
    user_codes, _ = pd.factorize(users, sort=True)
    ts = pairs.column("timestamp").to_numpy()
    order = np.lexsort((np.arange(len(ts)), ts, user_codes))
    if (order == np.arange(len(order))).all():
        return pairs
    return pairs.take(pa.array(order))


def pair_counts(pairs: pa.Table) -> pd.Series:
    """Number of pairs per user (index sorted by user id)."""
    users = pairs.column("user_id").to_numpy(zero_copy_only=False)
    return pd.Series(users).value_counts().sort_index()


def held_out_starts(user_start: np.ndarray, user_len: np.ndarray, K: int, Q: int, population_K: int, per_user: int) -> np.ndarray:
    """First pair of every val/test episode (EPISODE_RULES["test"]): per user, oldest episode first."""
    ends = user_start + user_len  # one past each user's last pair
    offsets = np.arange(per_user - 1, -1, -1)  # j, oldest (largest) first
    query_start = ends[:, None] - (offsets[None, :] + 1) * Q
    exists = user_len[:, None] >= population_K + (offsets[None, :] + 1) * Q
    return (query_start - K)[exists]  # row-major: by user, then oldest first


def episode_starts(
    pairs: pa.Table, split: str, K: int, Q: int, stride: int = 1, population_K: int | None = None, per_user: int = 1
) -> tuple[pa.Table, np.ndarray]:
    """(the time-ordered pairs, the index into them of each episode's first pair), in episode order.

    Episode e's support is pairs ``starts[e] .. starts[e]+K-1``, its query the Q after them; see
    EPISODE_RULES and ``build_episodes``, which uses it (so does ``support_mean``). Only the columns
    ``user_id`` and ``timestamp`` of ``pairs`` are read. Raises BenchError as ``build_episodes``."""
    pairs = order_pairs(pairs)
    population_K = K if population_K is None or split == "train" else int(population_K)
    if population_K < K:
        raise BenchError(f"population K {population_K} is smaller than K={K}", "the population K is the largest K scored; pass one >= K")
    length = population_K + Q
    users = pairs.column("user_id").to_numpy(zero_copy_only=False)
    n = len(users)
    if n == 0:
        raise BenchError(f"the {split} split has no pairs", "rebuild the dataset from a larger input")
    change = np.ones(n, dtype=bool)
    change[1:] = users[1:] != users[:-1]
    user_start = np.flatnonzero(change)
    user_len = np.diff(np.append(user_start, n))
    if user_len.max() < length:
        what = f"K+Q={length}" if population_K == K else f"K+Q={length} (population K {population_K}, Q {Q})"
        raise BenchError(
            f"{what} is larger than any {split} user allows (the most pairs a {split} user has is {int(user_len.max())})",
            f"pick K+Q <= {int(user_len.max())}",
        )
    eligible = user_len >= length
    if split == "train":
        windows = np.where(eligible, (user_len - length) // stride + 1, 0)
        first = np.repeat(user_start, windows)
        within = np.arange(windows.sum()) - np.repeat(np.cumsum(windows) - windows, windows)
        starts = first + stride * within
    else:
        starts = held_out_starts(user_start, user_len, K, Q, population_K, per_user)
    return pairs, starts


def build_episodes(pairs: pa.Table, split: str, K: int, Q: int, stride: int = 1, population_K: int | None = None, per_user: int = 1) -> pa.Table:
    """Episodes of K support then Q query pairs, time-ordered; see EPISODE_RULES.

    ``population_K`` (>= K) and ``per_user`` shape val/test only; train is always sliding windows.
    Raises BenchError when no user of the split has enough pairs, naming the largest K+Q allowed.
    """
    pairs, starts = episode_starts(pairs, split, K, Q, stride, population_K, per_user)
    users = pairs.column("user_id").to_numpy(zero_copy_only=False)
    E = len(starts)
    support_idx = (starts[:, None] + np.arange(K)[None, :]).ravel()
    query_idx = (starts[:, None] + K + np.arange(Q)[None, :]).ravel()
    prefix = pairs.column("prefix").combine_chunks()
    label = pairs.column("label").combine_chunks()
    ts = pairs.column("timestamp").combine_chunks()

    def nest(column, idx, size):
        return list_array(np.arange(0, E * size + 1, size, dtype=np.int32), column.take(pa.array(idx)))

    return pa.Table.from_arrays(
        [
            pa.array(users[starts], type=pa.string()),
            nest(prefix, support_idx, K),
            nest(label, support_idx, K),
            nest(prefix, query_idx, Q),
            nest(label, query_idx, Q),
            nest(ts, support_idx, K),
            nest(ts, query_idx, Q),
        ],
        names=list(EPISODE_COLUMNS) + ["support_timestamps", "query_timestamps"],
    )


def support_mean(
    pairs: pa.Table, column: str, split: str, K: int, Q: int, stride: int = 1, population_K: int | None = None, per_user: int = 1
) -> np.ndarray:
    """Per episode (rows in ``build_episodes``' order), the mean of ``column`` over its K support pairs
    (float64 [E]); the same indexing as ``build_episodes``, so pairs are matched by position, not value."""
    ordered, starts = episode_starts(pairs, split, K, Q, stride, population_K, per_user)
    values = ordered.column(column).to_numpy().astype(np.float64)
    return values[starts[:, None] + np.arange(K)[None, :]].mean(axis=1)


def episodes_relpath(split: str, K: int, Q: int, population_K: int | None = None) -> str:
    """The cached file; ``_P{population_K}`` is added only when the population K differs from K."""
    suffix = "" if population_K is None or int(population_K) == int(K) or split == "train" else f"_P{int(population_K)}"
    return f"episodes/episodes_{split}_K{K}_Q{Q}{suffix}.parquet"
