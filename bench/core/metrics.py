"""The single evaluator: every method's scores over the whole catalogue become metrics here.

Per query: the rank of the true item among all real items (column 0, padding, is excluded), with
ties counted against the model (rank = 1 + #items scoring >= the true item, other than itself),
and a NaN score counted against the model wherever it is.
Per episode: the mean over its queries of each metric. Every summary is computed from these.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

METRICS = ("acc@1", "recall@5", "recall@10", "mrr", "ndcg@10")


def ranks_from_scores(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Rank (1 = best) of each target among real items; ties count against the model.

    ``scores`` [N, n_items + 1] (column 0 is padding and never competes), ``targets`` [N] in 1..n_items.
    A NaN counts against the model wherever it is: a NaN on the target ranks it last, a NaN on
    another item ranks that item above the target.
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
    ranks = 1 + beaten.sum(dim=1)
    ranks = torch.where(torch.isnan(target_scores.squeeze(1)), torch.full_like(ranks, n_items), ranks)
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
) -> list[dict[str, float]]:
    """Per-episode metrics from scores produced chunk by chunk, in episode order.

    Each chunk is a tensor [n, Q, n_items + 1] or a list of [Q_i, n_items + 1] tensors; the episodes
    across all chunks must line up with ``query_labels``.
    """
    results: list[dict[str, float]] = []
    for chunk in score_chunks:
        for episode_scores in chunk:
            labels = query_labels[len(results)]
            targets = torch.as_tensor(list(labels), dtype=torch.long)
            ranks = ranks_from_scores(episode_scores.detach().cpu(), targets)
            results.append(episode_metrics(ranks.numpy()))
    if len(results) != len(query_labels):
        raise ValueError(f"scores cover {len(results)} episodes but there are {len(query_labels)}")
    return results
