"""Figure: every arm on repeat queries and on explore queries, side by side: the primary metric with its
CI on the queries whose label is already in the prefix (left panel, filled) and on the others (right
panel, open), one row per arm in the leaderboard's order, each panel on its own scale (explore scores
are a few points where repeat scores are tens), two panels per (dataset, K, Q)."""

from __future__ import annotations

import math

from bench.analysis.leaderboard import SIDE_SLICES, leaderboard
from bench.core.errors import BenchError
from bench.core.labels import SLICE_NAMES
from bench.output.figures.base import Drawn, Skipped, panels, run_listing
from bench.output.figures.inputs import PlotInputs
from bench.output.figures.style import PALETTE, metric_scale, paper_style

NAME = "repeat-explore"
ROW_HEIGHT = 0.17  # inches per arm
STYLE = {"repeat": (PALETTE[0], "o", True), "explore": (PALETTE[1], "s", False)}  # colour, marker, filled


def _finite(*values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def slice_tables(inputs: PlotInputs) -> dict[str, list]:
    """The leaderboard of each of SIDE_SLICES on the selection (runs without per-query results left out)."""
    results = inputs.results
    if results.queries is None:
        return {}
    out = {}
    for name in SIDE_SLICES:
        try:
            out[name] = leaderboard(results.sliced(name, partial=True), reference=None, metric=inputs.metric)
        except BenchError:  # no episode has a query in this slice
            out[name] = []
    return out


def draw(inputs: PlotInputs) -> Drawn | Skipped:
    by_slice = slice_tables(inputs)
    if not by_slice or not any(by_slice.values()):
        return Skipped("no run of the selection has per-query results (queries.parquet): rerun it with this code")
    keys = list(dict.fromkeys((t.dataset, t.dataset_hash, t.K, t.Q) for tables in by_slice.values() for t in tables))
    tables = {(name, (t.dataset, t.dataset_hash, t.K, t.Q)): t for name, ts in by_slice.items() for t in ts}
    order = {(t.dataset, t.dataset_hash, t.K, t.Q): [f"{c}:{m}" for c, m in zip(t.rows["cell"], t.rows["mode"])] for t in inputs.tables}
    n_rows = max(len(next((t for (s, k), t in tables.items() if k == key and s == "repeat"), tables[next(iter(tables))]).rows) for key in keys)
    scale, axis_label, _ = metric_scale(inputs.metric)
    with paper_style():
        # two panels per (dataset, K, Q), repeat left and explore right, each on its own x scale: explore scores are
        # a few points where repeat scores are tens, and one shared axis would flatten every explore difference
        figure, axes = panels(2 * len(keys), max_cols=2, height=0.7 + ROW_HEIGHT * n_rows, wide=True)
        for index, key in enumerate(keys):
            arms = {name: tables.get((name, key)) for name in SIDE_SLICES}
            labels = list(order.get(key, []))
            for table in arms.values():
                if table is not None:
                    labels += [f"{c}:{m}" for c, m in zip(table.rows["cell"], table.rows["mode"]) if f"{c}:{m}" not in labels]
            ys = {label: len(labels) - 1 - i for i, label in enumerate(labels)}  # the table's best row on top
            dataset, _, K, Q = key
            share = next((t.repeat_share for t in inputs.tables if (t.dataset, t.dataset_hash, t.K, t.Q) == key), None)
            for ax, name in zip(axes[2 * index : 2 * index + 2], SIDE_SLICES):
                table = arms[name]
                colour, marker, filled = STYLE[name]
                m = inputs.metric
                rows = table.rows.iterrows() if table is not None else ()
                for _, row in rows:
                    mean, low, high = row[f"{m}_mean"], row[f"{m}_ci_low"], row[f"{m}_ci_high"]
                    if not _finite(mean, low, high):
                        continue
                    ax.errorbar(
                        [mean * scale],
                        [ys[f"{row['cell']}:{row['mode']}"]],
                        xerr=[[(mean - low) * scale], [(high - mean) * scale]],
                        fmt=marker,
                        color=colour,
                        mfc=colour if filled else "white",
                        ms=3.5,
                        capsize=1.5,
                        lw=0.8,
                    )
                ax.set_yticks(list(ys.values()), list(ys) if name == SIDE_SLICES[0] else [])
                ax.set_ylim(-0.7, len(labels) - 0.3)
                ax.grid(axis="y", visible=False)
                ax.set_xlim(left=0)
                ax.set_xlabel(f"{axis_label}, {SLICE_NAMES[name]} queries")
                if name == SIDE_SLICES[0]:
                    part = f"{100 * share:.0f}% of the queries" if share is not None else "queries"
                else:
                    part = f"{100 * (1 - share):.0f}% of the queries" if share is not None else "queries"
                ax.set_title(f"{SLICE_NAMES[name]} ({part})" + (f"\n{dataset} · K={K} · Q={Q}" if name == SIDE_SLICES[0] and len(keys) > 1 else ""))
        if len(keys) == 1:
            dataset, _, K, Q = keys[0]
            figure.suptitle(f"{dataset} · K={K} · Q={Q}")
        figure.tight_layout()
    shares = [f"{t.dataset} K={t.K}: {100 * t.repeat_share:.1f}%" for t in inputs.tables if t.repeat_share is not None]
    caption = (
        f"Each arm's {axis_label.split(' (')[0]} on repeat queries (left, filled circles: the label is already in the query's prefix) and on "
        "explore queries (right, open squares: a course not in the prefix; its own scale), with 95% bootstrap CIs "
        "(over the learners that have a query "
        "in the slice, and over seeds where there are several); each episode is averaged over its queries in the slice, "
        "episodes with none left out. "
        + (f"Repeat share of the test queries: {'; '.join(shares)}. " if shares else "")
        + "Rows in the order of the leaderboard."
    )
    lacking = {r["hash"] for r in inputs.results.without_queries()}
    return Drawn(figure, caption, run_listing([r for r in inputs.results.runs if r["hash"] not in lacking]), wide=True)
