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


def evaluate_scores(
    score_chunks: Iterable[torch.Tensor | Sequence[torch.Tensor]],
    query_labels: Sequence[Sequence[int]],
    query_excluded: Sequence[Sequence[int]] | None = None,
) -> list[dict[str, float]]:
    """Per-episode metrics from scores produced chunk by chunk, in episode order.

    Each chunk is a tensor [n, Q, n_items + 1] or a list of [Q_i, n_items + 1] tensors; the episodes
    across all chunks must line up with ``query_labels``. ``query_excluded`` (optional, e.g. the
    episodes' ``query_excluded`` column): per episode, per query, the item its ranking excludes
    (0: none); see ``ranks_from_scores``. None: nothing excluded anywhere.
    """
    if query_excluded is not None:
        query_excluded = list(query_excluded)
        if len(query_excluded) != len(query_labels):
            raise ValueError(f"query_excluded covers {len(query_excluded)} episodes but there are {len(query_labels)}")
    results: list[dict[str, float]] = []
    for chunk in score_chunks:
        for episode_scores in chunk:
            index = len(results)
            if index >= len(query_labels):
                raise ValueError(f"scores cover more episodes than the {len(query_labels)} there are")
            targets = torch.as_tensor(list(query_labels[index]), dtype=torch.long)
            excluded = None if query_excluded is None else torch.as_tensor(list(query_excluded[index]), dtype=torch.long)
            ranks = ranks_from_scores(episode_scores.detach().cpu(), targets, excluded)
            results.append(episode_metrics(ranks.numpy()))
    if len(results) != len(query_labels):
        raise ValueError(f"scores cover {len(results)} episodes but there are {len(query_labels)}")
    return results


def popularity_then_id(popularity: np.ndarray) -> np.ndarray:
    """A ranking key with no ties: 0..V-1 ordering items by ``popularity``, then by the lower id (the
    popularity fallback of the rule baselines and of the data diagnostics; exact in float32)."""
    key = np.empty(len(popularity), dtype=np.float64)
    ids = np.arange(len(popularity))
    key[np.lexsort((-ids, popularity))] = np.arange(len(popularity), dtype=np.float64)
    return key
