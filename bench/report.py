"""Leaderboards from the result store: `python -m bench report` and `python -m bench export`.

One function, :func:`leaderboard`, turns the store's per-episode metrics into tables (one per
dataset, data version, K and Q; one row per cell and mode). The renderers in :mod:`bench.render`
(terminal, LaTeX, markdown, CSV) format those same tables, so they cannot disagree. The
statistics themselves are in :mod:`bench.stats`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
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


def _episodes_with_identity(results: Any, allow_mixed_code: bool = False) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The complete runs' episode rows, with ``dataset_hash``, ``variant`` and ``code`` (the code
    fingerprint, "" for runs stored before fingerprints) from each run.json.

    Runs of one cell made by different code are refused, unless ``allow_mixed_code``: then they
    pool, and where one seed was run by several code versions only its newest run is kept.
    """
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
    # the code is not a setting: runs differing only by it are the same cell, made by other code
    episodes["variant"] = episodes["run"].map({h: _variant({k: v for k, v in c.items() if k != "code"}) if c else "" for h, c in configs.items()})
    episodes["code"] = episodes["run"].map({h: str(c.get("code") or "") for h, c in configs.items()})
    cell_key = ["dataset", "dataset_hash", "K", "Q", "cell", "variant"]
    codes = episodes.groupby(cell_key, sort=True)["code"].unique()
    mixed = codes[codes.map(len) > 1]
    if len(mixed) and not allow_mixed_code:
        (dataset, _, K, _, cell, _), found = next(iter(mixed.items()))
        shown = ", ".join(sorted(code or "none recorded" for code in found))
        raise BenchError(
            f"cell {cell} ({dataset}, K={K}) has runs made by {len(found)} versions of the code (fingerprints {shown}); they cannot be pooled",
            "show only the current code's runs with --grid NAME after rerunning it, remove the old runs from results/runs/, or pass --allow-mixed-code",
        )
    if len(mixed):  # one run per seed: the newest
        finished = episodes["run"].map({h: str(runs_by_hash.get(h, {}).get("finished") or "") for h in configs})
        newest = episodes.assign(_finished=finished).groupby([*cell_key, "seed"])["_finished"].transform("max")
        episodes = episodes[finished == newest]
    return episodes, runs_by_hash


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


def _learners(index: pd.Index) -> np.ndarray | None:
    """The learner of each episode (the resampling cluster), where the episode index names it."""
    return index.get_level_values("user_id").to_numpy() if "user_id" in index.names else None


def _summary_row(complete: pd.DataFrame, n_resamples: int, confidence: float, seed: int) -> dict[str, Any]:
    row: dict[str, Any] = {"n_episodes": len(complete), "n_seeds": complete[METRICS[0]].shape[1]}
    per_seed = {m: complete[m].to_numpy().T for m in METRICS}  # [n_seeds, n_episodes] per metric
    summaries = stats.summarize_cells(per_seed, confidence, n_resamples, seed, clusters=_learners(complete.index))
    for m, summary in summaries.items():
        # every metric lies in [0, 1]; a t interval over two or three seeds can reach past it
        low, high = max(summary.ci_low, 0.0), min(summary.ci_high, 1.0)
        row.update({f"{m}_mean": summary.mean, f"{m}_ci_low": low, f"{m}_ci_high": high, f"{m}_seed_std": summary.seed_std})
    return row


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
        configs = {int(s): runs_by_hash.get(h, {}).get("config", {}) for s, h in sub.groupby("seed")["run"].first().items()}
        episode_means[(label, mode)] = (complete[metric], configs)

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
        from bench.questions import seeds_paired

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
                values.loc[common].to_numpy().T, ref_values.loc[common].to_numpy().T, seeds_paired(runs, ref_runs),
                _learners(common), confidence, n_resamples, seed,
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
        notes.append(f"No comparison columns: the reference {reference[0]}:{reference[1]} has no results in this table (choose one with --reference CELL:MODE).")

    frame = frame.sort_values([f"{metric}_mean", "cell", "mode"], ascending=[False, True, True], kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    notes.insert(
        0,
        f"Sorted by {label}. Means over seeds and test episodes with {confidence:.0%} percentile bootstrap CIs "
        f"({n_resamples:,} resamples; {_ci_scope(frame)}); Acc@1 and Recall in %, MRR and NDCG@10 in [0, 1]; "
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
    allow_mixed_code: bool = False,
) -> list[LeaderboardTable]:
    """Leaderboard tables from ``results`` (``bench.store.Results`` or its episodes DataFrame).

    One table per (dataset, data version, K, Q), rows (cell, mode) sorted by ``metric``; each row
    compared with ``reference`` ("CELL:MODE"; None: no comparisons) where that row exists. With
    ``require_reference`` a reference found in no table is an error (an explicit --reference);
    otherwise such a table simply has no comparison columns and says so in its notes. Runs of one
    cell made by different code are refused unless ``allow_mixed_code`` (then noted in the table).
    """
    check_metric(metric)
    ref_key = parse_reference(reference) if reference is not None else None
    episodes, runs_by_hash = _episodes_with_identity(results, allow_mixed_code)
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
        table = _leaderboard_table(group, runs_by_hash, metric, ref_key, n_resamples, confidence, seed)
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




# ---------------------------------------------------------------------------------------------
# CLI (the renderers live in bench/render/: cells, terminal, latex, markdown, csv)


def _results_from_args(args: argparse.Namespace):
    from bench.store import load_results

    results = load_results(args.results)
    if args.grid:
        results = results.of_grid(args.grid, args.results, any_code=args.allow_mixed_code)
    return results


def _tables_from_args(args: argparse.Namespace, results=None) -> list[LeaderboardTable]:
    metric = check_metric(args.metric)
    if args.reference is not None:
        parse_reference(args.reference)
    return leaderboard(
        _results_from_args(args) if results is None else results,
        reference=args.reference or DEFAULT_REFERENCE,
        metric=metric,
        dataset=args.dataset,
        require_reference=args.reference is not None,
        allow_mixed_code=args.allow_mixed_code,
    )


def questions_from_args(args: argparse.Namespace, results) -> list:
    """The declared questions of ``--grid`` answered on ``results`` (none without --grid)."""
    from bench.questions import answer_questions, questions_for

    if not args.grid:
        return []
    return list(answer_questions(results, questions_for(args.grid), metric=args.metric, dataset=args.dataset, grid=args.grid))


def dataset_header(tables: list[LeaderboardTable], data_dir) -> list[str]:
    """Diagnostics lines of each table's dataset, when the same data version is in ``data_dir``
    (reports read the store; a dataset moved away or rebuilt simply has no header)."""
    from bench.data import diagnostics
    from bench.data.store import open_dataset

    lines: list[str] = []
    for name, version in dict.fromkeys((t.dataset, t.dataset_hash) for t in tables):
        try:
            dataset = open_dataset(name, data_dir)
        except BenchError:
            continue
        if dataset.content_hash != version or "diagnostics" not in dataset.manifest:
            continue
        lines += [f"Dataset {name} (data {version[:8]}), model-free diagnostics:", *diagnostics.summary_lines(dataset.manifest)]
    return lines


def _report_command(args: argparse.Namespace) -> int:
    from bench.render.terminal import print_report

    if args.html:  # the one-file HTML page (bench/html.py)
        from bench.html import write_html_report

        return write_html_report(args)

    results = _results_from_args(args)
    tables = _tables_from_args(args, results)
    print_report(tables, questions=questions_from_args(args, results), wide=args.wide, header=dataset_header(tables, args.data_dir))
    return 0


def _export_command(args: argparse.Namespace) -> int:
    from bench.render import csv, latex, markdown

    columns = latex.parse_columns(args.columns) if args.columns else None
    results = _results_from_args(args)
    tables = _tables_from_args(args, results)
    questions = questions_from_args(args, results)
    extra: dict[str, str] = {}
    if args.format == "latex":
        text = latex.to_latex(tables, caption=args.caption, label=args.label, columns=columns, all_columns=args.all_columns,
                              layout=args.layout, scale=args.scale, questions=questions)
    elif args.format == "markdown":
        header = "".join(f"{line}  \n" for line in dataset_header(tables, args.data_dir))
        text = (header + "\n" if header else "") + markdown.questions_to_markdown(questions) + markdown.to_markdown(tables)
    else:
        text = csv.to_csv(tables)
        if questions:  # a second table cannot share a CSV file: it goes beside it
            extra["questions"] = csv.questions_to_csv(questions)
    if args.out in (None, "-"):
        sys.stdout.write(text)
        if extra:
            print("the Questions CSV is written only with --out FILE (beside it, as FILE.questions.csv)", file=sys.stderr)
    else:
        out = Path(args.out)
        atomic_write_text(out, text)
        for name, body in extra.items():
            atomic_write_text(out.with_suffix(f".{name}.csv"), body)
        print(f"wrote {args.out} ({len(tables)} table(s), {args.format}{', with the Questions' if questions else ''})")
    if args.figures:  # the figures and a figures.tex including them (bench/figures)
        from bench.figures.cli import export_figures

        export_figures(args, tables)
    return 0


def register(subparsers) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--results", default=DEFAULT_RESULTS, help=f"results folder (default {DEFAULT_RESULTS}/)")
    common.add_argument("--dataset", default=None, help="only this dataset (default: every dataset)")
    common.add_argument("--grid", default=None, help="only the runs this grid declares, with its declared questions (preset name or .toml path; default: every run)")
    common.add_argument(
        "--reference", default=None, metavar="CELL:MODE",
        help=f"row the others are compared with (default {DEFAULT_REFERENCE}; a table without it has no comparison columns)",
    )
    common.add_argument(
        "--allow-mixed-code", action="store_true",
        help="pool runs of one cell made by different code versions (refused by default; noted in the table)",
    )
    from bench.cli import default_data_dir

    common.add_argument("--data-dir", default=default_data_dir(), help="where the datasets are, for their diagnostics in the header (default: data/ or $BENCH_DATA_DIR)")
    common.add_argument("--metric", default=DEFAULT_METRIC, help=f"sort and compare by ({', '.join(METRICS)}; default {DEFAULT_METRIC})")

    report = subparsers.add_parser(
        "report", parents=[common], help="print the leaderboard: means with 95%% CIs, paired comparisons vs a reference",
    )
    report.add_argument("--wide", action="store_true", help="every column, even beyond the terminal's width (default: the columns that fit)")
    report.add_argument("--html", default=None, metavar="FILE", help="write one self-contained HTML page (tables, figures, provenance) instead")
    report.set_defaults(func=_report_command)

    export = subparsers.add_parser("export", parents=[common], help="write the leaderboard as LaTeX (booktabs), markdown or CSV")
    export.add_argument("format", choices=EXPORT_FORMATS)
    export.add_argument("--out", default=None, help="output file, written atomically (default or '-': stdout)")
    export.add_argument("--caption", default=None, help="LaTeX caption (LaTeX markup allowed; default describes the table)")
    export.add_argument("--label", default=None, help="LaTeX \\label (suffixed per table when there are several)")
    export.add_argument("--layout", choices=("column", "page"), default="column",
                        help="LaTeX: fit one column of a two-column paper (table) or the page width (table*); default column")
    export.add_argument("--columns", default=None, metavar="A,B,C",
                        help="LaTeX columns, from: rank, cell, mode, acc@1, recall@5, recall@10, mrr, ndcg@10, delta, p, wtl, episodes, seeds, seed-sd, train-s")
    export.add_argument("--all-columns", action="store_true", help="LaTeX: every column (wider than a page; see --scale)")
    export.add_argument("--scale", action="store_true", help="LaTeX: shrink the table to the layout's width with \\resizebox (needs graphicx)")
    export.add_argument("--figures", default=None, metavar="DIR", help="also write the figures there and DIR/figures.tex (\\includegraphics and captions)")
    export.set_defaults(func=_export_command)
