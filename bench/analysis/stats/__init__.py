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
- A slice of the test queries (repeat: the label is in the query's prefix; explore: it is not) is read
  as the whole set is: each episode's value is the mean over its queries in the slice, and an episode
  with no query in the slice is left out (it is not a zero). The learner bootstrap then resamples the
  learners that have at least one episode left: a learner with no query in the slice is not a cluster
  of that slice, so it changes nothing in the slice's intervals. Slice membership belongs to the query
  (its label and prefix), the same for every arm, so a paired comparison on a slice pairs the same
  episodes on both sides.

The modules: ``bootstrap`` (episode bootstrap, percentile and BCa intervals), ``two_stage`` (the
hierarchical bootstrap over seeds and learners), ``intervals`` (t intervals, p-values, the minimum
detectable effect), ``summaries`` (one cell), ``paired`` (paired tests, Holm), ``seeded`` (one declared
question with seed variance). The public names are re-exported here.

No I/O, no printing, no torch.
"""

from bench.analysis.stats.bootstrap import (
    CONFIDENCE as CONFIDENCE,
)
from bench.analysis.stats.bootstrap import (
    N_RESAMPLES as N_RESAMPLES,
)
from bench.analysis.stats.bootstrap import (
    CIMethod as CIMethod,
)
from bench.analysis.stats.bootstrap import (
    as_1d as as_1d,
)
from bench.analysis.stats.bootstrap import (
    bootstrap_ci as bootstrap_ci,
)
from bench.analysis.stats.bootstrap import (
    bootstrap_interval as bootstrap_interval,
)
from bench.analysis.stats.bootstrap import (
    bootstrap_means as bootstrap_means,
)
from bench.analysis.stats.bootstrap import (
    check_ci_args as check_ci_args,
)
from bench.analysis.stats.bootstrap import (
    chunk_rows as chunk_rows,
)
from bench.analysis.stats.bootstrap import (
    seed_mean_episodes as seed_mean_episodes,
)
from bench.analysis.stats.intervals import (
    minimum_detectable_effect as minimum_detectable_effect,
)
from bench.analysis.stats.intervals import (
    satterthwaite_df as satterthwaite_df,
)
from bench.analysis.stats.intervals import (
    seed_t_interval as seed_t_interval,
)
from bench.analysis.stats.intervals import (
    t_p_value as t_p_value,
)
from bench.analysis.stats.paired import (
    PairedComparison as PairedComparison,
)
from bench.analysis.stats.paired import (
    compare_paired as compare_paired,
)
from bench.analysis.stats.paired import (
    holm as holm,
)
from bench.analysis.stats.paired import (
    paired_differences as paired_differences,
)
from bench.analysis.stats.paired import (
    sign_flip_test as sign_flip_test,
)
from bench.analysis.stats.paired import (
    win_tie_loss as win_tie_loss,
)
from bench.analysis.stats.seeded import (
    SeededComparison as SeededComparison,
)
from bench.analysis.stats.seeded import (
    compare_seeded as compare_seeded,
)
from bench.analysis.stats.summaries import (
    CellSummary as CellSummary,
)
from bench.analysis.stats.summaries import (
    summarize_cell as summarize_cell,
)
from bench.analysis.stats.summaries import (
    summarize_cells as summarize_cells,
)
from bench.analysis.stats.two_stage import (
    cluster_codes as cluster_codes,
)
from bench.analysis.stats.two_stage import (
    seed_variance as seed_variance,
)
from bench.analysis.stats.two_stage import (
    two_stage_means as two_stage_means,
)
