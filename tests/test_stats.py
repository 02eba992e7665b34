"""bench.stats against scipy.stats and by simulation (coverage, false-positive rate)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bench import stats


def _mean_diff(a, b, axis=-1):
    return np.mean(a - b, axis=axis)


def _episode_like(rng: np.random.Generator, n: int, q: int = 10, p: float = 0.3) -> np.ndarray:
    """Per-episode means of q Bernoulli hits with a per-episode hit rate: bounded, lumpy, like acc@1."""
    rates = rng.beta(2.0, 2.0 * (1 - p) / p, size=n)
    return rng.binomial(q, rates) / q


# ---------------------------------------------------------------- bootstrap CIs vs scipy


@pytest.mark.parametrize("n", [40, 300])
def test_percentile_ci_matches_scipy_bootstrap(n):
    values = _episode_like(np.random.default_rng(n), n)
    ours = stats.bootstrap_ci(values, n_resamples=10_000, seed=3)
    ref = scipy_stats.bootstrap(
        (values,), np.mean, n_resamples=10_000, method="percentile", confidence_level=0.95,
        random_state=np.random.default_rng(7), vectorized=True,
    )
    tol = 0.2 * ref.standard_error  # Monte-Carlo error of a 2.5% quantile at 10k resamples is ~0.04 SE
    assert ours[0] == pytest.approx(ref.confidence_interval.low, abs=tol)
    assert ours[1] == pytest.approx(ref.confidence_interval.high, abs=tol)
    assert ours[0] < values.mean() < ours[1]


def test_bca_ci_matches_scipy_bootstrap():
    values = np.random.default_rng(11).exponential(size=80)  # skewed, so BCa differs from percentile
    ours = stats.bootstrap_ci(values, n_resamples=10_000, seed=1, method="bca")
    ref = scipy_stats.bootstrap(
        (values,), np.mean, n_resamples=10_000, method="BCa", random_state=np.random.default_rng(2), vectorized=True,
    )
    tol = 0.25 * ref.standard_error
    assert ours[0] == pytest.approx(ref.confidence_interval.low, abs=tol)
    assert ours[1] == pytest.approx(ref.confidence_interval.high, abs=tol)


def test_bootstrap_is_seeded_and_degenerate_sample_gives_point_interval():
    values = np.random.default_rng(0).normal(size=50)
    assert stats.bootstrap_ci(values, seed=5) == stats.bootstrap_ci(values, seed=5)
    assert stats.bootstrap_ci(values, seed=5) != stats.bootstrap_ci(values, seed=6)
    assert stats.bootstrap_ci(np.full(30, 0.25)) == (0.25, 0.25)


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError):
        stats.bootstrap_ci(np.array([]))
    with pytest.raises(ValueError):
        stats.bootstrap_ci(np.array([1.0, np.nan]))
    with pytest.raises(ValueError):
        stats.bootstrap_ci(np.ones((2, 3)))
    with pytest.raises(ValueError):
        stats.bootstrap_ci(np.arange(5.0), method="basic")


def test_bootstrap_is_fast_enough():
    values = _episode_like(np.random.default_rng(0), 300)
    stats.bootstrap_ci(values)  # warm up
    start = time.perf_counter()
    stats.bootstrap_ci(values, n_resamples=10_000)
    assert time.perf_counter() - start < 0.5


def test_bootstrap_chunks_do_not_change_the_distribution(monkeypatch):
    values = _episode_like(np.random.default_rng(4), 200)
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 1_000)  # 5 rows per chunk
    means = stats.bootstrap_means(values, n_resamples=4_000, seed=0)
    assert means.shape == (4_000,)
    assert means.mean() == pytest.approx(values.mean(), abs=0.005)
    assert means.std() == pytest.approx(values.std() / np.sqrt(values.size), rel=0.1)


def test_ci_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(2024)
    p, n, n_datasets = 0.3, 100, 400
    true_mean = p  # beta(2, 2(1-p)/p) has mean p, and binomial(q, r)/q has mean r
    covered = 0
    for i in range(n_datasets):
        low, high = stats.bootstrap_ci(_episode_like(rng, n, p=p), n_resamples=1_000, seed=i)
        covered += low <= true_mean <= high
    assert 0.90 <= covered / n_datasets <= 0.98


# ---------------------------------------------------------------- cell summary (seeds)


def test_summarize_cell_averages_seeds_per_episode_then_bootstraps():
    rng = np.random.default_rng(5)
    per_seed = _episode_like(rng, 60)[None, :] + rng.normal(0, 0.02, size=(3, 60))
    summary = stats.summarize_cell(per_seed, n_resamples=2_000, seed=9)
    assert dataclasses.is_dataclass(summary)
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.mean = 0.0
    episode_means = per_seed.mean(axis=0)
    assert summary.mean == pytest.approx(episode_means.mean())
    assert (summary.ci_low, summary.ci_high) == stats.bootstrap_ci(episode_means, n_resamples=2_000, seed=9)
    assert summary.n_episodes == 60 and summary.n_seeds == 3
    assert summary.seed_std == pytest.approx(per_seed.mean(axis=1).std(ddof=1))


def test_summarize_cells_resamples_metrics_jointly_and_matches_one_at_a_time():
    rng = np.random.default_rng(6)
    metrics = {"acc@1": rng.random((2, 40)), "mrr": rng.random((2, 40)), "const": np.full((2, 40), 0.5)}
    joint = stats.summarize_cells(metrics, n_resamples=1_000, seed=2)
    assert list(joint) == ["acc@1", "mrr", "const"]
    for name, values in metrics.items():
        assert joint[name] == stats.summarize_cell(values, n_resamples=1_000, seed=2)
    assert (joint["const"].ci_low, joint["const"].ci_high) == (0.5, 0.5)
    both = stats.bootstrap_means(np.stack([metrics["acc@1"][0], metrics["mrr"][0]]), n_resamples=500, seed=1)
    np.testing.assert_array_equal(both[1], stats.bootstrap_means(metrics["mrr"][0], n_resamples=500, seed=1))
    with pytest.raises(ValueError, match="same seeds and episodes"):
        stats.summarize_cells({"a": np.ones((2, 5)), "b": np.ones((2, 6))})


def test_summarize_cell_single_seed_has_nan_seed_std_and_rejects_ragged_seeds():
    summary = stats.summarize_cell(np.linspace(0, 1, 20), n_resamples=500)
    assert summary.n_seeds == 1 and np.isnan(summary.seed_std)
    ragged = np.ones((2, 5))
    ragged[1, 2] = np.nan
    with pytest.raises(ValueError, match="same test episodes"):
        stats.summarize_cell(ragged)


# ---------------------------------------------------------------- paired permutation test vs scipy


@pytest.mark.parametrize("n", [6, 11, 13])
def test_sign_flip_exact_enumeration_equals_scipy(n):
    rng = np.random.default_rng(n)
    a = rng.normal(0.2, 1.0, size=n)
    b = rng.normal(0.0, 1.0, size=n)
    ours = stats.sign_flip_test(a - b, n_resamples=10_000)
    ref = scipy_stats.permutation_test(
        (a, b), _mean_diff, permutation_type="samples", n_resamples=10_000, vectorized=True,
    )
    assert 2**n <= 10_000
    assert ours == pytest.approx(ref.pvalue, rel=1e-9)


def test_sign_flip_exact_counts_ties_in_both_tails():
    # 2**3 patterns of (1, 1, 2): |mean| >= 4/3 only for all-plus and all-minus
    assert stats.sign_flip_test(np.array([1.0, 1.0, 2.0])) == pytest.approx(2 / 8)
    assert stats.sign_flip_test(np.zeros(5)) == 1.0


@pytest.mark.parametrize("shift", [0.0, 0.04])
def test_sign_flip_random_matches_scipy_within_monte_carlo_error(shift):
    rng = np.random.default_rng(17)
    b = _episode_like(rng, 200)
    a = np.clip(b + rng.normal(shift, 0.3, size=200), 0, 1)
    ours = stats.sign_flip_test(a - b, n_resamples=10_000, seed=0)
    ref = scipy_stats.permutation_test(
        (a, b), _mean_diff, permutation_type="samples", n_resamples=10_000,
        random_state=np.random.default_rng(1), vectorized=True,
    )
    p = ref.pvalue
    tol = 5 * np.sqrt(2 * max(p * (1 - p), 1e-3) / 10_000)
    assert ours == pytest.approx(p, abs=tol)
    assert ours >= 1 / 10_001  # the +1 correction: never zero


def test_sign_flip_p_value_has_plus_one_correction():
    d = np.full(100, 0.5)  # no sign pattern except all-plus (and all-minus) reaches |t|
    assert stats.sign_flip_test(d, n_resamples=999, seed=0) == pytest.approx(1 / 1000)


def test_paired_test_false_positive_rate_is_about_alpha():
    rng = np.random.default_rng(99)
    n_sims, n = 400, 60
    rejections = 0
    for i in range(n_sims):
        difficulty = rng.beta(2, 5, size=n)  # shared per-episode difficulty: a paired design
        a = rng.binomial(10, difficulty) / 10
        b = rng.binomial(10, difficulty) / 10
        rejections += stats.sign_flip_test(a - b, n_resamples=1_000, seed=i) < 0.05
    assert 0.02 <= rejections / n_sims <= 0.09


def test_paired_test_detects_a_real_difference():
    rng = np.random.default_rng(3)
    difficulty = rng.beta(2, 5, size=300)
    a = rng.binomial(10, np.clip(difficulty + 0.05, 0, 1)) / 10
    b = rng.binomial(10, difficulty) / 10
    assert stats.sign_flip_test(a - b) < 0.01


# ---------------------------------------------------------------- paired comparison, W/T/L, Holm


def test_compare_paired_combines_difference_ci_p_and_wtl():
    rng = np.random.default_rng(8)
    reference = _episode_like(rng, 80)
    candidate = np.clip(reference + rng.choice([-0.1, 0.0, 0.1, 0.2], size=80), 0, 1)
    result = stats.compare_paired(candidate, reference, n_resamples=2_000, seed=4)
    d = candidate - reference
    assert result.mean_diff == pytest.approx(d.mean())
    assert (result.ci_low, result.ci_high) == stats.paired_bootstrap_ci(candidate, reference, n_resamples=2_000, seed=4)
    assert result.ci_low < result.mean_diff < result.ci_high
    assert result.p_value == stats.sign_flip_test(d, n_resamples=2_000, seed=4)
    assert (result.wins, result.ties, result.losses) == (
        int((d > 1e-12).sum()), int((np.abs(d) <= 1e-12).sum()), int((d < -1e-12).sum()),
    )
    assert result.wins + result.ties + result.losses == result.n_episodes == 80


def test_win_tie_loss_counts_and_seed_averaging():
    candidate = np.array([0.5, 0.2, 0.3, 0.1, 0.4])
    reference = np.array([0.4, 0.2, 0.5, 0.1, 0.1])
    assert stats.win_tie_loss(candidate, reference) == (2, 2, 1)
    # 0.1 + 0.2 != 0.3 in floating point; averaged seeds must still tie
    two_seeds = np.array([[0.1, 0.7], [0.2, 0.1]])
    assert stats.win_tie_loss(two_seeds, np.array([0.15, 0.4])) == (0, 2, 0)
    with pytest.raises(ValueError, match="different episodes"):
        stats.win_tie_loss(np.ones(3), np.ones(4))


def test_holm_hand_worked_example():
    # sorted: 0.01*4=0.04, 0.02*3=0.06, 0.03*2=0.06 (monotone), 0.5*1=0.5
    p = np.array([0.03, 0.5, 0.01, 0.02])
    np.testing.assert_allclose(stats.holm(p), [0.06, 0.5, 0.04, 0.06])
    # step-down monotonicity and the cap at 1
    np.testing.assert_allclose(stats.holm(np.array([0.04, 0.03, 0.9])), [0.09, 0.09, 0.9])
    np.testing.assert_allclose(stats.holm(np.array([0.6, 0.7])), [1.0, 1.0])


def test_holm_edge_cases():
    assert stats.holm(np.array([])).size == 0
    np.testing.assert_allclose(stats.holm(np.array([0.2])), [0.2])
    np.testing.assert_allclose(stats.holm(np.array([0.01, np.nan, 0.04])), [0.02, np.nan, 0.04])
    with pytest.raises(ValueError):
        stats.holm(np.array([1.5]))
