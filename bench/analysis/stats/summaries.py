"""One cell's metrics: mean and interval, by the episode, cluster or two-stage bootstrap."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from bench.analysis.stats.bootstrap import (
    CONFIDENCE,
    N_RESAMPLES,
    CIMethod,
    bootstrap_interval,
    bootstrap_means,
    check_ci_args,
    seed_mean_episodes,
)
from bench.analysis.stats.intervals import seed_t_interval
from bench.analysis.stats.two_stage import cluster_codes, seed_variance, two_stage_means


@dataclass(frozen=True)
class CellSummary:
    """One cell's metric: mean over episodes (of the per-episode seed means) with its bootstrap CI.

    ``seed_std`` is the sample standard deviation (ddof=1) of the per-seed means over episodes;
    NaN with one seed.
    """

    mean: float
    ci_low: float
    ci_high: float
    n_episodes: int
    n_seeds: int
    seed_std: float


def summarize_cells(
    values: Mapping[str, np.ndarray],
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    method: CIMethod = "percentile",
    clusters: np.ndarray | None = None,
) -> dict[str, CellSummary]:
    """:func:`summarize_cell` for several metrics of one cell on the same episodes (name -> array),
    resampling the seeds and episodes jointly (one set of draws for all metrics); each metric's
    result is identical to :func:`summarize_cell` on it alone."""
    check_ci_args(confidence, method)
    per_seed = {name: np.atleast_2d(np.asarray(array, dtype=np.float64)) for name, array in values.items()}
    if len({array.shape for array in per_seed.values()}) > 1:
        raise ValueError("every metric must cover the same seeds and episodes")
    episodes = {name: seed_mean_episodes(array) for name, array in per_seed.items()}
    if not episodes:
        return {}
    n_seeds, n_episodes = next(iter(per_seed.values())).shape
    codes = cluster_codes(clusters, n_episodes)
    if n_seeds == 1 and codes is None:
        boot = bootstrap_means(np.stack(list(episodes.values())), n_resamples, seed)
    else:
        if method != "percentile":
            raise ValueError("the two-stage bootstrap (several seeds or learners) takes no BCa interval")
        (boot,) = two_stage_means([np.stack(list(per_seed.values()))], codes, n_resamples, seed)
    n_learners = n_episodes if codes is None else int(codes.max()) + 1
    summaries = {}
    for (name, array), boot_means in zip(per_seed.items(), boot):
        if n_seeds > 1 and np.ptp(array) > 0:
            parts = [(seed_variance(array), n_seeds)]
            low, high, _, _ = seed_t_interval(float(episodes[name].mean()), boot_means, parts, n_learners, confidence)
        else:
            low, high = bootstrap_interval(episodes[name], boot_means, confidence, method)
        summaries[name] = CellSummary(
            mean=float(episodes[name].mean()),
            ci_low=low,
            ci_high=high,
            n_episodes=int(n_episodes),
            n_seeds=int(n_seeds),
            seed_std=float(array.mean(axis=1).std(ddof=1)) if n_seeds > 1 else float("nan"),
        )
    return summaries


def summarize_cell(
    values: np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    method: CIMethod = "percentile",
    clusters: np.ndarray | None = None,
) -> CellSummary:
    """Mean and bootstrap CI for one cell.

    ``values`` is [n_episodes] (one seed) or [n_seeds, n_episodes] (same episodes per seed); the
    mean is over seeds and episodes. One seed, one episode per learner: the episode bootstrap
    (:func:`bootstrap_ci`). ``clusters`` (the learner of each episode) with a learner holding
    several episodes: the cluster bootstrap, percentile interval. Several seeds: the two-stage
    bootstrap (:func:`two_stage_means`) with the t interval of :func:`seed_t_interval`.
    ``seed_std`` is the std (ddof=1) of the per-seed means.
    """
    return summarize_cells({"": values}, confidence, n_resamples, seed, method, clusters)[""]
