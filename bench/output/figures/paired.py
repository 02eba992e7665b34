"""Figure 4: the main question's per-episode paired differences, sorted, coloured by win / tie /
loss, so a reader sees whether a mean difference comes from a few learners or from many."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis.leaderboard import parse_reference
from bench.output.figures.base import Drawn, Skipped, panels, wrap
from bench.output.figures.inputs import PlotInputs
from bench.output.figures.style import LOSS, TIE, WIN, metric_scale, paper_style

NAME = "main-question-episodes"
TIE_ATOL = 1e-12  # as bench.analysis.stats.win_tie_loss


def episode_differences(inputs: PlotInputs, table, question, slice_name: str = "all") -> pd.Series:
    """A − B per test episode (each side averaged over its seeds first), on the episodes both sides cover,
    each episode averaged over its queries in ``slice_name`` (the slice the question was answered on)."""
    results = inputs.results
    if getattr(results, "slice", "all") != slice_name:
        results = results.sliced(slice_name, partial=True)
    episodes = results.episodes
    hashes = {run["hash"] for run in inputs.results.runs if run["config"].get("dataset_hash") == table.dataset_hash}
    here = episodes[(episodes["dataset"] == table.dataset) & (episodes["K"] == table.K) & (episodes["Q"] == table.Q) & episodes["run"].isin(hashes)]
    key = ["episode", "user_id"] if "user_id" in here.columns else ["episode"]
    sides = []
    for side in (question.a, question.b):
        cell, mode = parse_reference(side)
        rows = here[(here["cell"] == cell) & (here["mode"] == mode)]
        sides.append(rows.groupby(key)[table.metric].mean())
    a, b = sides
    common = a.index.intersection(b.index)
    return (a.loc[common] - b.loc[common]).sort_index()


def draw(inputs: PlotInputs) -> Drawn | Skipped:
    mains = [(table, table.rows[0]) for table in inputs.questions if table.rows and table.rows[0].status == "ok"]
    if not mains:
        return Skipped(f"no answered main question: {inputs.questions_notice or 'the first declared question has no results'}")
    diffs = [episode_differences(inputs, table, row.question, row.slice) for table, row in mains]
    if all(d.empty for d in diffs):
        return Skipped("the main question's two sides share no test episode in the selected runs")
    summaries = []
    with paper_style():
        figure, axes = panels(len(mains), max_cols=2)
        for ax, (table, row), diff in zip(axes, mains, diffs):
            scale, _, unit = metric_scale(table.metric)
            values = np.sort(diff.to_numpy()) * scale
            colours = np.where(np.abs(values) <= TIE_ATOL * scale, TIE, np.where(values > 0, WIN, LOSS))
            ax.bar(np.arange(1, len(values) + 1), values, width=1.0, color=colours, linewidth=0, gid=f"paired|{table.dataset}|{table.K}")
            ax.axhline(0, color="0.2", lw=0.6)
            tied = np.flatnonzero(colours == TIE) + 1
            ax.plot(tied, np.zeros(len(tied)), ls="none", marker="|", ms=6, color=TIE, zorder=3)  # a tie has no bar to see
            if len(values):
                ax.axhline(values.mean(), color="0.2", ls="--", lw=0.8, label=f"mean {values.mean():+.2f}")
            wins, ties = int((colours == WIN).sum()), int((colours == TIE).sum())
            losses = len(values) - wins - ties
            on = f" · {row.slice} queries" if row.slice != "all" else ""
            ax.set_title(wrap(f"{row.question.question} · {table.dataset} · K={table.K}{on}", 60))
            ax.text(0.02, 0.97, f"W/T/L {wins}/{ties}/{losses}\n{row.n_learners} learners", transform=ax.transAxes, va="top", fontsize=7)
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_xlabel("test episode, sorted by Δ (count)")
            ax.set_ylabel(f"Δ per episode ({unit})")
            ax.legend(loc="lower right")
            summaries.append(f"{table.dataset} K={table.K}: {row.sides}, W/T/L {wins}/{ties}/{losses}")
        figure.tight_layout()
    caption = (
        "The main question (the grid's first) episode by episode: A − B on each test episode (seeds averaged per episode "
        "first), sorted; green: A wins, grey: tie, orange: A loses; dashed: the mean. A mean carried by a few tall bars "
        "rests on a few learners. " + "; ".join(summaries) + "."
    )
    return Drawn(figure, caption, f"grid {mains[0][0].grid}: the per-episode results of the runs of the cells compared.", wide=len(mains) > 1)
