"""The single evaluator: every method's scores over the whole catalogue become metrics here.

Per query: the rank of the true item among all real items (column 0, padding, is excluded), with
ties counted against the model (rank = 1 + #items scoring >= the true item, other than itself),
and a NaN score counted against the model wherever it is.
A query may name one item its ranking excludes (the dataset's protocol, recorded in dataset.json as
``pipeline.excluded_from_ranking``: e.g. the prefix's last item when consecutive repeats were removed,
so that item can never be the label). An excluded item never competes, as padding never does: it
cannot outrank the target, and the query is ranked among n_items - 1 items. One protocol for every
method: callers pass the episodes' ``query_excluded`` column (bench/data/dataset.py adds it).
Per episode: the mean over its queries of each metric. Every summary is computed from these.
Each run stores every query's rank (``query_rows``); ``slice_metrics`` derives the per-episode means
over a slice of the queries (SLICES: all, repeat = the label is in the query's prefix, explore = it
is not) from them, so the per-episode table and every slice come from the same ranks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

METRICS = ("acc@1", "recall@5", "recall@10", "mrr", "ndcg@10")


def ranks_from_scores(scores: torch.Tensor, targets: torch.Tensor, excluded: torch.Tensor | None = None) -> torch.Tensor:
    """Rank (1 = best) of each target among real items; ties count against the model.

    ``scores`` [N, n_items + 1] (column 0 is padding and never competes), ``targets`` [N] in 1..n_items.
    A NaN counts against the model wherever it is: a NaN on the target ranks it last, a NaN on
    another item ranks that item above the target.
    ``excluded`` (optional) [N] item ids, 0 = nothing excluded for that row: that item never competes
    (whatever its score, NaN included), so the row is ranked among the other n_items - 1 items; an
    excluded item equal to its row's target raises ValueError (the data contradicts its protocol).
    """
    if scores.dim() != 2 or targets.dim() != 1 or scores.shape[0] != targets.shape[0]:
        raise ValueError(f"scores {tuple(scores.shape)} and targets {tuple(targets.shape)} do not match")
    if int(targets.min()) < 1 or int(targets.max()) >= scores.shape[1]:
        raise ValueError("targets must be real item ids 1..n_items")
    real = scores[:, 1:].float()
    n_items = real.shape[1]
    target_scores = real.gather(1, (targets - 1).unsqueeze(1))
    # items other than the target that beat or tie it; NaN compares False, so it is added explicitly
    beaten = (real >= target_scores) | torch.isnan(real)
    beaten.scatter_(1, (targets - 1).unsqueeze(1), False)
    last = torch.full_like(targets, n_items)  # the rank of a NaN target: last among the competing items
    if excluded is not None:
        excluded = torch.as_tensor(excluded, dtype=torch.long).to(targets.device)
        if excluded.shape != targets.shape:
            raise ValueError(f"excluded {tuple(excluded.shape)} and targets {tuple(targets.shape)} do not match")
        if len(excluded) and (int(excluded.min()) < 0 or int(excluded.max()) >= scores.shape[1]):
            raise ValueError("excluded must be item ids 1..n_items, or 0 for nothing excluded")
        clash = (excluded == targets).nonzero().flatten()
        if len(clash):
            row = int(clash[0])
            raise ValueError(
                f"{len(clash)} target(s) equal the item the protocol excludes from their ranking (first: row {row}, "
                f"item {int(targets[row])}): the data contradicts its protocol"
            )
        rows = (excluded > 0).nonzero().flatten()
        beaten[rows, excluded[rows] - 1] = False
        last = last - (excluded > 0).long()
    ranks = 1 + beaten.sum(dim=1)
    ranks = torch.where(torch.isnan(target_scores.squeeze(1)), last, ranks)
    return ranks.long()


def query_metrics(ranks: np.ndarray) -> dict[str, np.ndarray]:
    """Per-query metric values from 1-based ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return {
        "acc@1": (ranks <= 1).astype(np.float64),
        "recall@5": (ranks <= 5).astype(np.float64),
        "recall@10": (ranks <= 10).astype(np.float64),
        "mrr": 1.0 / ranks,
        "ndcg@10": np.where(ranks <= 10, 1.0 / np.log2(ranks + 1.0), 0.0),
    }


def episode_metrics(ranks: np.ndarray) -> dict[str, float]:
    """Mean over an episode's queries of each metric."""
    return {name: float(values.mean()) for name, values in query_metrics(ranks).items()}


def evaluate_ranks(
    score_chunks: Iterable[torch.Tensor | Sequence[torch.Tensor]],
    query_labels: Sequence[Sequence[int]],
    query_excluded: Sequence[Sequence[int]] | None = None,
) -> list[np.ndarray]:
    """Per episode, the rank of each of its queries (int64, in query order) from scores produced chunk
    by chunk, in episode order.

    Each chunk is a tensor [n, Q, n_items + 1] or a list of [Q_i, n_items + 1] tensors; the episodes
    across all chunks must line up with ``query_labels``. ``query_excluded`` (optional, e.g. the
    episodes' ``query_excluded`` column): per episode, per query, the item its ranking excludes
    (0: none); see ``ranks_from_scores``. None: nothing excluded anywhere.
    """
    if query_excluded is not None:
        query_excluded = list(query_excluded)
        if len(query_excluded) != len(query_labels):
            raise ValueError(f"query_excluded covers {len(query_excluded)} episodes but there are {len(query_labels)}")
    results: list[np.ndarray] = []
    for chunk in score_chunks:
        for episode_scores in chunk:
            index = len(results)
            if index >= len(query_labels):
                raise ValueError(f"scores cover more episodes than the {len(query_labels)} there are")
            targets = torch.as_tensor(list(query_labels[index]), dtype=torch.long)
            excluded = None if query_excluded is None else torch.as_tensor(list(query_excluded[index]), dtype=torch.long)
            results.append(ranks_from_scores(episode_scores.detach().cpu(), targets, excluded).numpy())
    if len(results) != len(query_labels):
        raise ValueError(f"scores cover {len(results)} episodes but there are {len(query_labels)}")
    return results


def evaluate_scores(
    score_chunks: Iterable[torch.Tensor | Sequence[torch.Tensor]],
    query_labels: Sequence[Sequence[int]],
    query_excluded: Sequence[Sequence[int]] | None = None,
) -> list[dict[str, float]]:
    """Per-episode metrics (``episode_metrics`` of ``evaluate_ranks``'s ranks), in episode order."""
    return [episode_metrics(ranks) for ranks in evaluate_ranks(score_chunks, query_labels, query_excluded)]


# ---------------------------------------------------------------------------------------------
# Slices: every per-episode number derived from the stored per-query ranks, here and only here

SLICES = ("all", "repeat", "explore")  # repeat: the label is one of the query prefix's items; explore: it is not
QUERY_COLUMNS = ("episode", "mode", "query", "rank", "label", "in_prefix", "prefix_len")


def check_slice(name: str) -> str:
    """``name`` when it is one of SLICES; ValueError otherwise (callers word it for their users)."""
    if name not in SLICES:
        raise ValueError(f"unknown slice {name!r}: choose one of {', '.join(SLICES)}")
    return name


def label_in_prefix(prefix: Sequence[int], label: int) -> bool:
    """Whether a query's label is one of its prefix's items (a repeat; bench/data/diagnostics.py's definition)."""
    return int(label) in {int(item) for item in prefix}


def query_rows(
    ranks: Sequence[np.ndarray], query_labels: Sequence[Sequence[int]], query_prefixes: Sequence[Sequence[Sequence[int]]], mode: str
) -> dict:
    """The per-query table of one mode (columns QUERY_COLUMNS) from ``evaluate_ranks``'s ranks and the
    episodes' query labels and prefixes, episodes numbered 0..n-1 in order."""
    episode, query, rank, label, in_prefix, prefix_len = ([] for _ in range(6))
    for e, (episode_ranks, labels, prefixes) in enumerate(zip(ranks, query_labels, query_prefixes)):
        labels, prefixes = list(labels), list(prefixes)
        if not len(episode_ranks) == len(labels) == len(prefixes):
            raise ValueError(f"episode {e}: {len(episode_ranks)} ranks, {len(labels)} labels, {len(prefixes)} prefixes")
        for q, (r, y, prefix) in enumerate(zip(episode_ranks, labels, prefixes)):
            episode.append(e)
            query.append(q)
            rank.append(int(r))
            label.append(int(y))
            in_prefix.append(label_in_prefix(prefix, y))
            prefix_len.append(len(prefix))
    return {
        "episode": np.asarray(episode, dtype=np.int32),
        "mode": np.full(len(episode), mode, dtype=object),
        "query": np.asarray(query, dtype=np.int16),
        "rank": np.asarray(rank, dtype=np.int32),
        "label": np.asarray(label, dtype=np.int32),
        "in_prefix": np.asarray(in_prefix, dtype=bool),
        "prefix_len": np.asarray(prefix_len, dtype=np.int16),
    }


def in_slice(queries, name: str) -> np.ndarray:
    """Which rows of a per-query table belong to slice ``name`` (a boolean mask)."""
    check_slice(name)
    in_prefix = np.asarray(queries["in_prefix"], dtype=bool)
    return np.ones(len(in_prefix), dtype=bool) if name == "all" else (in_prefix if name == "repeat" else ~in_prefix)


def slice_metrics(queries, name: str):
    """One row per (episode, mode) with at least one query in slice ``name``: ``episode``, ``mode``,
    ``n_queries`` (its queries in the slice) and every METRICS mean over them, sorted by mode (first
    appearance) then episode. Rows with no query in the slice are absent.

    Bit-identical to ``episode_metrics`` on the same ranks: each group's values are averaged by numpy
    along a contiguous row, as ``episode_metrics`` averages a 1-d array (tests/test_slices.py)."""
    import pandas as pd

    queries = queries.loc[in_slice(queries, name)]
    columns = ["episode", "mode", "n_queries", *METRICS]
    if queries.empty:
        dtypes = {"episode": "int64", "n_queries": "int64", "mode": "object"}
        return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "float64")) for c in columns})
    modes = list(dict.fromkeys(queries["mode"]))
    codes = {m: i for i, m in enumerate(modes)}
    order = np.lexsort((queries["query"].to_numpy(), queries["episode"].to_numpy(), queries["mode"].map(codes).to_numpy()))
    ordered = queries.iloc[order]
    mode_code = ordered["mode"].map(codes).to_numpy()
    episode = ordered["episode"].to_numpy().astype(np.int64)
    starts = np.flatnonzero(np.r_[True, (np.diff(episode) != 0) | (np.diff(mode_code) != 0)])
    sizes = np.diff(np.r_[starts, len(ordered)])
    values = query_metrics(ordered["rank"].to_numpy())
    out = {m: np.empty(len(starts)) for m in METRICS}
    for size in np.unique(sizes):  # groups of one size as the rows of one [n, size] array
        groups = np.flatnonzero(sizes == size)
        index = starts[groups][:, None] + np.arange(size)[None, :]
        for m in METRICS:
            out[m][groups] = values[m][index].mean(axis=1)
    return pd.DataFrame({"episode": episode[starts], "mode": [modes[i] for i in mode_code[starts]], "n_queries": sizes.astype(np.int64), **out})


def popularity_then_id(popularity: np.ndarray) -> np.ndarray:
    """A ranking key with no ties: 0..V-1 ordering items by ``popularity``, then by the lower id (the
    popularity fallback of the rule baselines and of the data diagnostics; exact in float32)."""
    key = np.empty(len(popularity), dtype=np.float64)
    ids = np.arange(len(popularity))
    key[np.lexsort((-ids, popularity))] = np.arange(len(popularity), dtype=np.float64)
    return key
