"""The two-stage (hierarchical) bootstrap: resample seeds, then learners (all of a learner's episodes together)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.analysis.stats.bootstrap import N_RESAMPLES, chunk_rows


def cluster_codes(clusters: np.ndarray | Sequence | None, n_episodes: int) -> np.ndarray | None:
    """Integer learner codes (0..n_learners-1) per episode, or None when every learner has one
    episode (then learners and episodes are the same unit)."""
    if clusters is None:
        return None
    labels = np.asarray(clusters)
    if labels.shape != (n_episodes,):
        raise ValueError(f"clusters must give one learner per episode ({n_episodes}), got shape {labels.shape}")
    _, codes = np.unique(labels, return_inverse=True)
    return None if codes.max() + 1 == n_episodes else codes.astype(np.int64)


def _draw_counts(rng: np.random.Generator, n_units: int, rows: int) -> np.ndarray:
    """[rows, n_units] multiplicities: each row draws n_units units with replacement."""
    draws = rng.integers(0, n_units, size=(rows, n_units)) + (np.arange(rows) * n_units)[:, None]
    return np.bincount(draws.ravel(), minlength=rows * n_units).reshape(rows, n_units).astype(np.float64)


def seed_variance(values: np.ndarray) -> float:
    """Between-seed variance of a cell's mean: var(per-seed means, ddof=1) / S for [S, n] values.

    It estimates var(a)/S + var(e)/(nS) for x_se = mu + a_s + b_e + e_se: the seed effect plus the
    seed-by-episode noise each seed's mean carries. That noise is also in the learner stage, so it is
    counted twice (a term of order 1/(nS), small beside the seed and learner terms); subtracting it
    (the ANOVA estimate) is unbiased but truncates at 0 and, known from S - 1 df, makes intervals
    too narrow too often with 3 seeds. 0 with one seed.
    """
    x = np.asarray(values, dtype=np.float64)
    n_seeds = x.shape[0]
    return float(x.mean(axis=1).var(ddof=1)) / n_seeds if n_seeds > 1 else 0.0


def two_stage_means(
    cells: Sequence[np.ndarray],
    clusters: np.ndarray | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> list[np.ndarray]:
    """Two-stage bootstrap means of cells scored on the same test episodes (seeds crossed with episodes).

    Each cell is [k, n_seeds, n_episodes] (k statistics of one cell, e.g. metrics, sharing its
    seeds) -> [k, n_resamples]. One resample draws (1) the learners with replacement (``clusters``:
    integer learner code per episode from :func:`cluster_codes`; None: one episode per learner),
    the same learners for every cell (the episodes are paired), and takes the mean of the
    seed-averaged episodes of the drawn learners; and (2) each cell's seeds with replacement,
    independently per cell, adding the mean of the drawn seeds' deviations from the cell mean.

    The seed deviations are rescaled by sqrt(S/(S-1)) (Rao & Wu 1988) so that the seed stage's
    bootstrap variance is :func:`seed_variance`, var(per-seed means, ddof=1) / S: a plain bootstrap
    of S values shrinks it by (S-1)/S (a third at S = 3). Resampling seeds and episodes of the raw
    matrix instead would count the seed-by-episode noise three times (Owen 2007); here it is
    counted twice. With one seed this is the (cluster) bootstrap of episodes. Seeded: the learner
    draws come from stream 0 of ``seed``, cell i's seed draws from stream i+1.
    """
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    arrays = [np.asarray(c, dtype=np.float64) for c in cells]
    if not arrays or any(a.ndim != 3 for a in arrays):
        raise ValueError("each cell must be a [k, n_seeds, n_episodes] array")
    n = arrays[0].shape[2]
    if n == 0 or any(a.shape[2] != n or a.shape[1] == 0 for a in arrays) or not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError("cells must be finite and cover the same episodes")
    codes = np.arange(n) if clusters is None else np.asarray(clusters, dtype=np.int64)
    n_clusters = int(codes.max()) + 1
    prepared = []
    for a in arrays:
        n_seeds = a.shape[1]
        deviation = a.mean(axis=2) - a.mean(axis=(1, 2))[:, None]  # [k, S]: each seed's offset
        # scale so that the seed stage's variance, mean(d^2) scale^2 / S, is seed_variance(a[j])
        spread = np.mean(deviation**2, axis=1)
        target = np.array([seed_variance(x) for x in a]) * n_seeds
        scale = np.sqrt(np.divide(target, spread, out=np.zeros_like(spread), where=spread > 0))
        prepared.append((a.mean(axis=1), deviation * scale[:, None], n_seeds))
    learner_rng = np.random.default_rng([seed, 0])
    seed_rngs = [np.random.default_rng([seed, i + 1]) for i in range(len(arrays))]
    out = [np.empty((a.shape[0], n_resamples)) for a in arrays]
    step = chunk_rows(n)
    for start in range(0, n_resamples, step):
        rows = min(step, n_resamples - start)
        weights = _draw_counts(learner_rng, n_clusters, rows)[:, codes]  # [rows, n] episode multiplicities
        weights /= weights.sum(axis=1, keepdims=True)
        for (episode_means, deviation, n_seeds), rng, result in zip(prepared, seed_rngs, out):
            result[:, start : start + rows] = episode_means @ weights.T  # [k, rows]
            if n_seeds > 1:
                result[:, start : start + rows] += deviation @ (_draw_counts(rng, n_seeds, rows) / n_seeds).T
    return out
