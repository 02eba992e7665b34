"""Statistics over per-episode metrics: small pure functions on arrays (numpy/scipy only).

Conventions shared by every function here:
- The unit of resampling is the test episode. Several seeds of one cell are evaluated on the same
  test episodes, so per-episode values are averaged over seeds first, then resampled over episodes.
- Confidence intervals are 95% bootstrap intervals by the *percentile method* (Efron) unless
  ``method="bca"`` (bias-corrected and accelerated, jackknife acceleration) is asked for; the
  resampling draws a seeded index matrix in chunks, so results are reproducible for a given seed.
- Paired comparisons use the same episodes for both arms: the paired bootstrap resamples episode
  differences; the paired permutation test flips the sign of each difference (two-sided).
- Holm's step-down procedure adjusts the p-values of all comparisons in one table.

No I/O, no printing, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import ndtr, ndtri

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


def _as_1d(values: np.ndarray, name: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _chunk_rows(n_columns: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, n_columns))


def bootstrap_means(values: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Means of ``n_resamples`` bootstrap resamples (with replacement, size n) of ``values``.

    ``values`` is [n] -> [n_resamples], or [k, n] -> [k, n_resamples] where the k rows are resampled
    jointly (the same resampled indices for every row: k metrics of the same n episodes).
    Vectorised: a seeded [chunk, n] index matrix per chunk; the indices depend only on n, the seed
    and ``n_resamples``, so a row gets the same bootstrap means alone or with others.
    """
    array = np.asarray(values, dtype=np.float64)
    rows = _as_1d(array)[None, :] if array.ndim == 1 else array
    if rows.ndim != 2 or rows.shape[1] == 0 or not np.all(np.isfinite(rows)):
        raise ValueError(f"values must be a finite [n] or [k, n] array, got shape {array.shape}")
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    n = rows.shape[1]
    rng = np.random.default_rng(seed)
    means = np.empty((rows.shape[0], n_resamples), dtype=np.float64)
    step = _chunk_rows(n)
    for start in range(0, n_resamples, step):
        stop = min(start + step, n_resamples)
        indices = rng.integers(0, n, size=(stop - start, n))
        for row, out in zip(rows, means):
            out[start:stop] = row[indices].mean(axis=1)
    return means[0] if array.ndim == 1 else means


def _interval(values: np.ndarray, boot_means: np.ndarray, confidence: float, method: CIMethod) -> tuple[float, float]:
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


def _check_ci_args(confidence: float, method: str) -> None:
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
    values = _as_1d(values)
    _check_ci_args(confidence, method)
    if np.ptp(values) == 0.0:
        return float(values.mean()), float(values.mean())
    return _interval(values, bootstrap_means(values, n_resamples, seed), confidence, method)


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
        return _as_1d(array)
    if array.ndim != 2:
        raise ValueError(f"values must be [n_seeds, n_episodes] or [n_episodes], got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("values contain NaN: every seed must cover the same test episodes")
    return _as_1d(array.mean(axis=0))


def summarize_cells(
    values: Mapping[str, np.ndarray],
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    method: CIMethod = "percentile",
) -> dict[str, CellSummary]:
    """:func:`summarize_cell` for several metrics of one cell on the same episodes (name -> array),
    resampling the episodes jointly (one index matrix for all metrics); each metric's result is
    identical to :func:`summarize_cell` on it alone."""
    _check_ci_args(confidence, method)
    per_seed = {name: np.atleast_2d(np.asarray(array, dtype=np.float64)) for name, array in values.items()}
    if len({array.shape for array in per_seed.values()}) > 1:
        raise ValueError("every metric must cover the same seeds and episodes")
    episodes = {name: seed_mean_episodes(array) for name, array in per_seed.items()}
    if not episodes:
        return {}
    boot = bootstrap_means(np.stack(list(episodes.values())), n_resamples, seed)
    summaries = {}
    for (name, array), boot_means in zip(per_seed.items(), boot):
        low, high = _interval(episodes[name], boot_means, confidence, method)
        n_seeds = array.shape[0]
        summaries[name] = CellSummary(
            mean=float(episodes[name].mean()),
            ci_low=low,
            ci_high=high,
            n_episodes=int(episodes[name].size),
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
) -> CellSummary:
    """Mean and bootstrap CI over episodes for one cell.

    ``values`` is [n_episodes] (one seed) or [n_seeds, n_episodes] (same episodes per seed): values
    are averaged over seeds per episode, then resampled over episodes (percentile method by
    default; see :func:`bootstrap_ci`). ``seed_std`` is the std (ddof=1) of the per-seed means.
    """
    return summarize_cells({"": values}, confidence, n_resamples, seed, method)[""]


def paired_differences(candidate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-episode ``candidate - reference`` (after averaging each over seeds if 2-D)."""
    a = seed_mean_episodes(candidate)
    b = seed_mean_episodes(reference)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays cover different episodes: {a.size} vs {b.size}")
    return a - b


def paired_bootstrap_ci(
    candidate: np.ndarray,
    reference: np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    method: CIMethod = "percentile",
) -> tuple[float, float]:
    """Bootstrap CI of the mean paired difference: episodes are resampled jointly for both arms
    (equivalently, the per-episode differences are resampled); percentile method by default."""
    return bootstrap_ci(paired_differences(candidate, reference), confidence, n_resamples, seed, method)


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
    d = _as_1d(differences, "differences")
    n = d.size
    observed = abs(d.mean())
    threshold = observed - _TIE_RTOL * max(observed, np.abs(d).mean())
    if n < 63 and 2**n <= n_resamples:
        patterns = np.arange(2**n, dtype=np.int64)
        extreme = 0
        step = _chunk_rows(n)
        for start in range(0, patterns.size, step):
            bits = (patterns[start : start + step, None] >> np.arange(n)) & 1
            null = np.abs((1 - 2 * bits) @ d) / n
            extreme += int(np.count_nonzero(null >= threshold))
        return min(1.0, extreme / 2**n)
    rng = np.random.default_rng(seed)
    extreme = 0
    step = _chunk_rows(n)
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


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order.

    With the m finite p-values sorted ascending p_(1) <= ... <= p_(m):
    adj_(i) = min(1, max_{j <= i} (m - j + 1) p_(j)). NaN entries stay NaN and do not count in m.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be 1-D, got shape {p.shape}")
    adjusted = np.full_like(p, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    if finite.size == 0:
        return adjusted
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    scaled = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted
