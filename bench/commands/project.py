"""`python -m bench project --grid full --from full-short`: a grid's cost PROJECTED from measured runs."""

from __future__ import annotations

import argparse
from collections import defaultdict

from bench.core.paths import DEFAULT_RESULTS
from bench.run import projection


def project_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    runs = projection.project_grid(args.grid, args.source, args.results)
    by_cell: dict[str, list[projection.Projected]] = defaultdict(list)
    for run in runs:
        by_cell[run.cell].append(run)
    table = Table(title=f"PROJECTION (not measured): grid {escape(args.grid)} from the measured runs of grid {escape(args.source)}")
    for column in ("cell", "runs", "measured min/run", "projected min/run", "scaling (first seed)"):
        table.add_column(column, justify="left" if column.startswith(("cell", "scaling")) else "right", overflow="fold")
    for cell, cell_runs in sorted(by_cell.items(), key=lambda item: -sum(r.projected_s for r in item[1])):
        n = len(cell_runs)
        table.add_row(escape(cell), str(n), f"{sum(r.measured_s for r in cell_runs) / n / 60:.1f}", f"{sum(r.projected_s for r in cell_runs) / n / 60:.1f}", cell_runs[0].how)
    console.print(table)
    durations = [r.projected_s for r in runs]
    total, longest = sum(durations), max(durations)
    console.print(f"PROJECTION: {len(runs)} runs, {total / 3600:.1f} h of single-thread work; the longest run {longest / 60:.0f} min (a floor for any number of workers)")
    for workers in projection.WORKERS:
        console.print(f"  on {workers:>2} single-thread workers (--jobs {workers} or a Ray cluster of {workers} CPUs): {projection.schedule(durations, workers) / 3600:5.1f} h wall at least")
    console.print(
        "measured costs carry the conditions of the source runs (threads, machine, processes beside them); "
        "GRU4Rec/SASRec at their epoch limit (early stopping can end them sooner)"
    )
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("project", help="project a grid's cost from the measured runs of a cheaper grid with the same runs")
    parser.add_argument("--grid", default="full", help="the grid to project (default full)")
    parser.add_argument("--from", dest="source", default="full-short", help="the measured grid: same runs, smaller budget (default full-short)")
    parser.add_argument("--results", default=DEFAULT_RESULTS, help=f"result store folder (default: {DEFAULT_RESULTS}/)")
    parser.set_defaults(func=project_command)
