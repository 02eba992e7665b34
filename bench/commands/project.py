"""`python -m bench project --grid full --from full-short`: a grid's cost PROJECTED from measured runs."""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from bench.commands.common import parse_seeds
from bench.core.paths import DEFAULT_RESULTS
from bench.run import projection


def project_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    speedup = projection.load_speedup(args.speedup_from) if args.speedup_from else None
    seeds = parse_seeds(args.seeds)
    patiences = args.patience or []
    variants = projection.project_grids(args.grid, args.source, projection.patience_variants(patiences), args.results, speedup, seeds)
    runs = variants[0]  # the grid as declared; the others replay each --patience
    by_cell: dict[str, list[projection.Projected]] = defaultdict(list)
    for run in runs:
        by_cell[run.cell].append(run)
    scaled = f", meta-learned {projection.SPEEDUP_ENGINE} runs sped up by {escape(args.speedup_from)}" if speedup else ""
    only = f" (seed(s) {escape(args.seeds)} only; other seeds cost what the first one's run did)" if seeds else ""
    table = Table(title=f"PROJECTION (not measured): grid {escape(args.grid)} from the measured runs of grid {escape(args.source)}{only}{scaled}")
    for column in ("cell", "runs", "measured min/run", "projected min/run", "scaling (first seed)"):
        table.add_column(column, justify="left" if column.startswith(("cell", "scaling")) else "right", overflow="fold")
    for cell, cell_runs in sorted(by_cell.items(), key=lambda item: -sum(r.projected_s for r in item[1])):
        n = len(cell_runs)
        table.add_row(
            escape(cell),
            str(n),
            f"{sum(r.measured_s for r in cell_runs) / n / 60:.1f}",
            f"{sum(r.projected_s for r in cell_runs) / n / 60:.1f}",
            cell_runs[0].how,
        )
    console.print(table)
    durations = [r.projected_s for r in runs]
    total, longest = sum(durations), max(durations)
    console.print(
        f"PROJECTION: {len(runs)} runs, {total / 3600:.1f} h of single-thread work; the longest run {longest / 60:.0f} min (a floor for any "
        f"number of workers)"
    )
    for workers in projection.WORKERS:
        console.print(
            f"  on {workers:>2} single-thread workers (--jobs {workers} or a Ray cluster of {workers} CPUs): "
            f"{projection.schedule(durations, workers) / 3600:5.1f} h wall at least"
        )
    early = [r for r in runs if r.stop is not None]
    if early:
        n = sum(r.stop == projection.MEASURED_STOP for r in early)
        console.print(
            f"early stopping (val_patience): {n} of {len(early)} runs {projection.MEASURED_STOP} (where the source run's measured curve "
            f"shows the patience running out); the other {len(early) - n}: {projection.FULL_BUDGET}"
        )
    if speedup:
        ratios = ", ".join(
            f"{t} thread(s): x{r['iteration']:.2f} per meta-iteration, x{r['validation']:.2f} per validation"
            for t, r in sorted(speedup["by_threads"].items())
        )
        console.print(
            f"PROJECTION, not a measurement: the {projection.SPEEDUP_ENGINE} runs' measured seconds per meta-iteration and per validation "
            f"divided by the "
            f"batched/batched-v1 ratios measured in {escape(speedup['path'])} ({ratios}; the run's thread count where the file has it), assuming "
            f"those runs were measured on batched-v1; their test evaluation as measured"
        )
    console.print(
        "measured costs carry the conditions of the source runs (threads, machine, processes beside them); "
        "GRU4Rec/SASRec at their epoch limit (early stopping can end them sooner)"
    )
    if patiences:
        replays = [projection.summarize_patience(p, v) for p, v in zip([None, *patiences], variants)]
        print_patience_replay(console, args, replays)
    return 0


def print_patience_replay(console, args: argparse.Namespace, rows: list) -> None:
    """The grid as declared, then each ``--patience`` as its val_patience, replayed on the source's curves."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"PATIENCE REPLAY (a projection from measured curves): val_patience on grid {escape(args.grid)}'s meta-learned runs, "
        f"replayed on the validation curves of grid {escape(args.source)}'s runs"
    )
    for column in ("val_patience", "stopped early", "cut", "val lost: median / max", "meta-its trained", "h of work", "h on 2 workers"):
        table.add_column(column, justify="right", overflow="fold")
    for row in rows:
        lost = sorted(100 * r.lost for r in row.cut)
        median = statistics.median(lost) if lost else None
        table.add_row(
            "unset" if row.patience is None else str(row.patience),
            f"{len(row.stopped)} of {row.meta_runs}",
            f"{len(row.cut)}" + (f" (+{row.unknown} unmeasured)" if row.unknown else ""),
            f"{median:.2f} / {lost[-1]:.2f}" if lost else "-",
            f"{100 * row.trained / max(row.budget, 1):.0f}%",
            f"{sum(row.durations) / 3600:.2f}",
            f"{projection.schedule(list(row.durations), 2) / 3600:.2f}",
        )
    console.print(table)
    for row in rows:
        if row.cut:
            cut = ", ".join(f"{escape(r.cell)} seed {r.seed} at {r.stop_at} (-{100 * r.lost:.2f})" for r in sorted(row.cut, key=lambda r: -r.lost))
            console.print(f"val_patience {row.patience} cuts: {cut}")
    console.print(
        "cut: stopped runs whose measured curve (no early stopping) later beats their best val Acc@1 up to the stop; val lost: by "
        "how much, in points of val Acc@1, over the cut runs (the test scores the checkpoint best on val); unmeasured: the source "
        "curve ends before the target's budget. Hours: single-thread work, and a lower bound on 2 workers (longest first, as above)"
    )


def register(subparsers) -> None:
    parser = subparsers.add_parser("project", help="project a grid's cost from the measured runs of a cheaper grid with the same runs")
    parser.add_argument("--grid", default="full", help="the grid to project (default full)")
    parser.add_argument("--from", dest="source", default="full-short", help="the measured grid: same runs, smaller budget (default full-short)")
    parser.add_argument(
        "--seeds",
        default=None,
        help="the source grid was run at these seeds only (`run --seeds 0`): other seeds are projected from the first one's runs",
    )
    parser.add_argument("--results", default=DEFAULT_RESULTS, help=f"result store folder (default: {DEFAULT_RESULTS}/)")
    parser.add_argument(
        "--speedup-from",
        default=None,
        metavar="PERF_JSON",
        help="results/reference/perf-full.json (a perf file that timed batched-v1): scale the batched runs' measured "
        "meta-iteration and validation costs by its measured speed-up (a PROJECTION)",
    )
    parser.add_argument(
        "--patience",
        default=None,
        type=_patiences,
        metavar="P[,P...]",
        help="replay each val_patience (validations without a new best before meta-training stops) on the source runs' "
        "measured curves: runs stopped, runs cut while a later validation was better, val Acc@1 lost, cost",
    )
    parser.set_defaults(func=project_command)


def _patiences(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers (write e.g. --patience 5,10,20)") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: a patience is at least 1 validation (write e.g. --patience 5,10,20)")
    return values
