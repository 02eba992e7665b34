"""`python -m bench project --grid full --from full-short`: a grid's cost PROJECTED from measured runs."""

from __future__ import annotations

import argparse
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
    runs = projection.project_grid(args.grid, args.source, args.results, speedup, seeds)
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
    return 0


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
    parser.set_defaults(func=project_command)
