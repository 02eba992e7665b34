"""Student t intervals over a few seeds (Welch-Satterthwaite df), their p-values, and power: the minimum
detectable effect."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import stdtr, stdtrit

from bench.analysis.stats.bootstrap import CONFIDENCE


def satterthwaite_df(components: Sequence[tuple[float, float]]) -> float:
    """Welch-Satterthwaite effective degrees of freedom of a sum of variance estimates.

    ``components`` are (variance, df) pairs: df = (sum v)^2 / sum(v^2 / df); inf when no component
    with finite df carries variance."""
    total = sum(v for v, _ in components)
    denominator = sum(v * v / d for v, d in components if v > 0 and np.isfinite(d))
    return float(total * total / denominator) if denominator > 0 else float("inf")


def seed_t_interval(
    estimate: float,
    boot: np.ndarray,
    seed_parts: Sequence[tuple[float, int]],
    n_learners: int,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float, float]:
    """(low, high, se, df): the interval estimate +- t_df * se for a two-stage bootstrap with few seeds.

    se is the sd of the two-stage bootstrap distribution ``boot``; ``seed_parts`` are the
    (:func:`seed_variance`, n_seeds) of each independently drawn set of seeds in it. A seed part is
    known from S values only (S - 1 df), so a normal or percentile interval is too narrow when seeds
    dominate (3 seeds: t_2 = 4.30 vs z = 1.96). The reference is Student's t with the
    Welch-Satterthwaite df of the seed parts (S - 1 each) and the rest of the bootstrap variance
    (n_learners - 1); it tends to the normal interval as the seed share vanishes.
    """
    se = float(np.std(boot, ddof=1))
    parts = [(float(v), float(s) - 1.0) for v, s in seed_parts if s > 1]
    rest = max(se * se - sum(v for v, _ in parts), 0.0)
    df = satterthwaite_df([*parts, (rest, max(n_learners - 1.0, 1.0))])
    half = float(stdtrit(df, 0.5 + confidence / 2)) * se
    return estimate - half, estimate + half, se, df


def t_p_value(estimate: float, se: float, df: float) -> float:
    """Two-sided p of estimate / se against Student's t with ``df`` (1 when the estimate and se are 0)."""
    if se == 0:
        return 1.0 if estimate == 0 else 0.0
    return float(min(1.0, 2.0 * stdtr(df, -abs(estimate) / se)))


def minimum_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8, df: float = float("inf")) -> float:
    """Smallest |mean difference| a two-sided level-``alpha`` test detects with probability ``power``.

    MDE = (q_{1-alpha/2} + q_{power}) * sd / sqrt(n), q the quantiles of the test's reference
    distribution: the normal (df = inf; a paired mean) or Student's t with ``df``. ``sd`` is the sd
    of the paired differences (one seed, one episode per learner) or the effective sd sqrt(n) * SE
    of a two-stage bootstrap. At alpha = 0.05, 80% power and df = inf the factor is 2.80.
    """
    if n < 1 or not 0 < alpha < 1 or not 0 < power < 1 or not df > 0:
        raise ValueError("need n >= 1, 0 < alpha < 1, 0 < power < 1 and df > 0")
    return float((stdtrit(df, 1 - alpha / 2) + stdtrit(df, power)) * sd / np.sqrt(n))
