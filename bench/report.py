"""Leaderboards from the result store: `python -m bench report` and `python -m bench export`.

One function, :func:`leaderboard`, turns the store's per-episode metrics into tables (one per
dataset, data version, K and Q; one row per cell and mode); every renderer (terminal, LaTeX,
markdown, CSV) formats those same tables, so they cannot disagree. The statistics themselves are
in :mod:`bench.stats`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import stats
from bench.atomic import atomic_write_text
from bench.errors import BenchError
from bench.metrics import METRICS

DEFAULT_REFERENCE = "gru4rec:zero-shot"
DEFAULT_METRIC = "acc@1"
DEFAULT_RESULTS = "results"
ALPHA = 0.05
METRIC_LABELS = {"acc@1": "Acc@1", "recall@5": "Recall@5", "recall@10": "Recall@10", "mrr": "MRR", "ndcg@10": "NDCG@10"}
PERCENT_METRICS = frozenset({"acc@1", "recall@5", "recall@10"})  # shown x100 with 2 decimals
EXPORT_FORMATS = ("latex", "markdown", "csv")
DAGGER = "†"


@dataclass(frozen=True)
class LeaderboardTable:
    """One leaderboard: a (dataset, data version, K, Q) with one row per (cell, mode).

    ``rows`` is sorted by ``metric`` (best first) and has the columns ``rank, dataset, K, Q, cell,
    mode, method, init, is_reference, n_episodes, n_seeds, train_seconds``; for every metric ``m``
    ``m_mean, m_ci_low, m_ci_high, m_seed_std``; and, for ``metric`` against the reference,
    ``diff_mean, diff_ci_low, diff_ci_high, p_value, p_holm, significant, wins, ties, losses``
    (NaN / <NA> on the reference row, and everywhere when ``has_reference`` is false).
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

    @property
    def title(self) -> str:
        version = f" · data {self.dataset_hash[:8]}" if self.show_data_version and self.dataset_hash else ""
        return f"{self.dataset} · K={self.K} · Q={self.Q}{version}"


# ---------------------------------------------------------------------------------------------
# The one table computation


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise BenchError(f"unknown metric {metric!r}", f"choose one of: {', '.join(METRICS)}")
    return metric


def parse_reference(text: str) -> tuple[str, str]:
    """``"CELL:MODE"`` -> (cell, mode); the last colon separates the mode."""
    cell, sep, mode = text.rpartition(":")
    if not sep or not cell or not mode:
        raise BenchError(f"reference {text!r} is not CELL:MODE", f"write it like {DEFAULT_REFERENCE}")
    return cell, mode


def _variant(config: dict) -> str:
    """Everything that identifies a run except its seed: runs that differ only by seed pool together."""
    return json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=str)


def _episodes_with_identity(results: Any) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The complete runs' episode rows, with ``dataset_hash`` and ``variant`` from each run.json."""
    if isinstance(results, pd.DataFrame):
        episodes, runs = results, []
    else:
        episodes, runs = results.episodes, list(results.runs)
    runs_by_hash = {run["hash"]: run for run in runs if "hash" in run}
    missing = [c for c in ("dataset", "cell", "mode", "seed", "K", "Q", "episode", *METRICS) if c not in episodes.columns]
    if missing:
        raise ValueError(f"episode table lacks columns {missing}")
    episodes = episodes.copy()
    if "run" not in episodes.columns:
        episodes["run"] = ""
    incomplete = {h for h, run in runs_by_hash.items() if run.get("status", "complete") != "complete"}
    if incomplete:
        episodes = episodes[~episodes["run"].isin(incomplete)]
    configs = {h: runs_by_hash.get(h, {}).get("config", {}) for h in episodes["run"].unique()}
    episodes["dataset_hash"] = episodes["run"].map({h: str(c.get("dataset_hash") or "") for h, c in configs.items()})
    episodes["variant"] = episodes["run"].map({h: _variant(c) if c else "" for h, c in configs.items()})
    return episodes, runs_by_hash


def _train_seconds(run: dict) -> float | None:
    value = run.get("train_seconds", (run.get("times") or {}).get("train_seconds"))
    return float(value) if isinstance(value, (int, float)) else None


def _label_variants(group: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    """Row labels: the cell name, plus a settings hash where one cell name covers several settings."""
    labels = group["cell"].astype(str).copy()
    notes = []
    for cell, sub in group.groupby("cell", sort=True):
        variants = sorted(sub["variant"].unique())
        if len(variants) > 1:
            for variant in variants:
                tag = hashlib.sha256(variant.encode()).hexdigest()[:6]
                labels[(group["cell"] == cell) & (group["variant"] == variant)] = f"{cell} #{tag}"
            notes.append(f"Cell {cell} has runs with {len(variants)} different settings; rows are told apart by a settings hash (#...).")
    return labels, notes


def _per_episode(sub: pd.DataFrame, key: list[str], where: str) -> tuple[pd.DataFrame, int]:
    """[episode x (metric, seed)] values covered by every seed, and how many episodes were dropped."""
    if sub.duplicated(["seed", *key]).any():
        runs = ", ".join(sorted(map(str, sub["run"].unique())))
        raise BenchError(
            f"{where} has more than one result per seed and episode (runs {runs})",
            "move the extra runs out of the results folder or give them distinct cell names",
        )
    wide = sub.set_index([*key, "seed"])[list(METRICS)].unstack("seed").sort_index()
    complete = wide.dropna()
    return complete, len(wide) - len(complete)


def _summary_row(complete: pd.DataFrame, n_resamples: int, confidence: float, seed: int) -> dict[str, Any]:
    row: dict[str, Any] = {"n_episodes": len(complete), "n_seeds": complete[METRICS[0]].shape[1]}
    per_seed = {m: complete[m].to_numpy().T for m in METRICS}  # [n_seeds, n_episodes] per metric
    for m, summary in stats.summarize_cells(per_seed, confidence, n_resamples, seed).items():
        row.update({f"{m}_mean": summary.mean, f"{m}_ci_low": summary.ci_low, f"{m}_ci_high": summary.ci_high, f"{m}_seed_std": summary.seed_std})
    return row


def _leaderboard_table(
    group: pd.DataFrame,
    runs_by_hash: dict[str, dict],
    metric: str,
    reference: tuple[str, str] | None,
    n_resamples: int,
    confidence: float,
    seed: int,
    alpha: float,
) -> LeaderboardTable | None:
    """The table of one (dataset, data version, K, Q); None when no row has a complete episode."""
    dataset, dataset_hash, K, Q = (group[c].iloc[0] for c in ("dataset", "dataset_hash", "K", "Q"))
    key = ["episode", "user_id"] if "user_id" in group.columns else ["episode"]
    group = group.copy()
    group["label"], notes = _label_variants(group)

    rows, episode_means = [], {}
    for (label, mode), sub in group.groupby(["label", "mode"], sort=True):
        complete, dropped = _per_episode(sub, key, f"{label}:{mode} on {dataset} K={K} Q={Q}")
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
                "dataset": dataset, "K": int(K), "Q": int(Q), "cell": label, "mode": mode,
                "method": ",".join(methods), "init": ",".join(inits),
                "is_reference": reference is not None and (label, mode) == reference,
                **_summary_row(complete, n_resamples, confidence, seed),
                "train_seconds": float(np.mean(times)) if times else float("nan"),
            }
        )
        episode_means[(label, mode)] = complete[metric].mean(axis=1)

    if not rows:
        return None
    frame = pd.DataFrame(rows)
    has_reference = reference is not None and reference in episode_means
    comparison = {c: np.nan for c in ("diff_mean", "diff_ci_low", "diff_ci_high", "p_value", "p_holm")}
    for column, value in comparison.items():
        frame[column] = value
    frame["significant"] = False
    for column in ("wins", "ties", "losses"):
        frame[column] = pd.array([pd.NA] * len(frame), dtype="Int64")
    label = METRIC_LABELS[metric]
    if has_reference:
        ref_values = episode_means[reference]
        for i, row in frame.iterrows():
            if row["is_reference"]:
                continue
            values = episode_means[(row["cell"], row["mode"])]
            common = values.index.intersection(ref_values.index)
            if len(common) == 0:
                notes.append(f"{row['cell']}:{row['mode']} shares no test episode with the reference; not compared.")
                continue
            if len(common) < len(values) or len(common) < len(ref_values):
                notes.append(f"{row['cell']}:{row['mode']} is compared on the {len(common)} episodes it shares with the reference.")
            result = stats.compare_paired(values.loc[common].to_numpy(), ref_values.loc[common].to_numpy(), confidence, n_resamples, seed)
            frame.loc[i, ["diff_mean", "diff_ci_low", "diff_ci_high", "p_value"]] = [result.mean_diff, result.ci_low, result.ci_high, result.p_value]
            frame.loc[i, ["wins", "ties", "losses"]] = [result.wins, result.ties, result.losses]
        frame["p_holm"] = stats.holm(frame["p_value"].to_numpy(dtype=float))
        frame["significant"] = frame["p_holm"].lt(alpha).fillna(False).astype(bool)
        n_compared = int(frame["p_value"].notna().sum())
        notes.append(
            f"Δ: {label} minus the reference {reference[0]}:{reference[1]} on the same episodes, paired bootstrap CI; "
            f"Holm p: two-sided paired sign-flip permutation test, Holm-adjusted over the {n_compared} comparison(s) in this table; "
            f"{DAGGER} Holm p < {alpha:g}. W/T/L: episodes where the row beats / ties / loses to the reference."
        )
    elif reference is not None:
        notes.append(f"No comparison columns: the reference {reference[0]}:{reference[1]} has no results in this table (choose one with --reference CELL:MODE).")

    frame = frame.sort_values([f"{metric}_mean", "cell", "mode"], ascending=[False, True, True], kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    notes.insert(
        0,
        f"Sorted by {label}. Means over test episodes (seeds averaged per episode first) with {confidence:.0%} percentile "
        f"bootstrap CIs over episodes ({n_resamples:,} resamples); Acc@1 and Recall in %, MRR and NDCG@10 in [0, 1]; "
        f"seed sd: std of the per-seed means; train s: mean training seconds per run.",
    )
    return LeaderboardTable(
        dataset=str(dataset), dataset_hash=str(dataset_hash), K=int(K), Q=int(Q), metric=metric,
        reference=None if reference is None else f"{reference[0]}:{reference[1]}",
        has_reference=has_reference, rows=frame, notes=tuple(notes), n_resamples=n_resamples, confidence=confidence,
    )


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
    alpha: float = ALPHA,
) -> list[LeaderboardTable]:
    """Leaderboard tables from ``results`` (``bench.store.Results`` or its episodes DataFrame).

    One table per (dataset, data version, K, Q), rows (cell, mode) sorted by ``metric``; each row
    compared with ``reference`` ("CELL:MODE"; None: no comparisons) where that row exists. With
    ``require_reference`` a reference found in no table is an error (an explicit --reference);
    otherwise such a table simply has no comparison columns and says so in its notes.
    """
    check_metric(metric)
    ref_key = parse_reference(reference) if reference is not None else None
    episodes, runs_by_hash = _episodes_with_identity(results)
    if episodes.empty:
        raise BenchError("no complete runs in the results", "run `python -m bench run --grid NAME` first, or check --results")
    datasets = sorted(episodes["dataset"].astype(str).unique())
    if dataset is not None:
        if dataset not in datasets:
            raise BenchError(f"no results for dataset {dataset!r}", f"choose one of: {', '.join(datasets)}")
        episodes = episodes[episodes["dataset"] == dataset]

    tables = []
    groups = episodes.groupby(["dataset", "dataset_hash", "K", "Q"], sort=True)
    versions = episodes.groupby("dataset")["dataset_hash"].nunique()
    for (name, _, _, _), group in groups:
        table = _leaderboard_table(group, runs_by_hash, metric, ref_key, n_resamples, confidence, seed, alpha)
        if table is None:
            continue
        if versions[name] > 1:
            table = _with_version_note(table)
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


# ---------------------------------------------------------------------------------------------
# Display cells shared by the renderers


@dataclass(frozen=True)
class _Cell:
    text: str
    detail: str = ""  # e.g. a CI, shown after the text in a lighter style
    emphasis: str | None = None  # "best" / "second" in a metric column
    significant: bool = False  # coloured in the terminal
    dagger: bool = False  # the difference vs the reference is Holm-significant
    sign: int = 0
    numeric: bool = True


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def format_value(metric: str, value: float) -> str:
    """33.55 for acc/recall (percent), 0.2345 for MRR/NDCG; an em dash for a missing value."""
    if _missing(value):
        return "—"
    return f"{100 * value:.2f}" if metric in PERCENT_METRICS else f"{value:.4f}"


def format_diff(metric: str, value: float) -> str:
    if _missing(value):
        return "—"
    text = f"{100 * value:+.2f}" if metric in PERCENT_METRICS else f"{value:+.4f}"
    return text[1:] if float(text) == 0 else text  # no sign on a difference that rounds to zero


def format_p(value: float) -> str:
    if _missing(value):
        return "—"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _metric_order(metric: str) -> list[str]:
    return [metric, *(m for m in METRICS if m != metric)]


def _headers(table: LeaderboardTable) -> list[tuple[str, str]]:
    """(header, alignment l/r) of every displayed column."""
    unit = lambda m: f"{METRIC_LABELS[m]}{' %' if m in PERCENT_METRICS else ''}"  # noqa: E731
    metrics = _metric_order(table.metric)
    ci = f"({table.confidence:.0%} CI)"
    headers = [("#", "r"), ("Cell", "l"), ("Mode", "l"), (f"{unit(metrics[0])} {ci}", "r")]
    headers += [(unit(m), "r") for m in metrics[1:]]
    if table.has_reference:
        headers += [(f"Δ {unit(table.metric)} vs ref {ci}", "r"), ("Holm p", "r"), ("W/T/L", "r")]
    headers += [("Episodes", "r"), ("Seeds", "r"), ("Seed sd", "r"), ("Train s", "r")]
    return headers


def _emphasis(texts: list[str]) -> list[str | None]:
    """Best (max) and second-best displayed value of a column; equal displayed values share a mark."""
    values = [float(t) if t not in ("—", "") else -math.inf for t in texts]
    distinct = sorted({v for v in values if v != -math.inf}, reverse=True)
    marks = {distinct[0]: "best"} if distinct else {}
    if len(distinct) > 1:
        marks[distinct[1]] = "second"
    return [marks.get(v) for v in values]


def _display_rows(table: LeaderboardTable) -> list[list[_Cell]]:
    metrics = _metric_order(table.metric)
    frame = table.rows
    columns: list[list[_Cell]] = [
        [_Cell(str(r)) for r in frame["rank"]],
        [_Cell(str(c), numeric=False) for c in frame["cell"]],
        [_Cell(str(m), numeric=False) for m in frame["mode"]],
    ]
    for j, m in enumerate(metrics):
        texts = [format_value(m, v) for v in frame[f"{m}_mean"]]
        marks = _emphasis(texts) if len(frame) > 1 else [None] * len(frame)
        details = (
            [f"[{format_value(m, lo)}, {format_value(m, hi)}]" for lo, hi in zip(frame[f"{m}_ci_low"], frame[f"{m}_ci_high"])]
            if j == 0
            else [""] * len(frame)
        )
        columns.append([_Cell(t, d, e) for t, d, e in zip(texts, details, marks)])
    if table.has_reference:
        m = table.metric
        diff, p, wtl = [], [], []
        for _, row in frame.iterrows():
            if row["is_reference"]:
                diff.append(_Cell("reference", numeric=False))
                p.append(_Cell("—"))
                wtl.append(_Cell("—"))
                continue
            missing = _missing(row["diff_mean"])
            diff.append(
                _Cell(
                    format_diff(m, row["diff_mean"]),
                    "" if missing else f"[{format_diff(m, row['diff_ci_low'])}, {format_diff(m, row['diff_ci_high'])}]",
                    significant=bool(row["significant"]),
                    dagger=bool(row["significant"]),
                    sign=0 if missing else int(np.sign(row["diff_mean"])),
                )
            )
            p.append(_Cell(format_p(row["p_holm"]), significant=bool(row["significant"])))
            wtl.append(_Cell("—" if _missing(row["wins"]) else f"{row['wins']}/{row['ties']}/{row['losses']}"))
        columns += [diff, p, wtl]
    columns.append([_Cell(str(n)) for n in frame["n_episodes"]])
    columns.append([_Cell(str(n)) for n in frame["n_seeds"]])
    columns.append([_Cell(format_value(table.metric, s)) for s in frame[f"{table.metric}_seed_std"]])
    columns.append([_Cell("—" if _missing(t) else f"{t:.1f}") for t in frame["train_seconds"]])
    return [list(row) for row in zip(*columns)]


# ---------------------------------------------------------------------------------------------
# Renderers


def rich_table(table: LeaderboardTable):
    """The terminal table: best bold, second underlined, significant differences with a dagger in colour."""
    from rich.table import Table
    from rich.text import Text

    out = Table(title=table.title, caption="\n".join(table.notes), caption_justify="left", show_lines=False)
    for header, align in _headers(table):
        out.add_column(header, justify="right" if align == "r" else "left", no_wrap=True)
    for cells, is_reference in zip(_display_rows(table), table.rows["is_reference"]):
        rendered = []
        for cell in cells:
            style = {"best": "bold", "second": "underline"}.get(cell.emphasis or "", "")
            if cell.significant:
                style = f"bold {'green' if cell.sign >= 0 else 'red'}"
            text = Text(cell.text, style=style)
            if cell.dagger:
                text.append(DAGGER, style=style)
            if cell.detail:
                text.append(f" {cell.detail}", style="dim")
            rendered.append(text)
        out.add_row(*rendered, style="italic" if is_reference else None)
    return out


def print_report(tables: list[LeaderboardTable], console=None) -> None:
    from rich.console import Console

    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
            console = Console(width=250)
    for table in tables:
        console.print(rich_table(table))
        console.print()


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}
_LATEX_UNICODE = {"Δ": r"$\Delta$", "—": "---", "†": r"$^\dagger$", "·": r"$\cdot$", "±": r"$\pm$"}


def latex_escape(text: str) -> str:
    """Text safe in LaTeX: the ten special characters escaped, the few non-ASCII signs we use spelled out."""
    escaped = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    return "".join(_LATEX_UNICODE.get(ch, ch) for ch in escaped)


def _latex_number(text: str) -> str:
    # a text-mode hyphen is not a minus sign, and "<" is not a less-than sign in OT1 fonts
    return re.sub(r"-(?=\d)", "$-$", latex_escape(text)).replace("<", "$<$")


def _latex_cell(cell: _Cell) -> str:
    text = _latex_number(cell.text) if cell.numeric else latex_escape(cell.text)
    if cell.emphasis == "best":
        text = rf"\textbf{{{text}}}"
    elif cell.emphasis == "second":
        text = rf"\underline{{{text}}}"
    if cell.dagger:
        text += r"$^\dagger$"
    if cell.detail:
        text += rf" {{\scriptsize {_latex_number(cell.detail)}}}"
    return text


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def to_latex(tables: list[LeaderboardTable], caption: str | None = None, label: str | None = None) -> str:
    """booktabs tables, one per leaderboard. ``caption`` is LaTeX (passed through as given); names
    from the results are escaped. With several tables the caption gets the table's setting and the
    label a suffix ``:<dataset>-K<K>-Q<Q>``."""
    out = ["% \\usepackage{booktabs}", "% generated by `python -m bench export latex`", ""]
    for table in tables:
        headers = _headers(table)
        setting = rf"{latex_escape(table.dataset)}, $K={table.K}$, $Q={table.Q}$"
        if caption is None:
            text = (
                rf"{setting}: {latex_escape(METRIC_LABELS[table.metric])} mean over test episodes with {latex_escape(f'{table.confidence:.0%}')} percentile "
                rf"bootstrap CI ({table.n_resamples:,} resamples); best in bold, second underlined."
            )
            if table.has_reference:
                text += (
                    rf" $\Delta$: difference vs {latex_escape(table.reference)} on the same episodes (paired bootstrap CI);"
                    r" $^\dagger$: Holm-adjusted paired sign-flip test $p < 0.05$."
                )
        else:
            text = caption if len(tables) == 1 else f"{caption} ({setting})"
        out += [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{text}}}"]
        if label:
            suffix = "" if len(tables) == 1 else f":{_slug(f'{table.dataset}-K{table.K}-Q{table.Q}')}"
            out.append(rf"\label{{{label}{suffix}}}")
        out.append(r"\begin{tabular}{" + "".join(a for _, a in headers) + "}")
        out.append(r"\toprule")
        out.append(" & ".join(latex_escape(h) for h, _ in headers) + r" \\")
        out.append(r"\midrule")
        for cells in _display_rows(table):
            out.append(" & ".join(_latex_cell(c) for c in cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(out)


def _markdown_cell(cell: _Cell) -> str:
    text = cell.text
    if cell.emphasis == "best":
        text = f"**{text}**"
    elif cell.emphasis == "second":
        text = f"<u>{text}</u>"
    if cell.dagger:
        text += DAGGER
    if cell.detail:
        text += f" {cell.detail}"
    return text.replace("|", r"\|")


def to_markdown(tables: list[LeaderboardTable]) -> str:
    """Pipe tables (GitHub style), one per leaderboard, each with its notes below it."""
    out = []
    for table in tables:
        headers = _headers(table)
        out += [f"### {table.title}", ""]
        out.append("| " + " | ".join(h.replace("|", r"\|") for h, _ in headers) + " |")
        out.append("|" + "|".join("---:" if a == "r" else ":---" for _, a in headers) + "|")
        for cells in _display_rows(table):
            out.append("| " + " | ".join(_markdown_cell(c) for c in cells) + " |")
        out.append("")
        out += [f"_{note}_  " for note in table.notes]
        out.append("")
    return "\n".join(out)


def to_frame(tables: list[LeaderboardTable]) -> pd.DataFrame:
    """All tables' rows in one DataFrame (numbers unformatted), with the sort metric and reference."""
    frames = []
    for table in tables:
        frame = table.rows.copy()
        frame.insert(2, "dataset_hash", table.dataset_hash)
        frame["sort_metric"] = table.metric
        frame["reference"] = table.reference if table.has_reference else ""
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def to_csv(tables: list[LeaderboardTable]) -> str:
    """CSV with separate numeric columns per metric (``<metric>_mean``, ``_ci_low``, ``_ci_high``, ``_seed_std``)."""
    buffer = io.StringIO()
    to_frame(tables).to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# CLI


def _tables_from_args(args: argparse.Namespace) -> list[LeaderboardTable]:
    from bench.store import load_results

    metric = check_metric(args.metric)
    if args.reference is not None:
        parse_reference(args.reference)
    results = load_results(args.results)
    if args.grid:
        from bench.grid import grid_run_hashes, load_grid

        results = results.only(grid_run_hashes(load_grid(args.grid), results.runs))
        if not results.runs:
            raise BenchError(f"no complete runs of grid {args.grid!r} in {args.results}", f"run `python -m bench run --grid {args.grid}` first")
    return leaderboard(
        results,
        reference=args.reference or DEFAULT_REFERENCE,
        metric=metric,
        dataset=args.dataset,
        require_reference=args.reference is not None,
    )


def _report_command(args: argparse.Namespace) -> int:
    if args.html:  # the one-file HTML page (bench/html.py)
        from bench.html import write_html_report

        return write_html_report(args)
    print_report(_tables_from_args(args))
    return 0


def _export_command(args: argparse.Namespace) -> int:
    tables = _tables_from_args(args)
    if args.format == "latex":
        text = to_latex(tables, caption=args.caption, label=args.label)
    elif args.format == "markdown":
        text = to_markdown(tables)
    else:
        text = to_csv(tables)
    if args.out in (None, "-"):
        sys.stdout.write(text)
    else:
        atomic_write_text(Path(args.out), text)
        print(f"wrote {args.out} ({len(tables)} table(s), {args.format})")
    if args.figures:  # the figures and a figures.tex including them (bench/figures)
        from bench.figures.cli import export_figures

        export_figures(args, tables)
    return 0


def register(subparsers) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--results", default=DEFAULT_RESULTS, help=f"results folder (default {DEFAULT_RESULTS}/)")
    common.add_argument("--dataset", default=None, help="only this dataset (default: every dataset)")
    common.add_argument("--grid", default=None, help="only the runs this grid declares (preset name or .toml path; default: every run)")
    common.add_argument(
        "--reference", default=None, metavar="CELL:MODE",
        help=f"row the others are compared with (default {DEFAULT_REFERENCE}; a table without it has no comparison columns)",
    )
    common.add_argument("--metric", default=DEFAULT_METRIC, help=f"sort and compare by ({', '.join(METRICS)}; default {DEFAULT_METRIC})")

    report = subparsers.add_parser(
        "report", parents=[common], help="print the leaderboard: means with 95%% CIs, paired comparisons vs a reference",
    )
    report.add_argument("--html", default=None, metavar="FILE", help="write one self-contained HTML page (tables, figures, provenance) instead")
    report.set_defaults(func=_report_command)

    export = subparsers.add_parser("export", parents=[common], help="write the leaderboard as LaTeX (booktabs), markdown or CSV")
    export.add_argument("format", choices=EXPORT_FORMATS)
    export.add_argument("--out", default=None, help="output file, written atomically (default or '-': stdout)")
    export.add_argument("--caption", default=None, help="LaTeX caption (LaTeX markup allowed; default describes the table)")
    export.add_argument("--label", default=None, help="LaTeX \\label (suffixed per table when there are several)")
    export.add_argument("--figures", default=None, metavar="DIR", help="also write the figures there and DIR/figures.tex (\\includegraphics and captions)")
    export.set_defaults(func=_export_command)
