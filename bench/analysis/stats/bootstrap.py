"""The bootstrap over episodes: resampled means in seeded chunks, percentile and BCa intervals."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.special import ndtr, ndtri

N_RESAMPLES = 10_000


CONFIDENCE = 0.95


# Elements of one chunk of the resample matrix (float64: 16 MB); bounds memory at any n_resamples.
_CHUNK_ELEMENTS = 2_000_000


CIMethod = Literal["percentile", "bca"]


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
