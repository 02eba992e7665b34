"""Figure 3: the grid's declared comparisons as a forest plot: Δ with its CI per question, the zero
line, the minimum detectable effect as a grey band around zero, Holm p beside each row."""

from __future__ import annotations

import math

from bench.analysis.questions import ALPHA
from bench.output.cells import format_p
from bench.output.figures.base import Drawn, Skipped, panels, wrap
from bench.output.figures.inputs import PlotInputs
from bench.output.figures.style import METRIC_LABELS, PALETTE, metric_scale, paper_style

NAME = "questions-forest"
LINE_HEIGHT = 0.14  # inches per line of a question's label (8 pt text plus leading)


def _finite(*values: float) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _label(row) -> str:
    """The question in words, then A − B (on two lines when long, so the plot keeps its width) and the
    slice it was answered on when not "all"."""
    question = row.question
    on = f" [{row.slice}]" if row.slice != "all" else ""
    sides = f"{question.a} − {question.b}{on}" if len(question.a) + len(question.b) + len(on) <= 44 else f"{question.a}\n− {question.b}{on}"
    return f"{wrap(question.question, 46)}\n{sides}"


def draw(inputs: PlotInputs) -> Drawn | Skipped:
    tables = [table for table in inputs.questions if table.rows]
    if not tables:
        return Skipped(f"no answered questions: {inputs.questions_notice or 'the grid declares none'}")
    n_rows = max(len(table.rows) for table in tables)
    n_lines = max(_label(row).count("\n") + 1 for table in tables for row in table.rows)
    row_height = max(0.42, LINE_HEIGHT * n_lines + 0.1)  # labels of neighbouring rows never overlap
    with paper_style():
        figure, axes = panels(len(tables), max_cols=1, height=0.55 + row_height * n_rows, wide=True)
        for ax, table in zip(axes, tables):
            scale, _, unit = metric_scale(table.metric)
            ys = list(range(len(table.rows)))[::-1]  # the first question on top
            for y, row in zip(ys, table.rows):
                if row.status != "ok" or not _finite(row.diff, row.ci_low, row.ci_high):
                    ax.text(0, y, f"missing: {row.detail or row.status}", ha="center", va="center", fontsize=7, color="0.4", backgroundcolor="white")
                    continue
                if _finite(row.mde):
                    ax.barh(y, 2 * row.mde * scale, left=-row.mde * scale, height=0.5, color="0.88", zorder=1)
                significant = _finite(row.p_holm) and row.p_holm < ALPHA
                drawn = ax.errorbar(
                    [row.diff * scale],
                    [y],
                    xerr=[[(row.diff - row.ci_low) * scale], [(row.ci_high - row.diff) * scale]],
                    fmt="o",
                    color=PALETTE[0],
                    mfc=PALETTE[0] if significant else "white",
                    ms=5,
                    capsize=3,
                    zorder=3,
                )
                drawn.lines[0].set_gid(f"forest|{table.dataset}|{table.K}|{row.question.a}|{row.question.b}")
                mde = f"{row.mde * scale:.2f}" if _finite(row.mde) else "—"
                ax.annotate(
                    f"Holm p {format_p(row.p_holm)}\nMDE ±{mde}",
                    xy=(1.01, y),
                    xycoords=("axes fraction", "data"),
                    va="center",
                    fontsize=6.5,
                )
            ax.axvline(0, color="0.2", lw=0.8, zorder=2)
            ax.set_yticks(ys, [_label(row) for row in table.rows])
            ax.set_ylim(-0.7, len(table.rows) - 0.3)
            ax.grid(axis="y", visible=False)
            ax.set_title(f"{table.dataset} · K={table.K} · Q={table.Q}")
            ax.set_xlabel(f"Δ {METRIC_LABELS.get(table.metric, table.metric)}: A − B on the same test episodes ({unit})")
        figure.tight_layout()
    first = tables[0]
    caption = (
        "The grid's declared comparisons: mean paired difference A − B with its CI per question (filled marker: "
        f"Holm-adjusted p < {ALPHA:g}, over the grid's declared family); grey band: ± the minimum detectable effect "
        "(80% power) for the observed paired spread, so a CI inside it cannot tell 'no effect' from 'too few episodes'. " + " ".join(first.notes)
    )
    sources = "; ".join(
        f"{t.dataset} K={t.K} Q={t.Q}: " + ", ".join(f"{r.sides} ({r.n_episodes} episodes, {r.n_seeds} seeds)" for r in t.rows) for t in tables
    )
    return Drawn(figure, caption, f"grid {first.grid}: {sources}.", wide=True)
