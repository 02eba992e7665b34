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

The modules: ``bootstrap`` (episode bootstrap, percentile and BCa intervals), ``two_stage`` (the
hierarchical bootstrap over seeds and learners), ``intervals`` (t intervals, p-values, the minimum
detectable effect), ``summaries`` (one cell), ``paired`` (paired tests, Holm), ``seeded`` (one declared
question with seed variance). The public names are re-exported here.

No I/O, no printing, no torch.
"""

from bench.analysis.stats.bootstrap import (
    N_RESAMPLES as N_RESAMPLES,
    CONFIDENCE as CONFIDENCE,
    CIMethod as CIMethod,
    as_1d as as_1d,
    chunk_rows as chunk_rows,
    bootstrap_means as bootstrap_means,
    bootstrap_interval as bootstrap_interval,
    check_ci_args as check_ci_args,
    bootstrap_ci as bootstrap_ci,
    seed_mean_episodes as seed_mean_episodes,
)
from bench.analysis.stats.two_stage import (
    cluster_codes as cluster_codes,
    seed_variance as seed_variance,
    two_stage_means as two_stage_means,
)
from bench.analysis.stats.intervals import (
    satterthwaite_df as satterthwaite_df,
    seed_t_interval as seed_t_interval,
    t_p_value as t_p_value,
    minimum_detectable_effect as minimum_detectable_effect,
)
from bench.analysis.stats.summaries import (
    CellSummary as CellSummary,
    summarize_cells as summarize_cells,
    summarize_cell as summarize_cell,
)
from bench.analysis.stats.paired import (
    PairedComparison as PairedComparison,
    paired_differences as paired_differences,
    sign_flip_test as sign_flip_test,
    win_tie_loss as win_tie_loss,
    compare_paired as compare_paired,
    holm as holm,
)
from bench.analysis.stats.seeded import (
    SeededComparison as SeededComparison,
    compare_seeded as compare_seeded,
)
