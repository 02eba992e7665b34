"""Statistics over per-episode metrics: small pure functions on arrays (numpy/scipy only).

Conventions shared by every function here:
- A cell's results are a [n_seeds, n_episodes] array: every seed (one trained model each) is scored
  on the same test episodes. Point estimates average over seeds and episodes.
- With one seed and one episode per learner, the unit of resampling is the test episode (the
  classic paired bootstrap and sign-flip permutation test below). Otherwise intervals come from the
  *two-stage bootstrap* (:func:`two_stage_means`): resample seeds and learners (all the episodes
  of a drawn learner come together, a cluster bootstrap), so intervals cover both the training
  randomness and the sampling of learners.
- One seed: 95% bootstrap intervals by the *percentile method* (Efron) unless ``method="bca"``
  (bias-corrected and accelerated, jackknife acceleration). Two or more seeds: estimate +- t * SE,
  SE from the two-stage bootstrap, Student t with Welch-Satterthwaite df (:func:`seed_t_interval`),
  because a handful of seeds pins the between-seed variance down poorly. Resampling draws seeded
  index matrices in chunks, so results are reproducible.
- Paired comparisons use the same episodes for both arms: the paired bootstrap resamples episode
  differences; the paired permutation test flips the sign of each difference (two-sided).
- Holm's step-down procedure adjusts the p-values of one declared family of comparisons.

No I/O, no printing, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import ndtr, ndtri, stdtr, stdtrit

N_RESAMPLES = 10_000
CONFIDENCE = 0.95
# Elements of one chunk of the resample matrix (float64: 16 MB); bounds memory at any n_resamples.
_CHUNK_ELEMENTS = 2_000_000
# Relative tolerance for "as extreme as observed", so float round-off does not split exact ties.
_TIE_RTOL = 1e-12

CIMethod = Literal["percentile", "bca"]


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


@dataclass(frozen=True)
class PairedComparison:
    """Candidate minus reference on the same episodes.

    ``mean_diff`` with its paired bootstrap CI, the two-sided paired sign-flip permutation
    p-value (unadjusted; see :func:`holm`), and per-episode wins/ties/losses of the candidate.
    """

    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    wins: int
    ties: int
    losses: int
    n_episodes: int


def as_1d(values: np.ndarray, name: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def chunk_rows(n_columns: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, n_columns))


def bootstrap_means(values: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Means of ``n_resamples`` bootstrap resamples (with replacement, size n) of ``values``.

    ``values`` is [n] -> [n_resamples], or [k, n] -> [k, n_resamples] where the k rows are resampled
    jointly (the same resampled indices for every row: k metrics of the same n episodes).
    Vectorised: a seeded [chunk, n] index matrix per chunk; the indices depend only on n, the seed
    and ``n_resamples``, so a row gets the same bootstrap means alone or with others.
    """
    array = np.asarray(values, dtype=np.float64)
    rows = as_1d(array)[None, :] if array.ndim == 1 else array
    if rows.ndim != 2 or rows.shape[1] == 0 or not np.all(np.isfinite(rows)):
        raise ValueError(f"values must be a finite [n] or [k, n] array, got shape {array.shape}")
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    n = rows.shape[1]
    rng = np.random.default_rng(seed)
    means = np.empty((rows.shape[0], n_resamples), dtype=np.float64)
    step = chunk_rows(n)
    for start in range(0, n_resamples, step):
        stop = min(start + step, n_resamples)
        indices = rng.integers(0, n, size=(stop - start, n))
        for row, out in zip(rows, means):
            out[start:stop] = row[indices].mean(axis=1)
    return means[0] if array.ndim == 1 else means


def bootstrap_interval(values: np.ndarray, boot_means: np.ndarray, confidence: float, method: CIMethod) -> tuple[float, float]:
    """Percentile or BCa interval of one sample from its bootstrap means."""
    mean = float(values.mean())
    if np.ptp(values) == 0.0:
        return mean, mean
    tail = (1.0 - confidence) / 2.0
    if method == "percentile":
        levels = np.array([tail, 1.0 - tail])
    else:
        levels = _bca_levels(values, boot_means, tail)
    low, high = np.quantile(boot_means, levels)
    return float(low), float(high)


def check_ci_args(confidence: float, method: str) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie strictly between 0 and 1")
    if method not in ("percentile", "bca"):
        raise ValueError(f"unknown CI method {method!r}; use 'percentile' or 'bca'")


def bootstrap_ci(
    values: np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    method: CIMethod = "percentile",
) -> tuple[float, float]:
    """Two-sided bootstrap confidence interval for the mean of 1-D ``values``.

    ``method="percentile"`` (default): the (1-c)/2 and (1+c)/2 quantiles of the bootstrap means
    (Efron's percentile interval, linear interpolation as in ``numpy.quantile``), as
    ``scipy.stats.bootstrap(..., method='percentile')``.
    ``method="bca"``: Efron's bias-corrected and accelerated interval, bias correction from the
    share of bootstrap means below the sample mean, acceleration from the jackknife means.
    A constant sample gives the degenerate interval (mean, mean).
    """
    values = as_1d(values)
    check_ci_args(confidence, method)
    if np.ptp(values) == 0.0:
        return float(values.mean()), float(values.mean())
    return bootstrap_interval(values, bootstrap_means(values, n_resamples, seed), confidence, method)


def _bca_levels(values: np.ndarray, boot_means: np.ndarray, tail: float) -> np.ndarray:
    """BCa-adjusted quantile levels for the mean (Efron & Tibshirani 1993, 14.3)."""
    n, b = values.size, boot_means.size
    # clipped so that a bootstrap distribution entirely on one side of the mean stays finite
    z0 = ndtri(np.clip(np.mean(boot_means < values.mean()), 1 / (b + 1), b / (b + 1)))
    jackknife = (values.sum() - values) / (n - 1)
    deviations = jackknife.mean() - jackknife
    denominator = 6.0 * np.sum(deviations**2) ** 1.5
    acceleration = np.sum(deviations**3) / denominator if denominator > 0 else 0.0
    z = ndtri(np.array([tail, 1.0 - tail]))
    return ndtr(z0 + (z0 + z) / (1.0 - acceleration * (z0 + z)))


def seed_mean_episodes(values: np.ndarray) -> np.ndarray:
    """Per-episode values averaged over seeds: [n_seeds, n_episodes] -> [n_episodes] (1-D passes)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        return as_1d(array)
    if array.ndim != 2:
        raise ValueError(f"values must be [n_seeds, n_episodes] or [n_episodes], got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("values contain NaN: every seed must cover the same test episodes")
    return as_1d(array.mean(axis=0))


# ---------------------------------------------------------------------------------------------
# Two-stage (hierarchical) bootstrap: seeds, then learners


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
    counted twice. With one seed this is the (cluster) bootstrap of episodes. Seeded: the learner draws come from stream 0 of ``seed``, cell i's seed draws from
    stream i+1.
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


def paired_differences(candidate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-episode ``candidate - reference`` (after averaging each over seeds if 2-D)."""
    a = seed_mean_episodes(candidate)
    b = seed_mean_episodes(reference)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays cover different episodes: {a.size} vs {b.size}")
    return a - b


def sign_flip_test(
    differences: np.ndarray,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> float:
    """Two-sided paired permutation test of mean difference = 0 by random sign flips.

    Statistic: the mean of the differences. Under H0 (exchangeable arms within an episode) each
    difference's sign is a fair coin. p = P(|T*| >= |t|). When 2**n <= ``n_resamples`` all sign
    patterns are enumerated (exact p, no correction); otherwise ``n_resamples`` seeded random
    patterns are drawn and p = (1 + #{|T*| >= |t|}) / (1 + n_resamples), which is never 0 and keeps
    the test valid. Matches ``scipy.stats.permutation_test(..., permutation_type='samples')``.
    """
    d = as_1d(differences, "differences")
    n = d.size
    observed = abs(d.mean())
    threshold = observed - _TIE_RTOL * max(observed, np.abs(d).mean())
    if n < 63 and 2**n <= n_resamples:
        patterns = np.arange(2**n, dtype=np.int64)
        extreme = 0
        step = chunk_rows(n)
        for start in range(0, patterns.size, step):
            bits = (patterns[start : start + step, None] >> np.arange(n)) & 1
            null = np.abs((1 - 2 * bits) @ d) / n
            extreme += int(np.count_nonzero(null >= threshold))
        return min(1.0, extreme / 2**n)
    rng = np.random.default_rng(seed)
    extreme = 0
    step = chunk_rows(n)
    for start in range(0, n_resamples, step):
        rows = min(step, n_resamples - start)
        signs = rng.integers(0, 2, size=(rows, n), dtype=np.int8) * 2 - 1
        null = np.abs(signs @ d) / n
        extreme += int(np.count_nonzero(null >= threshold))
    return (extreme + 1) / (n_resamples + 1)


def win_tie_loss(candidate: np.ndarray, reference: np.ndarray, atol: float = 1e-12) -> tuple[int, int, int]:
    """Episodes where the candidate is higher / within ``atol`` / lower than the reference
    (each averaged over seeds first when 2-D)."""
    d = paired_differences(candidate, reference)
    ties = np.abs(d) <= atol
    return int(np.count_nonzero((d > 0) & ~ties)), int(np.count_nonzero(ties)), int(np.count_nonzero((d < 0) & ~ties))


def compare_paired(
    candidate: np.ndarray,
    reference: np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    method: CIMethod = "percentile",
) -> PairedComparison:
    """Candidate vs reference on the same episodes ([n_episodes] or [n_seeds, n_episodes] each):
    mean difference, paired bootstrap CI, two-sided sign-flip p-value, wins/ties/losses."""
    d = paired_differences(candidate, reference)
    low, high = bootstrap_ci(d, confidence, n_resamples, seed, method)
    wins, ties, losses = win_tie_loss(candidate, reference)
    return PairedComparison(
        mean_diff=float(d.mean()),
        ci_low=low,
        ci_high=high,
        p_value=sign_flip_test(d, n_resamples=n_resamples, seed=seed),
        wins=wins,
        ties=ties,
        losses=losses,
        n_episodes=int(d.size),
    )


def holm(pvalues: np.ndarray, family_size: int | None = None) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order.

    With the finite p-values sorted ascending p_(1) <= ... <= p_(k) and m the family size:
    adj_(i) = min(1, max_{j <= i} (m - j + 1) p_(j)). NaN entries (questions that could not be
    tested) stay NaN. ``family_size`` (default: the number of finite p-values) fixes m to the
    declared family: an untested member keeps its place as if its p were 1, so a missing run never
    loosens the other questions' thresholds.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be 1-D, got shape {p.shape}")
    adjusted = np.full_like(p, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size if family_size is None else int(family_size)
    if m < finite.size:
        raise ValueError(f"family_size {m} is smaller than the {finite.size} p-values given")
    if finite.size == 0:
        return adjusted
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = (m - np.arange(order.size)) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


# ---------------------------------------------------------------------------------------------
# One declared question: A minus B, with seed variance


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
        mean_diff=float(d.mean()), ci_low=low, ci_high=high, p_value=float(p), se=se,
        wins=wins, ties=ties, losses=losses, n_episodes=int(n), n_learners=n_learners, n_seeds=int(n_seeds),
        paired_seeds=bool(paired_seeds), per_seed_diffs=per_seed, test=test, df=df,
    )
