"""bench.analysis.stats against scipy.stats and by simulation (coverage, false-positive rate)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bench.analysis import stats
from bench.analysis.stats import bootstrap as stats_bootstrap


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
        (values,),
        np.mean,
        n_resamples=10_000,
        method="percentile",
        confidence_level=0.95,
        random_state=np.random.default_rng(7),
        vectorized=True,
    )
    tol = 0.2 * ref.standard_error  # Monte-Carlo error of a 2.5% quantile at 10k resamples is ~0.04 SE
    assert ours[0] == pytest.approx(ref.confidence_interval.low, abs=tol)
    assert ours[1] == pytest.approx(ref.confidence_interval.high, abs=tol)
    assert ours[0] < values.mean() < ours[1]


def test_bca_ci_matches_scipy_bootstrap():
    values = np.random.default_rng(11).exponential(size=80)  # skewed, so BCa differs from percentile
    ours = stats.bootstrap_ci(values, n_resamples=10_000, seed=1, method="bca")
    ref = scipy_stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=10_000,
        method="BCa",
        random_state=np.random.default_rng(2),
        vectorized=True,
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


def test_bootstrap_chunks_do_not_change_the_distribution(monkeypatch):
    values = _episode_like(np.random.default_rng(4), 200)
    monkeypatch.setattr(stats_bootstrap, "_CHUNK_ELEMENTS", 1_000)  # 5 rows per chunk
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
    # several seeds: the two-stage bootstrap (seeds, then episodes); one seed: the episode bootstrap
    (boot,) = stats.two_stage_means([per_seed[None]], None, n_resamples=2_000, seed=9)
    low, high, se, df = stats.seed_t_interval(episode_means.mean(), boot[0], [(stats.seed_variance(per_seed), 3)], 60)
    assert (summary.ci_low, summary.ci_high) == (low, high)
    assert 2 < df < np.inf and high - low == pytest.approx(2 * se * scipy_stats.t.ppf(0.975, df))
    one = stats.summarize_cell(per_seed[0], n_resamples=2_000, seed=9)
    assert (one.ci_low, one.ci_high) == stats.bootstrap_ci(per_seed[0], n_resamples=2_000, seed=9)
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
        (a, b),
        _mean_diff,
        permutation_type="samples",
        n_resamples=10_000,
        vectorized=True,
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
        (a, b),
        _mean_diff,
        permutation_type="samples",
        n_resamples=10_000,
        random_state=np.random.default_rng(1),
        vectorized=True,
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
    assert (result.ci_low, result.ci_high) == stats.bootstrap_ci(stats.paired_differences(candidate, reference), n_resamples=2_000, seed=4)
    assert result.ci_low < result.mean_diff < result.ci_high
    assert result.p_value == stats.sign_flip_test(d, n_resamples=2_000, seed=4)
    assert (result.wins, result.ties, result.losses) == (
        int((d > 1e-12).sum()),
        int((np.abs(d) <= 1e-12).sum()),
        int((d < -1e-12).sum()),
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


def test_holm_over_a_fixed_family_counts_untested_members():
    p = np.array([0.01, np.nan, 0.04, 0.03])
    # m = 4 (declared): 4 x 0.01 = 0.04; 3 x 0.03 = 0.09; 2 x 0.04 = 0.08 -> running max 0.09
    np.testing.assert_allclose(stats.holm(p, family_size=4), [0.04, np.nan, 0.09, 0.09])
    # m = 3 (only the tested ones) would loosen every threshold: 0.03, 0.06, 0.06
    np.testing.assert_allclose(stats.holm(p), [0.03, np.nan, 0.06, 0.06])
    with pytest.raises(ValueError, match="family_size"):
        stats.holm(p, family_size=2)
    assert np.isnan(stats.holm(np.array([np.nan, np.nan]), family_size=2)).all()


# ---------------------------------------------------------------- two-stage bootstrap (seeds, learners)


def _crossed(rng, reps, n_seeds, n, seed_sd, learner_sd=0.15, noise_sd=0.1, per_learner=1, shared_learners=None):
    """[reps, n_seeds, n] cells: a seed effect (training randomness), a learner effect shared by all
    seeds (and by other cells when ``shared_learners`` is given) and seed x episode noise; true mean 0."""
    learners = shared_learners if shared_learners is not None else rng.normal(0, learner_sd, (reps, 1, n // per_learner))
    return rng.normal(0, seed_sd, (reps, n_seeds, 1)) + np.repeat(learners, per_learner, axis=2) + rng.normal(0, noise_sd, (reps, n_seeds, n))


def test_two_stage_with_one_seed_is_the_episode_bootstrap():
    values = _episode_like(np.random.default_rng(11), 200)
    (boot,) = stats.two_stage_means([values[None, None, :]], None, n_resamples=4_000, seed=3)
    assert boot.shape == (1, 4_000)
    assert boot.mean() == pytest.approx(values.mean(), abs=0.003)
    assert boot.std() == pytest.approx(values.std() / np.sqrt(values.size), rel=0.05)


def test_seed_stage_variance_is_the_between_seed_variance_of_the_mean():
    seed_means = np.array([0.30, 0.33, 0.36])
    values = np.repeat(seed_means[:, None], 50, axis=1)  # every episode equal within a seed: only seeds vary
    assert stats.seed_variance(values) == pytest.approx(seed_means.var(ddof=1) / 3)  # no residual: s^2 / S
    (boot,) = stats.two_stage_means([values[None]], None, n_resamples=20_000, seed=0)
    # var* = s^2 / S with the ddof=1 sd, not the (S-1)/S of it a plain bootstrap of 3 values gives
    assert boot.var() == pytest.approx(seed_means.var(ddof=1) / 3, rel=0.05)


def test_cluster_bootstrap_draws_whole_learners():
    values = np.array([0.0, 0.0, 1.0, 1.0])  # learner a: two 0s, learner b: two 1s
    codes = stats.cluster_codes(np.array(["a", "a", "b", "b"]), 4)
    np.testing.assert_array_equal(codes, [0, 0, 1, 1])
    assert stats.cluster_codes(np.array(["a", "b", "c"]), 3) is None  # one episode per learner: plain episodes
    (boot,) = stats.two_stage_means([values[None, None, :]], codes, n_resamples=8_000, seed=1)
    # two learners drawn whole: mean 0 (aa), 0.5 (ab, ba), 1 (bb) with chances 1/4, 1/2, 1/4; never 0.25 or 0.75
    outcomes, counts = np.unique(boot[0], return_counts=True)
    np.testing.assert_allclose(outcomes, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(counts / counts.sum(), [0.25, 0.5, 0.25], atol=0.02)
    with pytest.raises(ValueError, match="one learner per episode"):
        stats.cluster_codes(np.array(["a"]), 4)


def test_paired_seeds_cancel_a_shared_seed_effect_and_independent_ones_do_not():
    rng = np.random.default_rng(12)
    shared = rng.normal(0, 0.05, (3, 1))  # seed s of both cells starts from the same weights
    b = shared + _episode_like(rng, 150)[None, :]
    a = b + 0.01 + rng.normal(0, 0.01, (3, 150))
    paired = stats.compare_seeded(a, b, paired_seeds=True, n_resamples=2_000)
    independent = stats.compare_seeded(a, b, paired_seeds=False, n_resamples=2_000)
    assert paired.mean_diff == independent.mean_diff == pytest.approx((a - b).mean())
    assert paired.ci_high - paired.ci_low < (independent.ci_high - independent.ci_low) / 3
    np.testing.assert_allclose(paired.per_seed_diffs, (a - b).mean(axis=1))
    assert paired.test == "two-stage bootstrap t" and paired.paired_seeds and paired.n_seeds == 3
    with pytest.raises(ValueError, match="same seeds"):
        stats.compare_seeded(a, b[:2], paired_seeds=True)


def test_one_seed_comparison_is_the_classic_paired_one():
    rng = np.random.default_rng(13)
    a, b = _episode_like(rng, 80), _episode_like(rng, 80)
    seeded = stats.compare_seeded(a, b, paired_seeds=True, n_resamples=2_000, seed=4)
    classic = stats.compare_paired(a, b, n_resamples=2_000, seed=4)
    assert (seeded.ci_low, seeded.ci_high, seeded.p_value) == (classic.ci_low, classic.ci_high, classic.p_value)
    assert seeded.se == pytest.approx((a - b).std(ddof=1) / np.sqrt(80)) and seeded.test == "sign-flip"
    clustered = stats.compare_seeded(a, b, paired_seeds=True, clusters=np.arange(80) // 2, n_resamples=2_000)
    assert clustered.n_learners == 40 and clustered.test == "sign-flip by learner"


def test_satterthwaite_df_and_t_p_value_hand_worked():
    # 3 seeds (2 df) carrying half the variance, the rest from many learners: (1 + 1)^2 / (1^2 / 2) = 8
    assert stats.satterthwaite_df([(1.0, 2.0), (1.0, float("inf"))]) == pytest.approx(8.0)
    assert stats.satterthwaite_df([(0.0, 2.0), (1.0, float("inf"))]) == float("inf")
    assert stats.t_p_value(2.0, 1.0, float("inf")) == pytest.approx(0.0455, abs=1e-4)  # 2 (1 - Phi(2))
    assert stats.t_p_value(-4.302653, 1.0, 2.0) == pytest.approx(0.05, abs=1e-5)  # t_2, 0.975 = 4.3027
    assert stats.t_p_value(0.0, 0.0, 5.0) == 1.0


def test_minimum_detectable_effect_closed_form_and_power():
    # (z_0.975 + z_0.8) * sd / sqrt(n) = (1.959964 + 0.841621) * 1 / 10
    assert stats.minimum_detectable_effect(1.0, 100) == pytest.approx(0.2801585, abs=1e-6)
    assert stats.minimum_detectable_effect(2.0, 400, alpha=0.01, power=0.9) == pytest.approx((2.575829 + 1.281552) * 2 / 20, abs=1e-6)
    with pytest.raises(ValueError):
        stats.minimum_detectable_effect(1.0, 0)
    # a true effect of exactly the MDE is found by the sign-flip test about 80% of the time
    rng = np.random.default_rng(14)
    n, sd = 60, 0.2
    shift = stats.minimum_detectable_effect(sd, n)
    found = [stats.sign_flip_test(rng.normal(shift, sd, n), n_resamples=1_000, seed=i) < 0.05 for i in range(300)]
    assert 0.72 <= np.mean(found) <= 0.88


# Simulations with a known seed-variance component: 1,000 data sets at once (the k rows of one
# two-stage call share their resampling draws, which leaves each row's interval valid).
REPS, SEEDS, EPISODES, RESAMPLES = 1_000, 3, 100, 1_000


def _t_intervals(estimates, boot, sides, n_learners):
    """seed_t_interval for each simulated data set (row); ``sides``: the independently drawn cells."""
    # stats.seed_variance of every row at once: var(per-seed means, ddof=1) / S
    parts = list(zip(*[[(v, x.shape[1]) for v in x.mean(axis=2).var(axis=1, ddof=1) / x.shape[1]] for x in sides]))
    return np.array([stats.seed_t_interval(e, b, p, n_learners) for e, b, p in zip(estimates, boot, parts)])


@pytest.mark.parametrize("per_learner", [1, 2])
def test_two_stage_interval_covers_the_mean_95_percent_with_seed_variance(per_learner):
    rng = np.random.default_rng(15 + per_learner)
    # seed sd 0.02: over a third of the cell mean's variance comes from the 3 seeds (0.02^2/3 vs 0.15^2/100)
    cells = _crossed(rng, REPS, SEEDS, EPISODES * per_learner, seed_sd=0.02, per_learner=per_learner)
    codes = np.repeat(np.arange(EPISODES), per_learner) if per_learner > 1 else None
    (boot,) = stats.two_stage_means([cells], codes, RESAMPLES, seed=0)
    intervals = _t_intervals(cells.mean(axis=(1, 2)), boot, [cells], EPISODES)
    assert 0.93 <= np.mean((intervals[:, 0] <= 0) & (0 <= intervals[:, 1])) <= 0.97
    naive = stats.bootstrap_means(cells.mean(axis=1)[:300], RESAMPLES, seed=0)  # seeds averaged away first
    low, high = np.quantile(naive, [0.025, 0.975], axis=1)
    assert np.mean((low <= 0) & (0 <= high)) < 0.93  # fails the same check


def test_family_wise_false_positive_rate_under_the_null():
    """Four cells with equal means, the family of five questions a grid asks of them (some share a
    cell, one pairs seeds through a shared prerequisite): Holm keeps P(any rejection) <= 0.05."""
    rng = np.random.default_rng(20)
    learners = rng.normal(0, 0.15, (REPS, 1, EPISODES))  # the same learners face every cell: they cancel in A - B
    prerequisite = rng.normal(0, 0.01, (REPS, SEEDS, 1))  # e.g. the GRU4Rec weights of each seed
    cells = [_crossed(rng, REPS, SEEDS, EPISODES, seed_sd=0.01, shared_learners=learners) for _ in range(4)]
    cells[2], cells[3] = cells[2] + prerequisite, cells[3] + prerequisite  # seed s of cells 2 and 3 share it
    family = [(0, 1, False), (0, 2, False), (1, 3, False), (2, 3, True), (0, 3, False)]
    pvalues = np.empty((REPS, len(family)))
    for j, (i, k, paired) in enumerate(family):  # what compare_seeded does, for 1,000 data sets at once
        if paired:
            (boot,) = stats.two_stage_means([cells[i] - cells[k]], None, RESAMPLES, seed=j)
            sides = [cells[i] - cells[k]]
        else:
            boot_a, boot_b = stats.two_stage_means([cells[i], cells[k]], None, RESAMPLES, seed=j)
            boot, sides = boot_a - boot_b, [cells[i], cells[k]]
        diffs = (cells[i] - cells[k]).mean(axis=(1, 2))
        intervals = _t_intervals(diffs, boot, sides, EPISODES)
        pvalues[:, j] = [stats.t_p_value(d, se, df) for d, (_, _, se, df) in zip(diffs, intervals)]
    rejected = np.array([np.any(stats.holm(row) < 0.05) for row in pvalues])
    assert rejected.mean() <= 0.05
    assert 0.03 <= np.mean(pvalues < 0.05) <= 0.07  # each test alone is about level 0.05
    one = stats.compare_seeded(cells[0][0], cells[1][0], paired_seeds=False, n_resamples=RESAMPLES, seed=0)
    assert one.p_value == pytest.approx(pvalues[0, 0])  # the same computation as compare_seeded
