"""Paired tests on the same episodes (paired bootstrap, sign-flip permutation test, wins/ties/losses) and
multiple comparisons (Holm)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.analysis.stats.bootstrap import (
    CONFIDENCE,
    N_RESAMPLES,
    CIMethod,
    as_1d,
    bootstrap_ci,
    chunk_rows,
    seed_mean_episodes,
)

# Relative tolerance for "as extreme as observed", so float round-off does not split exact ties.
_TIE_RTOL = 1e-12


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
