"""Figure 2: test accuracy against the support size K, per cell, zero- and few-shot told apart."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.output.figures.base import Drawn, Skipped, legend_below, panels, run_listing
from bench.output.figures.inputs import PlotInputs
from bench.output.figures.style import MODE_LINESTYLES, cell_colours, metric_scale, paper_style

NAME = "accuracy-vs-k"


def draw(inputs: PlotInputs) -> Drawn | Skipped:
    by_setting: dict[tuple, list] = {}
    for table in inputs.tables:
        by_setting.setdefault((table.dataset, table.dataset_hash, table.Q), []).append(table)
    settings = {key: sorted(tables, key=lambda t: t.K) for key, tables in by_setting.items() if len(tables) > 1}
    if not settings:
        return Skipped("one K only per dataset: accuracy against K needs a grid with several K (e.g. --grid shots)")
    metric = inputs.tables[0].metric
    scale, ylabel, _ = metric_scale(metric)
    colours = cell_colours(run["cell"] for run in inputs.results.runs)
    counts = []
    with paper_style():
        figure, axes = panels(len(settings))
        for ax, ((dataset, _, Q), tables) in zip(axes, sorted(settings.items())):
            frame = pd.concat([table.rows for table in tables], ignore_index=True)
            lines = sorted(frame.groupby(["cell", "mode"]).groups)
            for j, (cell, mode) in enumerate(lines):
                sub = frame[(frame["cell"] == cell) & (frame["mode"] == mode)].sort_values("K")
                shots = sub["K"].to_numpy(dtype=float) * (1 + 0.025 * (j - (len(lines) - 1) / 2))  # dodge on the log axis
                mean = sub[f"{metric}_mean"].to_numpy() * scale
                low = mean - sub[f"{metric}_ci_low"].to_numpy() * scale
                high = sub[f"{metric}_ci_high"].to_numpy() * scale - mean
                colour, marker = colours.get(cell, ("0.3", "o"))
                drawn = ax.errorbar(
                    shots,
                    mean,
                    yerr=np.vstack([low, high]),
                    color=colour,
                    marker=marker,
                    ms=3.5,
                    capsize=2,
                    elinewidth=0.8,
                    ls=MODE_LINESTYLES.get(mode, "-."),
                    label=f"{cell} · {mode}",
                )
                drawn.lines[0].set_gid(f"shots|{dataset}|{Q}|{cell}|{mode}")  # the data line (not the caps) carries the id
            ks = [t.K for t in tables]
            ax.set_xscale("log")
            ax.set_xticks(ks, [str(k) for k in ks])
            ax.minorticks_off()
            ax.set_title(f"{dataset} · Q={Q}")
            ax.set_xlabel("support size K (pairs per learner)")
            ax.set_ylabel(f"test {ylabel}")
            counts.append(f"{dataset}: " + ", ".join(f"K={t.K}: {int(t.rows['n_episodes'].max())}" for t in tables))
        legend_below(figure, axes)
    caption = (
        f"Test {ylabel.split(' (')[0]} against the support size K: mean over test episodes with {tables[0].confidence:.0%} "
        "bootstrap CIs; solid: few-shot (adapted on the K support pairs), dashed: zero-shot. "
        f"Test episodes per K ({'; '.join(counts)}): where these differ, the learners differ across K."
    )
    runs = [run for run in inputs.results.runs if (run["config"]["dataset"], run["config"].get("dataset_hash"), run["config"]["Q"]) in settings]
    return Drawn(figure, caption, run_listing(runs), wide=len(settings) > 1)
