"""Look of every figure: sizes for a two-column paper, a colour-blind-safe palette, units per metric."""

from __future__ import annotations

import contextlib

from bench.core.labels import METRIC_LABELS, PERCENT_METRICS

COLUMN_WIDTH = 3.4  # inches: one column of a two-column paper (ACM/IEEE/NeurIPS-style)
PAGE_WIDTH = 7.0  # inches: both columns
PANEL_HEIGHT = 2.3  # inches

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision
# deficiency. Yellow last: it is the weakest on white paper.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # a second cue when the palette repeats
MODE_LINESTYLES = {"few-shot": "-", "zero-shot": "--"}
WIN, TIE, LOSS = "#009E73", "#999999", "#D55E00"

RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.2,
    "legend.frameon": False,
    "pdf.fonttype": 42,  # TrueType in the PDF: text stays text, as journals ask
    "svg.fonttype": "path",  # the HTML page must not depend on the reader's fonts
    "svg.hashsalt": "bench",  # the same figure gives the same SVG ids
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "figure.dpi": 100,
}


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def paper_style():
    plt = pyplot()
    with plt.rc_context(RC):
        yield plt


def cell_colours(cells) -> dict[str, tuple[str, str]]:
    """(colour, marker) per cell, stable across figures: assigned in sorted order of the names."""
    names = sorted(set(cells))
    return {name: (PALETTE[i % len(PALETTE)], MARKERS[(i // len(PALETTE)) % len(MARKERS)]) for i, name in enumerate(names)}


def metric_scale(metric: str) -> tuple[float, str, str]:
    """(factor, axis label, difference unit): Acc@1 and Recall are shown in %, MRR/NDCG in [0, 1]."""
    label = METRIC_LABELS.get(metric, metric)
    if metric in PERCENT_METRICS:
        return 100.0, f"{label} (%)", "percentage points"
    return 1.0, f"{label} (0–1)", f"{label} units"
