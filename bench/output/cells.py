"""Display cells shared by the renderers: every number is formatted here, once.

A table is a list of :class:`Column` (key, header, alignment, cells); renderers choose columns by
key and lay them out, so the terminal, LaTeX, markdown and HTML show the same digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.leaderboard import LeaderboardTable
from bench.analysis.questions import QuestionsTable
from bench.core.labels import METRIC_LABELS, PERCENT_METRICS, SLICE_NAMES
from bench.core.metrics import METRICS

MISSING = "—"
DAGGER = "†"  # marks a claimed difference (Holm p < alpha, 2+ seeds, signs agree)


@dataclass(frozen=True)
class Cell:
    text: str
    detail: str = ""  # e.g. a CI, shown after (or under) the text in a lighter style
    emphasis: str | None = None  # "best" / "second" in a metric column
    significant: bool = False  # coloured in the terminal
    dagger: bool = False  # Holm-significant difference
    sign: int = 0
    numeric: bool = True


@dataclass(frozen=True)
class Column:
    key: str  # stable name used by --columns and by the priorities below
    header: str
    align: str  # "l" or "r"
    cells: tuple[Cell, ...]


def missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def format_value(metric: str, value: float) -> str:
    """33.55 for acc/recall (percent), 0.2345 for MRR/NDCG; an em dash for a missing value."""
    if missing(value):
        return MISSING
    return f"{100 * value:.2f}" if metric in PERCENT_METRICS else f"{value:.4f}"


def format_diff(metric: str, value: float) -> str:
    if missing(value):
        return MISSING
    text = f"{100 * value:+.2f}" if metric in PERCENT_METRICS else f"{value:+.4f}"
    return text[1:] if float(text) == 0 else text  # no sign on a difference that rounds to zero


def format_p(value: float) -> str:
    if missing(value):
        return MISSING
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def interval(fmt, metric: str, low: float, high: float) -> str:
    return "" if missing(low) or missing(high) else f"[{fmt(metric, low)}, {fmt(metric, high)}]"


def unit(metric: str) -> str:
    return f"{METRIC_LABELS[metric]}{' %' if metric in PERCENT_METRICS else ''}"


def metric_order(metric: str) -> list[str]:
    return [metric, *(m for m in METRICS if m != metric)]


def emphasis(texts: list[str]) -> list[str | None]:
    """Best (max) and second-best displayed value of a column; equal displayed values share a mark."""
    values = [float(t) if t not in (MISSING, "") else -math.inf for t in texts]
    distinct = sorted({v for v in values if v != -math.inf}, reverse=True)
    marks = {distinct[0]: "best"} if distinct else {}
    if len(distinct) > 1:
        marks[distinct[1]] = "second"
    return [marks.get(v) for v in values]


def _wtl(wins, ties, losses) -> str:
    return MISSING if missing(wins) else f"{wins}/{ties}/{losses}"


def leaderboard_columns(table: LeaderboardTable) -> list[Column]:
    """Every column of the leaderboard, in display order (see ``LEADERBOARD_KEYS``)."""
    frame = table.rows
    ci = f"({table.confidence:.0%} CI)"
    columns = [
        Column("rank", "#", "r", tuple(Cell(str(r)) for r in frame["rank"])),
        Column("cell", "Cell", "l", tuple(Cell(str(c), numeric=False) for c in frame["cell"])),
        Column("mode", "Mode", "l", tuple(Cell(str(m), numeric=False) for m in frame["mode"])),
    ]
    for j, m in enumerate(metric_order(table.metric)):
        texts = [format_value(m, v) for v in frame[f"{m}_mean"]]
        marks = emphasis(texts) if len(frame) > 1 else [None] * len(frame)
        # the primary metric carries its CI; the others' CIs are in the CSV export
        details = [interval(format_value, m, lo, hi) if j == 0 else "" for lo, hi in zip(frame[f"{m}_ci_low"], frame[f"{m}_ci_high"])]
        header = f"{unit(m)} {ci}" if j == 0 else unit(m)
        columns.append(Column(m, header, "r", tuple(Cell(t, d, e) for t, d, e in zip(texts, details, marks))))
        if j == 0:
            columns += slice_columns(table)
    if table.has_reference:
        m = table.metric
        diff, wtl = [], []
        for _, row in frame.iterrows():
            if row["is_reference"]:
                diff.append(Cell("reference", numeric=False))
                wtl.append(Cell(MISSING))
                continue
            sign = 0 if missing(row["diff_mean"]) else int(np.sign(row["diff_mean"]))
            # descriptive (no test is made against one reference row): never marked significant
            diff.append(Cell(format_diff(m, row["diff_mean"]), interval(format_diff, m, row["diff_ci_low"], row["diff_ci_high"]), sign=sign))
            wtl.append(Cell(_wtl(row["wins"], row["ties"], row["losses"])))
        columns.append(Column("delta", f"Δ {unit(m)} vs ref {ci}", "r", tuple(diff)))
        columns.append(Column("wtl", "W/T/L", "r", tuple(wtl)))
    columns += [
        Column("episodes", "Episodes", "r", tuple(Cell(str(n)) for n in frame["n_episodes"])),
        Column("seeds", "Seeds", "r", tuple(Cell(str(n)) for n in frame["n_seeds"])),
        Column("seed-sd", "Seed sd", "r", tuple(Cell(format_value(table.metric, s)) for s in frame[f"{table.metric}_seed_std"])),
        Column("train-s", "Train s", "r", tuple(Cell(MISSING if missing(t) else f"{t:.1f}") for t in frame["train_seconds"])),
    ]
    if "budget_pairs" in frame.columns and frame["budget_pairs"].notna().any():
        columns.append(Column("budget", "Pairs seen", "r", tuple(Cell(format_count(b)) for b in frame["budget_pairs"])))
    if "remarks" in frame.columns and (frame["remarks"] != "").any():
        columns.append(Column("remarks", "Remarks", "l", tuple(Cell(short_remark(row), numeric=False) for _, row in frame.iterrows())))
    return columns


SLICE_KEYS = ("repeat", "explore")  # bench.analysis.leaderboard.SIDE_SLICES, as column keys


def has_slices(table: LeaderboardTable) -> bool:
    """Whether any row has a value on a slice (runs stored before per-query results have none)."""
    return any(f"{key}_mean" in table.rows.columns and table.rows[f"{key}_mean"].notna().any() for key in SLICE_KEYS)


def slice_columns(table: LeaderboardTable) -> list[Column]:
    """The primary metric on repeat queries and on explore queries, one column each ("—" where a row's
    runs have no per-query results, or no query is in the slice)."""
    columns = []
    for key in SLICE_KEYS:
        values = table.rows[f"{key}_mean"] if f"{key}_mean" in table.rows.columns else [float("nan")] * len(table.rows)
        texts = [format_value(table.metric, v) for v in values]
        marks = emphasis(texts) if len(texts) > 1 else [None] * len(texts)
        columns.append(Column(key, f"{SLICE_NAMES[key]} {unit(table.metric)}", "r", tuple(Cell(t, emphasis=e) for t, e in zip(texts, marks))))
    return columns


def format_count(value: float) -> str:
    """A count of pairs, short: 238k, 1.2M."""
    if missing(value):
        return MISSING
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def short_remark(row) -> str:
    """The remarks column's few words (the table's notes say them in full): the val-chosen support
    weight of a few-shot memory baseline (w=0: the zero-shot model) and "still improving"."""
    parts = []
    weight = row.get("support_weight")
    if not missing(weight):
        parts.append("w=0: zero-shot model" if weight == 0 else f"w={weight:g}")
    n = row.get("n_still_improving") or 0
    if n:
        seeds = int(row.get("n_seeds") or 1)
        parts.append("still improving" + (f" ({n}/{seeds} seeds)" if n < seeds else ""))
    return "; ".join(parts) if parts else ""


LEADERBOARD_KEYS = ("rank", "cell", "mode", *METRICS, *SLICE_KEYS, "delta", "wtl", "episodes", "seeds", "seed-sd", "train-s", "budget", "remarks")


def leaderboard_priority(table: LeaderboardTable) -> list[str]:
    """Columns in the order a narrow display keeps them (issue 14): the answer first, the bookkeeping last."""
    others = [m for m in metric_order(table.metric)[1:]]
    bookkeeping = ["episodes", "seeds", "seed-sd", "train-s", "budget"]
    return ["cell", "mode", table.metric, *SLICE_KEYS, "delta", "wtl", "remarks", "rank", *others, *bookkeeping]


def seed_signs(diffs: tuple[float, ...]) -> str:
    """One sign per seed's mean difference: + above zero, − below, 0 at zero."""
    return "".join("+" if d > 0 else "−" if d < 0 else "0" for d in diffs if not missing(d)) or MISSING


QUESTION_PRIORITY = ("question", "delta", "p", "verdict", "wtl", "mde", "seeds")


def question_columns(table: QuestionsTable, alpha: float = 0.05) -> list[Column]:
    """The Questions table: one row per declared question, A − B on the same test episodes."""
    m = table.metric
    question, diff, p, wtl, mde, seeds, verdict = ([] for _ in range(7))
    for r in table.rows:
        ok = r.status == "ok"
        significant = ok and not missing(r.p_holm) and r.p_holm < alpha
        question.append(Cell(r.question.question, r.sides, numeric=False))
        diff.append(
            Cell(
                format_diff(m, r.diff) if ok else MISSING,
                interval(format_diff, m, r.ci_low, r.ci_high) if ok else "",
                significant=significant,
                dagger=significant,
                sign=0 if not ok or missing(r.diff) else int(np.sign(r.diff)),
            )
        )
        p.append(Cell(format_p(r.p_holm) if ok else MISSING, significant=significant))
        wtl.append(Cell(_wtl(r.wins, r.ties, r.losses) if ok else MISSING))
        mde.append(Cell(format_value(m, r.mde) if ok else MISSING))
        seeds.append(Cell(seed_signs(r.per_seed_diffs) if ok else MISSING, numeric=False))
        verdict.append(Cell(r.verdict if ok else (r.verdict or "not answered"), r.detail if not ok else "", numeric=False))
    return [
        Column("question", "Question (A − B)", "l", tuple(question)),
        Column("delta", f"Δ {unit(m)} (CI)", "r", tuple(diff)),
        Column("p", "Holm p", "r", tuple(p)),
        Column("wtl", "W/T/L", "r", tuple(wtl)),
        Column("mde", f"MDE {unit(m)}", "r", tuple(mde)),
        Column("seeds", "Seed signs", "l", tuple(seeds)),
        Column("verdict", "Verdict", "l", tuple(verdict)),
    ]


def questions_title(table: QuestionsTable) -> str:
    """The title; the slices the questions were answered on, when any is not "all"."""
    slices = [s for s in dict.fromkeys(r.slice for r in table.rows) if s != "all"]
    on = f" · on {', '.join(slices)} queries" if len(slices) == 1 and all(r.slice != "all" for r in table.rows) else ""
    return f"Questions of grid {table.grid} · {table.dataset} · K={table.K} · Q={table.Q}{on}"


__all__ = ["Cell", "Column", "DAGGER", "MISSING", "format_value", "format_diff", "format_p", "leaderboard_columns", "question_columns"]
