"""What a figure function returns, and small helpers the figures share (panel grids, captions)."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Any

from bench.output.figures.style import COLUMN_WIDTH, PAGE_WIDTH, PANEL_HEIGHT, pyplot


@dataclass(frozen=True)
class Drawn:
    figure: Any  # matplotlib.figure.Figure
    caption: str  # what is plotted, in plain words (LaTeX and HTML captions)
    sources: str  # which runs or files it was drawn from (the caption .txt and the HTML page)
    wide: bool = False  # spans both columns of the paper (figure* in LaTeX)


@dataclass(frozen=True)
class Skipped:
    notice: str  # one line: why the figure was not drawn


def panels(n: int, max_cols: int = 3, height: float = PANEL_HEIGHT, wide: bool | None = None):
    """(figure, flat list of n axes): one column wide for a single panel, page wide otherwise."""
    plt = pyplot()
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    wide = n > 1 if wide is None else wide
    figure, axes = plt.subplots(rows, cols, figsize=(PAGE_WIDTH if wide else COLUMN_WIDTH, height * rows), squeeze=False)
    flat = list(axes.flat)
    for extra in flat[n:]:
        extra.set_visible(False)
    return figure, flat[:n]


def legend_below(figure, axes, ncol: int = 2) -> None:
    """One legend for the figure, under the panels, each label once."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        figure.tight_layout()
        figure.legend(list(seen.values()), list(seen), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol)


def wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text


def run_listing(runs: list[dict]) -> str:
    """'cell (seeds 0, 1): hash8, hash8; ...' for a caption's sources line."""
    by_cell: dict[str, list[dict]] = {}
    for run in runs:
        by_cell.setdefault(run["cell"], []).append(run)
    parts = []
    for cell, cell_runs in sorted(by_cell.items()):
        seeds = sorted({r["config"].get("seed") for r in cell_runs}, key=str)
        hashes = ", ".join(sorted(r["hash"][:8] for r in cell_runs))
        shots = "/".join(str(k) for k in sorted({int(r["config"]["K"]) for r in cell_runs}))
        parts.append(f"{cell} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}; K={shots}): {hashes}")
    return f"{len(runs)} run(s): " + "; ".join(parts) + "."
