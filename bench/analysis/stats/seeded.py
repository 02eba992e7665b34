"""One declared question: A minus B on the same episodes, with seed variance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.analysis.stats.bootstrap import (
    CONFIDENCE,
    N_RESAMPLES,
    bootstrap_ci,
    bootstrap_interval,
    check_ci_args,
    seed_mean_episodes,
)
from bench.analysis.stats.intervals import seed_t_interval, t_p_value
from bench.analysis.stats.paired import sign_flip_test, win_tie_loss
from bench.analysis.stats.two_stage import cluster_codes, seed_variance, two_stage_means


@dataclass(frozen=True)
class SeededComparison:
    """A minus B on the same test episodes, each cell [n_seeds, n_episodes].

    ``se``: the standard error of ``mean_diff`` (sd of the paired differences / sqrt(n) with one
    seed and one episode per learner, else the sd of the two-stage bootstrap distribution);
    ``test``: "sign-flip", "sign-flip by learner" or "two-stage bootstrap t"; ``per_seed_diffs``: mean A - B per seed
    (paired seeds) or per seed index (independent seeds, up to the smaller seed count).
    """

    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    se: float
    wins: int
    ties: int
    losses: int
    n_episodes: int
    n_learners: int
    n_seeds: int
    paired_seeds: bool
    per_seed_diffs: tuple[float, ...]
    test: str
    df: float = float("inf")  # of the t reference (inf: normal, permutation or percentile)


def compare_seeded(
    a: np.ndarray,
    b: np.ndarray,
    paired_seeds: bool,
    clusters: np.ndarray | Sequence | None = None,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> SeededComparison:
    """A vs B ([n_seeds, n_episodes] each, same episodes) with seed variance in the interval and test.

    - One seed each, one episode per learner: the paired episode bootstrap CI and the exact/random
      sign-flip permutation test (:func:`compare_paired`): the claim is about these two trained models.
    - One seed each, learners with several episodes: the cluster bootstrap CI; the sign-flip test
      flips each learner's summed difference (A and B exchangeable within a learner under H0).
    - Two or more seeds on a side: the two-stage bootstrap (:func:`two_stage_means`) of the mean
      difference, seeds resampled jointly when ``paired_seeds`` (seed s of A and B share a
      prerequisite, e.g. the same GRU4Rec weights; then D = A - B per seed is resampled) and
      independently otherwise. Interval and test use its SE with a Student t reference whose
      Welch-Satterthwaite df count the few seeds (:func:`seed_t_interval`, :func:`t_p_value`): the
      test is dual to the interval. Its null is "the expected A - B over trained models (seeds) and
      learners is 0", the claim a method comparison makes; a sign-flip test on seed-averaged
      episodes would only test these particular models and ignore the between-seed variance.
    """
    a2 = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b2 = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a2.shape[1] != b2.shape[1]:
        raise ValueError(f"paired arrays cover different episodes: {a2.shape[1]} vs {b2.shape[1]}")
    if paired_seeds and a2.shape[0] != b2.shape[0]:
        raise ValueError("paired seeds need the same seeds on both sides")
    d = seed_mean_episodes(a2) - seed_mean_episodes(b2)
    n = d.size
    codes = cluster_codes(clusters, n)
    n_learners = n if codes is None else int(codes.max()) + 1
    wins, ties, losses = win_tie_loss(a2, b2)
    if paired_seeds:
        per_seed = tuple(float(x) for x in (a2 - b2).mean(axis=1))
    else:
        k = min(a2.shape[0], b2.shape[0])
        per_seed = tuple(float(x) for x in a2[:k].mean(axis=1) - b2[:k].mean(axis=1))
    n_seeds = max(a2.shape[0], b2.shape[0])
    df = float("inf")
    if n_seeds == 1 and codes is None:
        low, high = bootstrap_ci(d, confidence, n_resamples, seed)
        p, se, test = sign_flip_test(d, n_resamples, seed), float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0, "sign-flip"
    else:
        check_ci_args(confidence, "percentile")
        if paired_seeds:
            (boot,) = two_stage_means([(a2 - b2)[None]], codes, n_resamples, seed)
            boot = boot[0]
        else:
            boot_a, boot_b = two_stage_means([a2[None], b2[None]], codes, n_resamples, seed)
            boot = boot_a[0] - boot_b[0]
        if n_seeds == 1:
            low, high = bootstrap_interval(d, boot, confidence, "percentile")
            se = float(boot.std(ddof=1))
            p, test = sign_flip_test(np.bincount(codes, weights=d), n_resamples, seed), "sign-flip by learner"
        else:
            sides = [a2 - b2] if paired_seeds else [a2, b2]
            parts = [(seed_variance(x), x.shape[0]) for x in sides]
            low, high, se, df = seed_t_interval(float(d.mean()), boot, parts, n_learners, confidence)
            p, test = t_p_value(float(d.mean()), se, df), "two-stage bootstrap t"
    return SeededComparison(
        mean_diff=float(d.mean()),
        ci_low=low,
        ci_high=high,
        p_value=float(p),
        se=se,
        wins=wins,
        ties=ties,
        losses=losses,
        n_episodes=int(n),
        n_learners=n_learners,
        n_seeds=int(n_seeds),
        paired_seeds=bool(paired_seeds),
        per_seed_diffs=per_seed,
        test=test,
        df=df,
    )
