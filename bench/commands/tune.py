"""`python -m bench tune`: equal-budget hyperparameter search on val only (bench/run/tune.py)."""

from __future__ import annotations

import argparse

from bench.commands.common import SHOTS_HELP, check_shots, open_grid_datasets, parse_shots, with_shots
from bench.core.errors import BenchError
from bench.core.paths import DEFAULT_RESULTS, default_data_dir
from bench.output.tuning import tuning_markdown
from bench.plan.grid import available_grids, expand, load_grid
from bench.run import pruning
from bench.run.lock import StoreLock
from bench.run.studies import TUNING_DIR, tuning_store
from bench.run.tune import SPLIT, tune_cells, tune_grid


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="tune each cell's declared search space on val (Optuna TPE after a random start-up, same N trials per cell); resumable",
        description=(
            "Tune each cell's declared search space on the val episodes: N trials per cell, trial 0 the grid's own settings. "
            "Sampler: Optuna's TPE (multivariate), its first min(10, max(2, N // 3)) trials random (trial 0 among them), "
            "every later one proposed by TPE. Pruner (median): no trial is judged before half its budget (max_epochs or "
            "meta_iterations) nor before half the cell's trials are complete. docs/tuning.md defines the budget."
        ),
    )
    parser.add_argument("--grid", default="default", help=f"preset ({', '.join(available_grids())}) or a .toml path")
    parser.add_argument("--shots", metavar="K:Q,...", help=f"replaces the grid's shots for every dataset ({SHOTS_HELP}); as `run --shots`")
    parser.add_argument(
        "--trials",
        type=int,
        required=True,
        help="trials per tuned cell (completed + pruned; trial 0 is the grid's own settings); 4 or more for TPE to propose at least two",
    )
    parser.add_argument("--jobs", type=int, default=1, help="trials of a cell in parallel processes (asked J at a time)")
    parser.add_argument(
        "--timeout-per-cell", type=float, default=None, metavar="S", help="stop asking a cell for trials once S seconds are spent on it"
    )
    parser.add_argument(
        "--pruner",
        choices=("median", "none"),
        default="median",
        help=(
            "median (default): from half its budget on, stop a trial whose val curve is below the median of the complete "
            "trials' at the same step, once half the cell's trials are complete; none: run every trial whole"
        ),
    )
    parser.add_argument("--results", default=DEFAULT_RESULTS, help=f"result folder (default: {DEFAULT_RESULTS}/); trials go to RESULTS/{TUNING_DIR}/")
    parser.add_argument("--data-dir", default=default_data_dir(), help="data folder (default: data/ or $BENCH_DATA_DIR)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.set_defaults(func=tune_command)


def open_datasets(names, data_dir: str) -> dict:
    """The grid's datasets (a built-in one built on first use, as `run` does)."""
    return open_grid_datasets(names, data_dir)


def tune_command(args: argparse.Namespace) -> int:
    if args.trials < 1:
        raise BenchError(f"--trials {args.trials} must be at least 1", "write e.g. --trials 8")
    if args.jobs < 1:
        raise BenchError(f"--jobs {args.jobs} must be at least 1", "write e.g. --jobs 2")
    grid = with_shots(load_grid(args.grid), parse_shots(args.shots))
    seeds = [grid.seeds[0]]  # trials run at the grid's first seed
    expand(grid, dict.fromkeys(grid.datasets, ""), seeds)  # every value checked before a dataset is opened
    datasets = open_datasets(grid.datasets, args.data_dir)
    runs = expand(grid, {name: ds.content_hash for name, ds in datasets.items()}, seeds)
    check_shots(datasets, runs, splits=(SPLIT, "train"))  # trials train on train, are scored on val: never test
    for run in runs:  # trials are scored on val: refuse an impossible K/Q there (test is never opened)
        datasets[run.dataset].episodes(SPLIT, run.K, run.Q, run.population_K)
    from bench.methods.registry import check_run

    for run in runs:  # refuse what a dataset cannot serve (a checkpoint's vocabulary, missing session statistics)
        check_run(run.method, run.init, run.params_dict, datasets[run.dataset])
    cells, _ = tune_cells(grid, runs)
    store = tuning_store(args.results)
    print(f"tuning {len(cells)} cells of grid {grid.name}: {args.trials} trials each on {SPLIT}, trials stored in {store.root}", flush=True)
    with StoreLock(store):
        summaries = tune_grid(
            grid,
            runs,
            args.results,
            args.data_dir,
            args.trials,
            args.jobs,
            args.timeout_per_cell,
            args.device,
            notice=lambda line: print(line, flush=True),
            pruner=pruning.PRUNER if args.pruner == "median" else pruning.NONE,
        )
    print()
    print(tuning_markdown(summaries))
    return 1 if any(s.failed for s in summaries) else 0
