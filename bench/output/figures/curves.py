"""Figure 1: meta-training curves. Validation Acc@1 against meta-iteration per cell (mean over
seeds, band = seed range), each seed's chosen checkpoint marked, where val_patience stopped a seed
early a cross, GRU4Rec's validation level as a line: one kind of number throughout, Acc@1 on the val
episodes under the protocol (GRU4Rec zero-shot, on the panel's K and Q)."""

from __future__ import annotations

import numpy as np

from bench.output.figures.base import Drawn, Skipped, legend_below, panels, run_listing
from bench.output.figures.inputs import PlotInputs, curves
from bench.output.figures.style import cell_colours, paper_style

NAME = "curves"
GRU4REC_LABEL = "GRU4Rec, val episodes (zero-shot, best epoch)"
STOPPED_LABEL = "stopped early (val_patience, per seed)"


def _at(iteration, per_seed) -> bool:
    """Whether a recorded iteration (None or NaN where unrecorded) is one of the curve's validations."""
    return iteration is not None and not np.isnan(iteration) and iteration in per_seed.index


def gru4rec_level(runs: list[dict], dataset: str, dataset_hash: str, K: int, Q: int) -> float | None:
    """Mean over seeds of GRU4Rec's val Acc@1 at its best epoch, from the runs' recorded fit info: only
    a curve measured on the val episodes of this K and Q (info ``val_episodes``; the weights are cached
    across K and Q, their curve on the episodes of the run that trained them). A curve without that
    record (on val pairs, before issue 36) is another kind of number, never drawn."""
    per_seed = {}
    for run in runs:
        info = (run.get("fit") or {}).get("gru4rec")
        config = run["config"]
        if not info or config.get("dataset") != dataset or config.get("dataset_hash") != dataset_hash:
            continue
        measured = info.get("val_episodes") or {}
        if (measured.get("K"), measured.get("Q")) != (K, Q):
            continue
        best = [row.get("val_acc@1") for row in info.get("curve", []) if row.get("iteration") == info.get("best_epoch")]
        if best and best[0] is not None:
            per_seed[config.get("seed")] = float(best[0])
    return float(np.mean(list(per_seed.values()))) if per_seed else None


def draw(inputs: PlotInputs) -> Drawn | Skipped:
    data = curves(inputs)
    if data.empty:
        return Skipped("no stored meta-training curve in the selected runs (no MAML run, or meta_iterations = 0)")
    colours = cell_colours(run["cell"] for run in inputs.results.runs)
    groups = list(data.groupby(["dataset", "dataset_hash", "K", "Q"], sort=True))
    with paper_style():
        figure, axes = panels(len(groups))
        for ax, ((dataset, dataset_hash, K, Q), group) in zip(axes, groups):
            for cell, sub in group.groupby("cell", sort=True):
                colour, marker = colours[cell]
                per_seed = sub.pivot_table(index="iteration", columns="seed", values="val_acc@1", aggfunc="mean") * 100
                mean = per_seed.mean(axis=1)
                ax.plot(
                    mean.index, mean.to_numpy(), color=colour, marker=marker, ms=2.5, label=cell, gid=f"curve|{dataset}|{K}|{Q}|{cell}"
                )  # the marker tells cells apart where colours repeat
                if per_seed.shape[1] > 1:
                    ax.fill_between(per_seed.index, per_seed.min(axis=1), per_seed.max(axis=1), color=colour, alpha=0.2, linewidth=0)
                for seed, best, stop in sub.drop_duplicates("seed")[["seed", "best_iteration", "stopped_early"]].itertuples(index=False):
                    if _at(best, per_seed):
                        ax.plot([best], [per_seed.loc[best, seed]], marker=marker, color=colour, mfc="white", ls="none", ms=6, zorder=3)
                    if _at(stop, per_seed):
                        ax.plot([stop], [per_seed.loc[stop, seed]], marker="x", color=colour, ls="none", ms=7, zorder=4, gid=f"stop|{cell}|{seed}")
            level = gru4rec_level(inputs.results.runs, dataset, dataset_hash, K, Q)
            if level is not None:
                ax.axhline(100 * level, color="0.35", ls=":", lw=1.0, label=GRU4REC_LABEL)
            ax.plot([], [], marker="o", color="0.2", mfc="white", ls="none", label="chosen checkpoint (per seed)")
            if group["stopped_early"].notna().any():
                ax.plot([], [], marker="x", color="0.2", ls="none", label=STOPPED_LABEL)
            ax.set_title(f"{dataset} · K={K} · Q={Q}")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_xlabel("meta-iteration (outer steps)")
            ax.set_ylabel("validation Acc@1, few-shot (%)")
        legend_below(figure, axes)
    runs = [inputs.runs_by_hash[h] for h in sorted(data["run"].unique())]
    n_val = sorted({(run.get("fit") or {}).get("n_val_episodes") for run in runs} - {None})
    seeds = sorted(data["seed"].unique())
    caption = (
        f"Meta-training curves: validation Acc@1 (few-shot, on {'/'.join(map(str, n_val)) or 'the'} validation episodes) against "
        f"meta-iteration; line: mean over {len(seeds)} seed(s)"
        + ("; band: range over seeds" if len(seeds) > 1 else "")
        + "; hollow marker: the checkpoint each seed kept (best validation Acc@1); dotted: GRU4Rec's zero-shot Acc@1 on the "
        "validation episodes of the panel's K and Q at its best epoch (by validation loss), for scale."
        + (f" Cross: {STOPPED_LABEL}, its patience of validations without a new best ran out." if data["stopped_early"].notna().any() else "")
    )
    return Drawn(figure, caption, run_listing(runs), wide=len(groups) > 1)
