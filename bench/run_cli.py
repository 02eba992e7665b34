"""`python -m bench run`: expand a grid, run what is not yet complete, print the leaderboard."""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bench.errors import BenchError
from bench.grid import RunConfig, available_grids, expand, load_grid, parse_sets
from bench.runner import Outcome, StoreLock, run_grid
from bench.store import Store

BUILTIN_DATASET = "xuetangx-synth"


def register(subparsers) -> None:
    from bench.cli import default_data_dir

    parser = subparsers.add_parser("run", help="run a grid of (dataset, method, init, seed, K/Q) runs; resumable")
    parser.add_argument("--grid", default="default", help=f"preset ({', '.join(available_grids())}) or a .toml path")
    parser.add_argument("--dataset", action="append", help="dataset name (repeatable); replaces the grid's datasets")
    parser.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2; replaces the grid's seeds")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (torch threads split between them)")
    parser.add_argument("--results", default="results", help="result store folder (default: results/)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="override a parameter in every method that has it")
    parser.add_argument("--engine", choices=["per-task", "batched", "notebook"], help="inner-loop engine for MAML methods (same as --set engine=...)")
    parser.add_argument("--data-dir", default=default_data_dir(), help="data folder (default: data/ or $BENCH_DATA_DIR)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--quiet", action="store_true", help="one line per finished run, no progress display")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and whether each is complete, run nothing")
    parser.set_defaults(func=run_command)


def _open_datasets(names: list[str], data_dir: str, console: Console) -> dict:
    from bench.data.store import open_dataset

    datasets = {}
    for name in names:
        try:
            datasets[name] = open_dataset(name, data_dir)
        except BenchError:
            if name != BUILTIN_DATASET:
                raise
            from bench.data.synth import build_synthetic

            console.print(f"building the built-in dataset {name} in {data_dir} ...")
            datasets[name] = build_synthetic(name, data_dir)
    return datasets


def run_command(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    grid = load_grid(args.grid)
    overrides = parse_sets(args.sets)
    if args.engine:
        overrides["engine"] = args.engine
    seeds = None
    if args.seeds:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise BenchError(f"--seeds {args.seeds!r} is not a comma-separated list of integers", "write e.g. --seeds 0,1,2") from None
    if args.jobs < 1:
        raise BenchError(f"--jobs {args.jobs} must be at least 1", "write e.g. --jobs 2")
    datasets = _open_datasets(args.dataset or list(grid.datasets), args.data_dir, console)
    runs = expand(grid, {name: ds.content_hash for name, ds in datasets.items()}, seeds, overrides)
    for name, ds in datasets.items():  # refuse impossible K/Q before any run starts
        for K, Q in sorted({(r.K, r.Q) for r in runs if r.dataset == name}):
            for split in ("train", "val", "test"):
                ds.episodes(split, K, Q)
    from meta.inits import check_init

    for run in runs:  # refuse an init that cannot fit its dataset (a checkpoint's vocabulary) before any run starts
        check_init(run.init, run.params_dict, datasets[run.dataset])
    store = Store(args.results)  # created only once the grid is known to be runnable

    if args.dry_run:
        for run in runs:
            state = "complete" if store.is_complete(run.hash) else "to run"
            console.print(f"{run.hash}  {run.dataset}  K={run.K} Q={run.Q}  seed={run.seed}  {run.cell}  ({state})", markup=False, soft_wrap=True)
        return 0

    with StoreLock(store):
        outcomes = _run_with_display(runs, args, store, console)
    failed = [o for o in outcomes if o.error]
    for outcome in failed:
        console.print(f"[red]run {outcome.config.hash} ({escape(outcome.config.cell)}, seed {outcome.config.seed}) failed:[/red]\n{escape(outcome.error)}")

    from bench.report import leaderboard, print_report
    from bench.store import load_results

    subset = load_results(store.root).only({r.hash for r in runs})
    if subset.runs:
        print_report(leaderboard(subset), console=console if console.is_terminal else None)
    return 1 if failed else 0


def _describe(config: RunConfig) -> str:
    return f"{config.cell} seed={config.seed} K={config.K}"


def _markup(config: RunConfig) -> str:
    """``_describe`` safe inside rich markup (cell labels such as ``maml[random]`` look like tags)."""
    return escape(_describe(config))


def _run_with_display(runs: list[RunConfig], args, store: Store, console: Console) -> list[Outcome]:
    total = len(runs)
    already = sum(store.is_complete(r.hash) for r in runs)
    by_hash = {r.hash: r for r in runs}
    t0 = time.perf_counter()
    if already:
        console.print(f"{already} of {total} runs already complete in {store.root}: skipped")
    live = console.is_terminal and not args.quiet

    if not live:
        counter = [already]
        last_phase: dict[str, str] = {}

        def on_start(config):
            if not args.quiet:
                print(f"start {config.hash} {_describe(config)}", flush=True)

        def on_progress(run_hash, phase, done, total_steps):
            if not args.quiet and last_phase.get(run_hash) != phase:
                last_phase[run_hash] = phase
                print(f"  {run_hash} {phase}", flush=True)

        def on_done(outcome):
            counter[0] += 1
            status = "failed" if outcome.error else f"done in {outcome.record['wall_seconds']:.1f} s"
            print(f"[{counter[0]}/{total}] {outcome.config.hash} {_describe(outcome.config)}: {status}", flush=True)

        outcomes = run_grid(runs, args.data_dir, store, args.jobs, args.device, on_start, on_progress, on_done)
    else:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            overall = progress.add_task(f"grid {args.grid}", total=total, completed=already)
            tasks: dict[str, int] = {}

            def on_start(config):
                tasks[config.hash] = progress.add_task(f"  {_markup(config)}: starting", total=None)

            def on_progress(run_hash, phase, done, total_steps):
                if run_hash in tasks:
                    progress.update(tasks[run_hash], description=f"  {_markup(by_hash[run_hash])}: {phase}", completed=done, total=total_steps or None)

            def on_done(outcome):
                task = tasks.pop(outcome.config.hash, None)
                if task is not None:
                    progress.remove_task(task)
                progress.advance(overall)
                status = "[red]failed[/red]" if outcome.error else f"{outcome.record['wall_seconds']:.1f} s"
                progress.console.print(f"done {_markup(outcome.config)}: {status}")

            outcomes = run_grid(runs, args.data_dir, store, args.jobs, args.device, on_start, on_progress, on_done)
    console.print(f"grid {args.grid}: {len(outcomes)} runs in {time.perf_counter() - t0:.1f} s")
    return outcomes
