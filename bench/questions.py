"""Declared questions: the paired comparisons a grid asks (its ``[[compare]]`` blocks).

A grid fixes its family of questions; Holm adjusts over exactly that family, never over whatever
happens to be in the store. :func:`answer_questions` turns the store's per-episode metrics into
one :class:`QuestionsTable` per (dataset, data version, K, Q); every renderer (terminal, LaTeX,
markdown, CSV, HTML, plots) formats those same objects.

Units: ``diff``, its CI and ``mde`` are in the metric's own units (fractions for Acc@1 and
Recall, as in ``bench.metrics``); renderers scale them for display.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    """One declared comparison: A minus B on the same test episodes."""

    question: str  # plain words, e.g. "Does a warm start help MAML?"
    a: str  # "CELL:MODE", e.g. "maml[gru4rec]:few-shot"
    b: str  # "CELL:MODE", e.g. "maml[random]:few-shot"


@dataclass(frozen=True)
class QuestionResult:
    """The answer to one question on one table (dataset, data version, K, Q)."""

    question: Question
    metric: str
    status: str  # "ok", or "missing" (a side has no complete runs; numbers are then NaN)
    detail: str  # why it is missing, or notes on the pairing; "" when nothing to say
    n_episodes: int
    n_learners: int
    n_seeds: int
    paired_seeds: bool  # seeds resampled jointly (the two cells share a prerequisite per seed)
    diff: float  # mean of A - B
    ci_low: float
    ci_high: float
    p_value: float  # unadjusted, two-sided
    p_holm: float  # Holm-adjusted over the grid's declared family
    wins: int  # episodes where A beats / ties / loses to B (seed-averaged per episode)
    ties: int
    losses: int
    mde: float  # minimum detectable |diff| at 80% power, two-sided alpha, for the observed paired sd and n
    per_seed_diffs: tuple[float, ...]  # mean A - B per seed (paired seeds) or per seed index
    signs_agree: bool  # every per-seed diff has the sign of ``diff``
    verdict: str  # plain words that never overstate


@dataclass(frozen=True)
class QuestionsTable:
    dataset: str
    dataset_hash: str
    K: int
    Q: int
    metric: str
    grid: str
    rows: tuple[QuestionResult, ...]
    notes: tuple[str, ...]  # header lines: seeds, CI method and level, test and correction, family size
