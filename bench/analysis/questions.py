"""Declared questions: the paired comparisons a grid asks (its ``[[compare]]`` blocks).

A grid fixes its family of questions; Holm adjusts over exactly that family, never over whatever
happens to be in the store. :func:`answer_questions` turns the store's per-episode metrics into
one :class:`QuestionsTable` per (dataset, data version, K, Q); every renderer (terminal, LaTeX,
markdown, CSV, HTML, plots) formats those same objects.

Slices: each question is answered on its own slice of the test queries (``Question.slice``; a question
declared on "all" is answered on the slice the results are read on, ``Results.slice``), from
``Results.sliced``'s per-episode means; Holm adjusts over the whole declared family, slices included.

Units: ``diff``, its CI and ``mde`` are in the metric's own units (fractions for Acc@1 and
Recall, as in ``bench.core.metrics``); renderers scale them for display.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.analysis import stats
from bench.analysis.episodes import STILL_IMPROVING, episodes_with_identity, label_variants, per_episode, seeds_paired, still_improving
from bench.core.errors import BenchError
from bench.core.labels import PERCENT_METRICS, check_metric
from bench.plan.questions import Question


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
    slice: str = "all"  # the queries it was answered on (bench.core.metrics.SLICES)

    @property
    def sides(self) -> str:
        """ "A − B", with the slice it was answered on in brackets when not "all"."""
        return f"{self.question.a} − {self.question.b}" + (f" [{self.slice}]" if self.slice != "all" else "")


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


POWER = 0.8  # the minimum detectable effect is the |diff| found with this probability
ONE_SEED_NOTE = "one trained model per cell; intervals cover episode sampling only"
ALPHA = 0.05  # the level of every declared family (Holm)


# ---------------------------------------------------------------------------------------------
# Answering them


def _scaled(metric: str, value: float) -> str:
    """A difference in display units: points for Acc@1 / Recall (x100), raw for MRR / NDCG."""
    return f"{100 * value:.2f} points" if metric in PERCENT_METRICS else f"{value:.4f}"


def verdict(
    question: Question,
    metric: str,
    diff: float,
    ci: tuple[float, float],
    p_holm: float,
    mde: float,
    n_seeds: int,
    signs_agree: bool,
    alpha: float,
    identical: bool = False,
) -> str:
    """Plain words that never overstate: a difference only with Holm p < alpha, 2+ seeds and
    every seed's difference of the same sign; otherwise what the test could have seen.
    ``identical``: A and B score alike on every episode (no spread, so no MDE to quote)."""
    if identical:
        return "no difference: A and B score alike on every test episode"
    lo, hi = (_scaled(metric, v).split(" ")[0] for v in ci)
    if not p_holm < alpha:
        return f"no difference detected; this test could detect about {_scaled(metric, mde)}"
    ahead, by = (question.a, diff) if diff > 0 else (question.b, -diff)
    lo, hi = (lo, hi) if diff > 0 else (_scaled(metric, -ci[1]).split(" ")[0], _scaled(metric, -ci[0]).split(" ")[0])
    gap = f"{ahead} ahead by {_scaled(metric, by)} [{lo}, {hi}]"
    if n_seeds < 2:
        return f"{gap} for these trained models; one seed cannot speak for the methods"
    if not signs_agree:
        return f"no consistent difference: {gap} overall, but the seeds disagree in sign"
    return gap


def _missing_row(question: Question, metric: str, detail: str) -> QuestionResult:
    nan = float("nan")
    return QuestionResult(
        question=question,
        metric=metric,
        status="missing",
        detail=detail,
        n_episodes=0,
        n_learners=0,
        n_seeds=0,
        paired_seeds=False,
        diff=nan,
        ci_low=nan,
        ci_high=nan,
        p_value=nan,
        p_holm=nan,
        wins=0,
        ties=0,
        losses=0,
        mde=nan,
        per_seed_diffs=(),
        signs_agree=False,
        verdict=f"not answered: {detail}",
    )


def _cell_results(group, runs_by_hash: dict, metric: str) -> tuple[dict, list[str], dict]:
    """(label:mode) -> (wide [episode x seed] values of ``metric``, {seed: run config}) for one table,
    its notes, and (label:mode) -> how many of its runs were still improving at the end of their budget."""
    key = ["episode", "user_id"] if "user_id" in group.columns else ["episode"]
    group = group.copy()
    group["label"], notes = label_variants(group)
    cells, improving = {}, {}
    for (label, mode), sub in group.groupby(["label", "mode"], sort=True):
        complete, _ = per_episode(sub, key, f"{label}:{mode}")
        configs = {int(s): runs_by_hash.get(h, {}).get("config", {}) for s, h in sub.groupby("seed")["run"].first().items()}
        cells[f"{label}:{mode}"] = (complete[metric], configs)
        improving[f"{label}:{mode}"] = still_improving([runs_by_hash.get(h, {}) for h in sub["run"].unique()])
    return cells, notes, improving


def _improving_clause(question: Question, improving: dict) -> str:
    """ "; A (and B) still improving at the end of its budget" where a side's best checkpoint was its last."""
    sides = [side for side in (question.a, question.b) if improving.get(side)]
    if not sides:
        return ""
    state = STILL_IMPROVING if len(sides) == 1 else STILL_IMPROVING.replace("its budget", "their budgets")
    return f"; {' and '.join(sides)} {'was' if len(sides) == 1 else 'were'} {state}: more training could change this answer"


def _split(side: str) -> tuple[str, str]:
    """ "CELL #tag:MODE" -> ("CELL", "MODE")."""
    cell, _, mode = side.rpartition(":")
    return cell.split(" #")[0], mode


def _answer(question: Question, cells: dict, metric: str, confidence: float, n_resamples: int, seed: int):
    """(QuestionResult without Holm and verdict, stats.SeededComparison) or (missing row, None)."""
    absent = [side for side in (question.a, question.b) if side not in cells]
    if absent:
        mixed = [side for side in absent if any(_split(label) == _split(side) and " #" in label for label in cells)]
        if mixed:  # one cell name, several settings (e.g. two grids in one store): which one is meant is unclear
            return _missing_row(question, metric, f"{' and '.join(mixed)} has runs with several settings; report with --grid NAME"), None
        return _missing_row(question, metric, f"no complete runs of {' and '.join(absent)}"), None
    (wide_a, runs_a), (wide_b, runs_b) = cells[question.a], cells[question.b]
    common = wide_a.index.intersection(wide_b.index)
    if len(common) == 0:
        return _missing_row(question, metric, "the two sides share no test episode"), None
    paired = seeds_paired(runs_a, runs_b)
    a = wide_a.loc[common, sorted(wide_a.columns)].to_numpy().T
    b = wide_b.loc[common, sorted(wide_b.columns)].to_numpy().T
    clusters = common.get_level_values("user_id").to_numpy() if "user_id" in common.names else None
    result = stats.compare_seeded(a, b, paired, clusters, confidence, n_resamples, seed)
    details = []
    if len(common) < max(len(wide_a), len(wide_b)):
        details.append(f"compared on the {len(common)} episodes both sides cover")
    if a.shape[0] != b.shape[0]:
        details.append(f"{a.shape[0]} vs {b.shape[0]} seeds")
    return result, "; ".join(details)


def _notes(tests: set[str], seed_counts: set[int], m: int, confidence: float, n_resamples: int, alpha: float) -> list[str]:
    notes = []
    if not seed_counts or max(seed_counts) == 1:
        notes.append(ONE_SEED_NOTE[0].upper() + ONE_SEED_NOTE[1:] + ".")
    else:
        notes.append(
            f"{'/'.join(map(str, sorted(seed_counts)))} seeds per cell; intervals and tests cover seed and learner sampling "
            "(two-stage bootstrap: seeds, then learners; Student t reference with Welch-Satterthwaite df for the few seeds); "
            "seeds paired where both cells start from the same GRU4Rec weights (or are two modes of one run), independent otherwise."
        )
    notes.append(
        f"Δ: A minus B on the same test episodes (mean over seeds and episodes) with {confidence:.0%} bootstrap CI "
        f"({n_resamples:,} resamples, by learner where a learner has several episodes); W/T/L: episodes (seed-averaged) where A beats / "
        f"ties / loses to B."
    )
    if tests:
        notes.append(
            f"p: two-sided {' / '.join(sorted(tests))} test; Holm-adjusted over the grid's {m} declared question(s) "
            "(a missing question keeps its place in the family)."
        )
    notes.append(
        f"MDE: the |Δ| this test would detect with {POWER:.0%} power at two-sided α/m = {alpha / max(m, 1):.3g} "
        "(Holm's first step; normal or t approximation with the test's standard error)."
    )
    notes.append(f"A difference is claimed only with Holm p < {alpha:g}, 2+ seeds, and every seed's Δ of the same sign.")
    return notes


def answer_questions(
    results: Any,
    questions: Sequence[Question],
    metric: str = "acc@1",
    *,
    dataset: str | None = None,
    grid: str = "",
    n_resamples: int = stats.N_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
    alpha: float = 0.05,
) -> list[QuestionsTable]:
    """One QuestionsTable per (dataset, data version, K, Q) of ``results`` (``bench.store.results.Results``
    or its episodes DataFrame), one row per declared question, in the declared order.

    Holm adjusts over the declared family (its size m is fixed: a missing question counts as
    untested, never shrinking m). The MDE is at two-sided alpha/m, the level Holm's first step asks
    of the smallest p, so "could detect about X" never claims more sensitivity than the family has.
    """
    check_metric(metric)
    questions = tuple(questions)
    base_slice = getattr(results, "slice", "all")
    asked = [q.slice if q.slice != "all" else base_slice for q in questions]  # each question's own slice
    episodes, runs_by_hash = episodes_with_identity(results)
    if episodes.empty and getattr(results, "slice", "all") != "all":
        raise BenchError(f"no test query of these runs is in the {results.slice} slice", "report another --slice")
    if episodes.empty:
        raise BenchError("no complete runs in the results", "run `python -m bench run --grid NAME` first, or check --results")
    by_slice = {base_slice: (episodes, None)}
    for name in dict.fromkeys(asked):
        if name in by_slice:
            continue
        if not hasattr(results, "sliced"):  # a bare episode table carries no per-query ranks
            by_slice[name] = (None, "no per-query results (pass a Results read from a store)")
            continue
        try:
            by_slice[name] = (episodes_with_identity(results.sliced(name))[0], None)
        except BenchError as err:
            by_slice[name] = (None, str(err))
    if dataset is not None:
        episodes = episodes[episodes["dataset"] == dataset]
    m = len(questions)
    tables = []
    for (name, dataset_hash, K, Q), group in episodes.groupby(["dataset", "dataset_hash", "K", "Q"], sort=True):
        cells, notes, improving = _cell_results(group, runs_by_hash, metric)
        cells_of = {base_slice: cells}
        for slice_name, (frame, _) in by_slice.items():
            if slice_name != base_slice and frame is not None:
                sub = frame[(frame["dataset"] == name) & (frame["dataset_hash"] == dataset_hash) & (frame["K"] == K) & (frame["Q"] == Q)]
                cells_of[slice_name] = _cell_results(sub, runs_by_hash, metric)[0] if len(sub) else {}
        answers = [
            _answer(q, cells_of[s], metric, confidence, n_resamples, seed)
            if s in cells_of
            else (_missing_row(q, metric, f"slice {s}: {by_slice[s][1]}"), None)
            for q, s in zip(questions, asked)
        ]
        p_values = [np.nan if isinstance(r, QuestionResult) else r.p_value for r, _ in answers]
        p_holm = stats.holm(np.array(p_values, dtype=float), family_size=m) if m else []
        rows, tests, seed_counts = [], set(), set()
        for question, slice_name, (result, extra), adjusted in zip(questions, asked, answers, p_holm):
            if isinstance(result, QuestionResult):
                rows.append(dataclasses.replace(result, slice=slice_name))
                continue
            tests.add(result.test)
            seed_counts.add(result.n_seeds)
            signs = [np.sign(x) for x in result.per_seed_diffs]
            signs_agree = result.mean_diff != 0 and all(s == np.sign(result.mean_diff) for s in signs)
            identical = result.wins == result.losses == 0 and not any(result.per_seed_diffs)
            mde = (
                float("nan")
                if identical  # no spread: a detectable effect is undefined, not 0
                else stats.minimum_detectable_effect(result.se * np.sqrt(result.n_episodes), result.n_episodes, alpha / m, POWER, result.df)
            )
            pairing = "seeds paired (shared prerequisite)" if result.paired_seeds else ("seeds independent" if result.n_seeds > 1 else "")
            rows.append(
                QuestionResult(
                    question=question,
                    metric=metric,
                    status="ok",
                    detail="; ".join(x for x in (pairing, extra) if x),
                    n_episodes=result.n_episodes,
                    n_learners=result.n_learners,
                    n_seeds=result.n_seeds,
                    paired_seeds=result.paired_seeds,
                    diff=result.mean_diff,
                    ci_low=result.ci_low,
                    ci_high=result.ci_high,
                    p_value=result.p_value,
                    p_holm=float(adjusted),
                    wins=result.wins,
                    ties=result.ties,
                    losses=result.losses,
                    mde=mde,
                    per_seed_diffs=result.per_seed_diffs,
                    signs_agree=bool(signs_agree),
                    verdict=verdict(
                        question,
                        metric,
                        result.mean_diff,
                        (result.ci_low, result.ci_high),
                        float(adjusted),
                        mde,
                        result.n_seeds,
                        bool(signs_agree),
                        alpha,
                        identical,
                    )
                    + _improving_clause(question, improving),
                    slice=slice_name,
                )
            )
        tables.append(
            QuestionsTable(
                dataset=str(name),
                dataset_hash=str(dataset_hash),
                K=int(K),
                Q=int(Q),
                metric=metric,
                grid=grid,
                rows=tuple(rows),
                notes=tuple(_notes(tests, seed_counts, m, confidence, n_resamples, alpha) + notes),
            )
        )
    return tables


def by_dataset(tables: Sequence[QuestionsTable]) -> QuestionsTable | None:
    """The answers of several datasets side by side (the `scenarios` grid: one table per dataset):
    one row per (question, dataset), the question's words followed by the dataset's name, so a
    reader sees which answers depend on the data. None unless 2+ datasets answered at one K, Q.
    Each row keeps its own dataset's Holm adjustment (its family is that dataset's questions)."""
    tables = list(tables)
    if len({t.dataset for t in tables}) < 2 or len({(t.K, t.Q, t.metric, t.grid) for t in tables}) != 1:
        return None
    order = {q: i for i, q in enumerate(dict.fromkeys(r.question for t in tables for r in t.rows))}
    rows = sorted(
        (
            (order[r.question], j, dataclasses.replace(r, question=dataclasses.replace(r.question, question=f"{r.question.question} [{t.dataset}]")))
            for j, t in enumerate(tables)
            for r in t.rows
        ),
        key=lambda item: item[:2],
    )
    first = tables[0]
    notes = (
        f"Each declared question of grid {first.grid} answered on each dataset ({', '.join(t.dataset for t in tables)}): "
        "the datasets differ only where their names say; Δ, CI, Holm p and verdict are each dataset's own (as in its Questions table).",
    )
    return QuestionsTable(
        dataset="by dataset",
        dataset_hash="",
        K=first.K,
        Q=first.Q,
        metric=first.metric,
        grid=first.grid,
        rows=tuple(r for _, _, r in rows),
        notes=notes,
    )


def with_answers_by_dataset(tables: Sequence[QuestionsTable]) -> list[QuestionsTable]:
    """``tables``, followed by their answers side by side when several datasets answered (``by_dataset``)."""
    combined = by_dataset(tables)
    return list(tables) + ([combined] if combined is not None else [])
