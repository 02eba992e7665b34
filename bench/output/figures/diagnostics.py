"""Figure 5: the datasets in the store side by side, from each dataset.json's ``diagnostics``:
prefix-length distribution, label popularity curve, support signal (own vs shuffled support)."""

from __future__ import annotations

import numpy as np

from bench.output.figures.base import Drawn, Skipped, panels
from bench.output.figures.inputs import PlotInputs
from bench.output.figures.style import PALETTE, paper_style

NAME = "dataset-diagnostics"


def _prefix_lengths(ax, name, diag, colour) -> bool:
    counts = np.asarray(diag.get("prefix_length_hist") or [], dtype=float)
    if not counts.sum():
        return False
    ax.step(np.arange(1, len(counts) + 1), 100 * counts / counts.sum(), where="mid", color=colour, label=name)
    ax.set_xlabel("prefix length (items)")
    ax.set_ylabel("share of pairs (%)")
    ax.set_title("Prefix length")
    return True


def _label_share(ax, name, diag, colour) -> bool:
    curve = np.asarray(diag.get("label_share_curve") or [], dtype=float)
    if curve.ndim != 2 or not len(curve):
        return False
    ax.plot(curve[:, 0], 100 * curve[:, 1], color=colour, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("item rank by label count (log)")
    ax.set_ylabel("cumulative share of labels (%)")
    ax.set_title("Label popularity")
    return True


def _support_signal(ax, name, diag, colour, index, n) -> bool:
    signal = diag.get("support_signal") or {}
    if signal.get("own") is None or signal.get("shuffled") is None:
        return False
    width = 0.8 / n
    x = np.array([0.0, 1.0]) + (index - (n - 1) / 2) * width
    ax.bar(x, [100 * signal["own"], 100 * signal["shuffled"]], width=width, color=colour, label=name)
    if signal.get("ratio") is not None:
        ax.annotate(f"×{signal['ratio']:.2f}", (x[0], 100 * signal["own"]), ha="center", va="bottom", fontsize=6.5)
    ax.set_xticks([0, 1], ["own support", "shuffled support"])
    ax.set_ylabel("query labels in support (%)")
    ax.set_title("Support signal")
    return True


def draw(inputs: PlotInputs) -> Drawn | Skipped:
    names = sorted({run["config"]["dataset"] for run in inputs.results.runs})
    found = {name: inputs.manifests[name]["diagnostics"] for name in names if (inputs.manifests.get(name) or {}).get("diagnostics")}
    if not found:
        missing = [n for n in names if n not in inputs.manifests]
        why = f"dataset.json not found for {', '.join(missing)} (check --data-dir)" if missing else "dataset.json has no 'diagnostics'"
        return Skipped(f"no dataset diagnostics: {why}")
    with paper_style():
        figure, axes = panels(3, max_cols=3, wide=True)
        drawn = [False, False, False]
        for i, (name, diag) in enumerate(sorted(found.items())):
            colour = PALETTE[i % len(PALETTE)]
            drawn[0] |= _prefix_lengths(axes[0], name, diag, colour)
            drawn[1] |= _label_share(axes[1], name, diag, colour)
            drawn[2] |= _support_signal(axes[2], name, diag, colour, i, len(found))
        for ax, ok in zip(axes, drawn):
            if not ok:
                ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", va="center", color="0.4")
                ax.set_axis_off()
        axes[0].legend()
        figure.tight_layout()
    stale = [
        name
        for name in found
        if inputs.manifests[name].get("content_hash")
        not in {r["config"].get("dataset_hash") for r in inputs.results.runs if r["config"]["dataset"] == name}
    ]
    caption = (
        f"Dataset diagnostics for {', '.join(sorted(found))}: share of (prefix, label) pairs by stored prefix length (the "
        "last length also holds the prefixes cut to it); cumulative "
        "share of train labels taken by the most frequent items; share of test query labels found among the episode's "
        "support items (not in the query's prefix), with the learner's own support and with another learner's (shuffled), and their ratio."
        + (f" Note: the dataset.json of {', '.join(stale)} is not the data version the runs used." if stale else "")
    )
    sources = "; ".join(f"{name}: dataset.json, content hash {inputs.manifests[name].get('content_hash', '?')[:12]}" for name in sorted(found))
    return Drawn(figure, caption, sources + ".", wide=True)
