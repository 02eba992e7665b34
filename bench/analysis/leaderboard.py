"""Leaderboards from the result store (the tables `python -m bench report` and `export` lay out).

One function, :func:`leaderboard`, turns the store's per-episode metrics into tables (one per
dataset, data version, K and Q; one row per cell and mode). The renderers in :mod:`bench.output`
(terminal, LaTeX, markdown, CSV) format those same tables, so they cannot disagree. The
statistics themselves are in :mod:`bench.analysis.stats`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis import stats
from bench.analysis.episodes import (
    STILL_IMPROVING,
    WEIGHT_ZERO,
    budget_pairs,
    cell_remarks,
    episodes_with_identity,
    label_variants,
    learners,
    per_episode,
    seeds_paired,
    still_improving,
    support_weights,
)
from bench.core.errors import BenchError
from bench.core.labels import METRIC_LABELS, SLICE_LABELS, check_metric
from bench.core.metrics import METRICS

SIDE_SLICES = ("repeat", "explore")  # every row's metric on each, beside its value on the table's slice

DEFAULT_REFERENCE = "gru4rec:zero-shot"
DEFAULT_METRIC = "acc@1"


@dataclass(frozen=True)
class LeaderboardTable:
    """One leaderboard: a (dataset, data version, K, Q) with one row per (cell, mode).

    ``rows`` is sorted by ``metric`` (best first) and has the columns ``rank, dataset, K, Q, cell,
    mode, method, init, is_reference, n_episodes, n_seeds, train_seconds, support_weight, n_still_improving,
    budget_pairs, remarks``; for every metric ``m``
    ``m_mean, m_ci_low, m_ci_high, m_seed_std``; and, for ``metric`` against the reference,
    ``diff_mean, diff_ci_low, diff_ci_high, wins, ties, losses`` (descriptive: no test is made here;
    the declared questions are the tests)
    (NaN / <NA> on the reference row, and everywhere when ``has_reference`` is false); for each slice
    ``s`` of SIDE_SLICES, ``s_mean`` (``metric`` over seeds and that slice's episodes; NaN where a run of
    the row has no per-query results or no query is in the slice) and ``s_n_episodes``; ``slices_stored``
    (False where a run of the row was stored before per-query results).
    ``slice`` is the queries the table's means are over (bench.core.metrics.SLICES).
    """

    dataset: str
    dataset_hash: str
    K: int
    Q: int
    metric: str
    reference: str | None  # "cell:mode" asked for (None: no comparisons asked)
    has_reference: bool  # the reference row is in this table, so the comparison columns are filled
    rows: pd.DataFrame
    notes: tuple[str, ...]
    n_resamples: int
    confidence: float
    show_data_version: bool = False
    slice: str = "all"
    repeat_share: float | None = None  # the share of this table's test queries whose label is in the prefix (None: unknown)

    @property
    def title(self) -> str:
        version = f" · data {self.dataset_hash[:8]}" if self.show_data_version and self.dataset_hash else ""
        part = f" · {self.slice} queries" if self.slice != "all" else ""
        return f"{self.dataset} · K={self.K} · Q={self.Q}{version}{part}"


# ---------------------------------------------------------------------------------------------
# The one table computation


def parse_reference(text: str) -> tuple[str, str]:
    """``"CELL:MODE"`` -> (cell, mode); the last colon separates the mode."""
    cell, sep, mode = text.rpartition(":")
    if not sep or not cell or not mode:
        raise BenchError(f"reference {text!r} is not CELL:MODE", f"write it like {DEFAULT_REFERENCE}")
    return cell, mode


def _mixed_code_note(group: pd.DataFrame) -> str | None:
    """The table note for cells pooled over several code versions (--allow-mixed-code)."""
    codes = group.groupby(["cell", "variant"], sort=True)["code"].nunique()
    cells = sorted({cell for (cell, _), n in codes.items() if n > 1})
    if not cells:
        return None
    return f"--allow-mixed-code: {', '.join(cells)} pool runs made by different versions of the code (fingerprints differ)."


def _train_seconds(run: dict) -> float | None:
    value = run.get("train_seconds", (run.get("times") or {}).get("train_seconds"))
    return float(value) if isinstance(value, (int, float)) else None


def _summary_row(complete: pd.DataFrame, n_resamples: int, confidence: float, seed: int) -> dict[str, Any]:
    row: dict[str, Any] = {"n_episodes": len(complete), "n_seeds": complete[METRICS[0]].shape[1]}
    per_seed = {m: complete[m].to_numpy().T for m in METRICS}  # [n_seeds, n_episodes] per metric
    summaries = stats.summarize_cells(per_seed, confidence, n_resamples, seed, clusters=learners(complete.index))
    for m, summary in summaries.items():
        # every metric lies in [0, 1]; a t interval over two or three seeds can reach past it
        low, high = max(summary.ci_low, 0.0), min(summary.ci_high, 1.0)
        row.update({f"{m}_mean": summary.mean, f"{m}_ci_low": low, f"{m}_ci_high": high, f"{m}_seed_std": summary.seed_std})
    return row


def _fit_columns(records: list[dict], mode: str) -> dict[str, Any]:
    """What the runs' fit info says beside the numbers: support weight, still improving, budget, remarks."""
    weights = support_weights(records, mode)
    budget = budget_pairs(records)
    return {
        "support_weight": float(np.mean(weights)) if weights else float("nan"),
        "n_still_improving": still_improving(records),
        "budget_pairs": float("nan") if budget is None else budget,
        "remarks": "; ".join(cell_remarks(records, mode)),
    }


def _remark_notes(frame: pd.DataFrame) -> list[str]:
    """The remarks in words under the table, so every output states them even where a column is left out."""
    notes = []
    zero = [f"{c}:{m}" for c, m, r in zip(frame["cell"], frame["mode"], frame["remarks"]) if WEIGHT_ZERO in r]
    if zero:
        notes.append(f"{', '.join(zero)}: {WEIGHT_ZERO} (adaptation was tried on val and not kept; the row repeats its zero-shot numbers).")
    improving = [f"{c}:{m}" for c, m, n in zip(frame["cell"], frame["mode"], frame["n_still_improving"]) if n]
    if improving:
        notes.append(f"{', '.join(improving)}: {STILL_IMPROVING} (best checkpoint at its last validation or epoch): more training could change it.")
    return notes


def _ci_scope(frame: pd.DataFrame) -> str:
    if frame["n_seeds"].max() <= 1:
        return "one trained model per cell; intervals cover episode sampling only"
    return "two-stage bootstrap: seeds, then learners, so intervals cover the training seed as well"


def _leaderboard_table(
    group: pd.DataFrame,
    runs_by_hash: dict[str, dict],
    metric: str,
    reference: tuple[str, str] | None,
    n_resamples: int,
    confidence: float,
    seed: int,
    side: dict[str, pd.DataFrame] | None = None,
    lacking: frozenset[str] = frozenset(),
    table_slice: str = "all",
) -> LeaderboardTable | None:
    """The table of one (dataset, data version, K, Q); None when no row has a complete episode.
    ``side``: this table's episode rows of each of SIDE_SLICES (None: no per-query results at all);
    ``lacking``: the runs stored without per-query results (their rows' slice cells are NaN)."""
    dataset, dataset_hash, K, Q = (group[c].iloc[0] for c in ("dataset", "dataset_hash", "K", "Q"))
    key = ["episode", "user_id"] if "user_id" in group.columns else ["episode"]
    group = group.copy()
    group["label"], notes = label_variants(group)

    rows, episode_means = [], {}
    for (label, mode), sub in group.groupby(["label", "mode"], sort=True):
        complete, dropped = per_episode(sub, key, f"{label}:{mode} on {dataset} K={K} Q={Q}")
        if complete.empty:
            notes.append(f"{label}:{mode} left out: no test episode is covered by all its seeds.")
            continue
        if dropped:
            notes.append(f"{label}:{mode}: {dropped} episode(s) not covered by every seed left out.")
        times = [t for t in (_train_seconds(runs_by_hash.get(h, {})) for h in sub["run"].unique()) if t is not None]
        inits = sorted({str(i) for i in sub["init"].dropna().unique()}) if "init" in sub.columns else []
        methods = sorted({str(i) for i in sub["method"].dropna().unique()}) if "method" in sub.columns else []
        rows.append(
            {
                "dataset": dataset,
                "K": int(K),
                "Q": int(Q),
                "cell": label,
                "mode": mode,
                "method": ",".join(methods),
                "init": ",".join(inits),
                "is_reference": reference is not None and (label, mode) == reference,
                **_summary_row(complete, n_resamples, confidence, seed),
                "train_seconds": float(np.mean(times)) if times else float("nan"),
                **_fit_columns([runs_by_hash.get(h, {}) for h in sub["run"].unique()], mode),
                **_side_columns(sub, side, lacking, key, metric, f"{label}:{mode}"),
            }
        )
        configs = {int(s): runs_by_hash.get(h, {}).get("config", {}) for s, h in sub.groupby("seed")["run"].first().items()}
        episode_means[(label, mode)] = (complete[metric], configs)

    if not rows:
        return None
    frame = pd.DataFrame(rows)
    has_reference = reference is not None and reference in episode_means
    for column in ("diff_mean", "diff_ci_low", "diff_ci_high"):
        frame[column] = np.nan
    for column in ("wins", "ties", "losses"):
        frame[column] = pd.array([pd.NA] * len(frame), dtype="Int64")
    label = METRIC_LABELS[metric]
    if has_reference:
        ref_values, ref_runs = episode_means[reference]
        for i, row in frame.iterrows():
            if row["is_reference"]:
                continue
            values, runs = episode_means[(row["cell"], row["mode"])]
            common = values.index.intersection(ref_values.index)
            if len(common) == 0:
                notes.append(f"{row['cell']}:{row['mode']} shares no test episode with the reference; not compared.")
                continue
            if len(common) < len(values) or len(common) < len(ref_values):
                notes.append(f"{row['cell']}:{row['mode']} is compared on the {len(common)} episodes it shares with the reference.")
            result = stats.compare_seeded(
                values.loc[common].to_numpy().T,
                ref_values.loc[common].to_numpy().T,
                seeds_paired(runs, ref_runs),
                learners(common),
                confidence,
                n_resamples,
                seed,
            )
            frame.loc[i, ["diff_mean", "diff_ci_low", "diff_ci_high"]] = [result.mean_diff, result.ci_low, result.ci_high]
            frame.loc[i, ["wins", "ties", "losses"]] = [result.wins, result.ties, result.losses]
        notes.append(
            f"Δ: {label} minus the reference {reference[0]}:{reference[1]} on the same episodes, descriptive: its CI covers "
            f"seeds and learners as the means' do, but no test is made here (comparing every row with one reference is not "
            f"the grid's question family); the declared comparisons are tested in the Questions table. "
            f"W/T/L: episodes where the row beats / ties / loses to the reference."
        )
    elif reference is not None:
        notes.append(
            f"No comparison columns: the reference {reference[0]}:{reference[1]} has no results in this table (choose one with --reference "
            f"CELL:MODE)."
        )

    frame = frame.sort_values([f"{metric}_mean", "cell", "mode"], ascending=[False, True, True], kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    notes += _remark_notes(frame)
    notes.append(_side_note(label, side, frame))
    on_slice = f"On {SLICE_LABELS[table_slice]} only: each episode's mean over its queries in the slice, episodes with none left out. "
    notes.insert(
        0,
        (on_slice if table_slice != "all" else "")
        + f"Sorted by {label}. Means over seeds and test episodes with {confidence:.0%} percentile bootstrap CIs "
        f"({n_resamples:,} resamples; {_ci_scope(frame)}); Acc@1 and Recall in %, MRR and NDCG@10 in [0, 1]; "
        f"seed sd: std of the per-seed means; train s: mean training seconds per run.",
    )
    return LeaderboardTable(
        dataset=str(dataset),
        dataset_hash=str(dataset_hash),
        K=int(K),
        Q=int(Q),
        metric=metric,
        reference=None if reference is None else f"{reference[0]}:{reference[1]}",
        has_reference=has_reference,
        rows=frame,
        notes=tuple(notes),
        n_resamples=n_resamples,
        confidence=confidence,
        slice=table_slice,
        repeat_share=side.get("share") if side is not None else None,
    )


def _side_columns(sub: pd.DataFrame, side, lacking: frozenset[str], key: list[str], metric: str, where: str) -> dict[str, Any]:
    """``s_mean`` and ``s_n_episodes`` of one row for each of SIDE_SLICES, from the same runs as ``sub``."""
    out: dict[str, Any] = {}
    runs, mode = set(sub["run"].unique()), sub["mode"].iloc[0]
    out["slices_stored"] = side is not None and not runs & lacking  # False: a run of the row has no queries.parquet
    for name in SIDE_SLICES:
        rows = None if side is None or runs & lacking else side[name][side[name]["run"].isin(runs) & (side[name]["mode"] == mode)]
        complete = per_episode(rows, key, where)[0] if rows is not None and len(rows) else None
        ok = complete is not None and not complete.empty
        out[f"{name}_mean"] = float(complete[metric].to_numpy().mean()) if ok else float("nan")
        out[f"{name}_n_episodes"] = len(complete) if ok else 0
    return out


def _side_note(label: str, side, frame: pd.DataFrame) -> str:
    """The note saying what the repeat and explore columns are, and the repeat share of the queries."""
    share = ""
    if side is not None and "share" in side:
        share = f" ({100 * side['share']:.1f}% of this table's test queries are repeats)"
    missing = " —: a run of the row was stored before per-query results (rerun it)." if not frame["slices_stored"].all() else ""
    if frame["slices_stored"].all() and frame[[f"{s}_n_episodes" for s in SIDE_SLICES]].eq(0).to_numpy().any():
        missing = " —: no test query of the row's episodes is in that slice."
    return (
        f"Repeat | Explore: {label} over the queries whose label is already in the prefix{share} and over the others, each episode "
        f"averaged over its queries in the slice (episodes with none left out); `report --slice repeat|explore` gives whole tables.{missing}"
    )


def _side_frames(results: Any, allow_mixed_code: bool) -> tuple[dict[str, pd.DataFrame] | None, frozenset[str]]:
    """The episode rows of each of SIDE_SLICES (identity columns as episodes_with_identity gives them),
    and the runs without per-query results; (None, none) when ``results`` carries no per-query rows at all."""
    if not hasattr(results, "sliced") or results.queries is None:
        return None, frozenset()
    lacking = frozenset(r["hash"] for r in results.without_queries())
    frames = {name: episodes_with_identity(results.sliced(name, partial=True), allow_mixed_code)[0] for name in SIDE_SLICES}
    return frames, lacking


def _table_side(frames: dict[str, pd.DataFrame] | None, queries, key: tuple) -> dict | None:
    """One table's rows of each side slice (and ``share``: the repeat share of its test queries)."""
    if frames is None:
        return None
    name, dataset_hash, K, Q = key
    out: dict = {s: f[(f["dataset"] == name) & (f["dataset_hash"] == dataset_hash) & (f["K"] == K) & (f["Q"] == Q)] for s, f in frames.items()}
    runs = set(out["repeat"]["run"]) | set(out["explore"]["run"])
    mine = queries[queries["run"].isin(runs)]
    if len(mine):  # every run of a table scores the same queries: one run's one mode says the share
        first = mine[(mine["run"] == mine["run"].iloc[0]) & (mine["mode"] == mine["mode"].iloc[0])]
        out["share"] = float(first["in_prefix"].mean())
    return out


def leaderboard(
    results: Any,
    reference: str | None = DEFAULT_REFERENCE,
    metric: str = DEFAULT_METRIC,
    *,
    dataset: str | None = None,
    require_reference: bool = False,
    n_resamples: int = stats.N_RESAMPLES,
    confidence: float = stats.CONFIDENCE,
    seed: int = 0,
    allow_mixed_code: bool = False,
) -> list[LeaderboardTable]:
    """Leaderboard tables from ``results`` (``bench.store.results.Results`` or its episodes DataFrame).

    One table per (dataset, data version, K, Q), rows (cell, mode) sorted by ``metric``; each row
    compared with ``reference`` ("CELL:MODE"; None: no comparisons) where that row exists. With
    ``require_reference`` a reference found in no table is an error (an explicit --reference);
    otherwise such a table simply has no comparison columns and says so in its notes. Runs of one
    cell made by different code are refused unless ``allow_mixed_code`` (then noted in the table).
    """
    check_metric(metric)
    ref_key = parse_reference(reference) if reference is not None else None
    episodes, runs_by_hash = episodes_with_identity(results, allow_mixed_code)
    if episodes.empty and getattr(results, "slice", "all") != "all":
        raise BenchError(f"no test query of these runs is in the {results.slice} slice", "report another --slice")
    if episodes.empty:
        raise BenchError("no complete runs in the results", "run `python -m bench run --grid NAME` first, or check --results")
    datasets = sorted(episodes["dataset"].astype(str).unique())
    if dataset is not None:
        if dataset not in datasets:
            raise BenchError(f"no results for dataset {dataset!r}", f"choose one of: {', '.join(datasets)}")
        episodes = episodes[episodes["dataset"] == dataset]

    tables = []
    frames, lacking = _side_frames(results, allow_mixed_code)
    table_slice = getattr(results, "slice", "all")
    groups = episodes.groupby(["dataset", "dataset_hash", "K", "Q"], sort=True)
    versions = episodes.groupby("dataset")["dataset_hash"].nunique()
    for (name, dataset_hash, K, Q), group in groups:
        side = _table_side(frames, getattr(results, "queries", None), (name, dataset_hash, K, Q))
        table = _leaderboard_table(group, runs_by_hash, metric, ref_key, n_resamples, confidence, seed, side, lacking, table_slice)
        if table is None:
            continue
        if versions[name] > 1:
            table = _with_version_note(table)
        mixed_note = _mixed_code_note(group)
        if mixed_note:
            table = dataclasses.replace(table, notes=(*table.notes, mixed_note))
        tables.append(table)
    if not tables:
        raise BenchError("no test episode is covered by every seed of any cell", "rerun the incomplete runs")
    if require_reference and ref_key is not None and not any(t.has_reference for t in tables):
        choices = sorted({f"{c}:{m}" for t in tables for c, m in zip(t.rows["cell"], t.rows["mode"])})
        raise BenchError(f"reference {reference!r} has no results", f"choose one of: {', '.join(choices)}")
    return tables


def _with_version_note(table: LeaderboardTable) -> LeaderboardTable:
    note = f"The results hold several versions of dataset {table.dataset}; this table is data version {table.dataset_hash[:8]} only."
    return dataclasses.replace(table, notes=(*table.notes, note), show_data_version=True)
