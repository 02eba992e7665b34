"""Recommenders without meta-learning: GRURecommender + GRU4Rec, SASRec, popularity, rules, kNN."""

import contextlib
import io

# learn2learn imports gym (unused here), whose import prints an "unmaintained" notice to stderr in
# every process that imports it (the grid's worker processes too); import it once, quietly, before
# any module of this package does. Errors still raise.
with contextlib.redirect_stderr(io.StringIO()):
    import learn2learn  # noqa: F401
