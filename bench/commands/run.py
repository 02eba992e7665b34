"""`python -m bench run`: expand a grid, run what is not yet complete, print the leaderboard."""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from bench.analysis.leaderboard import leaderboard
from bench.analysis.questions import answer_questions, with_answers_by_dataset
from bench.analysis.select import dataset_header
from bench.commands.common import SHOTS_HELP, check_shots, open_grid_datasets, parse_seeds, parse_shots, with_shots
from bench.core.errors import BenchError
from bench.core.paths import DEFAULT_RESULTS, default_data_dir
from bench.output.terminal import print_report
from bench.plan.grid import RunConfig, available_grids, expand, load_grid, parse_sets, tuned_runs
from bench.run.eta import GridEta
from bench.run.execute import Outcome
from bench.run.executors import EXECUTORS, run_grid
from bench.run.lock import StoreLock
from bench.store.results import ERROR_FILE, Store, load_results


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run a grid of (dataset, method, init, seed, K/Q) runs; resumable")
    parser.add_argument("--grid", default="default", help=f"preset ({', '.join(available_grids())}) or a .toml path")
    parser.add_argument("--dataset", action="append", help="dataset name (repeatable); replaces the grid's datasets (keeping the grid's shots)")
    parser.add_argument("--shots", metavar="K:Q,...", help=f"replaces the grid's shots for every dataset of the run ({SHOTS_HELP})")
    parser.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2; replaces the grid's seeds")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (torch threads split between them)")
    parser.add_argument("--results", default=DEFAULT_RESULTS, help=f"result store folder (default: {DEFAULT_RESULTS}/)")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="override a parameter in every method that has it"
    )
    parser.add_argument("--engine", choices=["per-task", "batched", "notebook"], help="inner-loop engine for MAML methods (same as --set engine=...)")
    parser.add_argument("--data-dir", default=default_data_dir(), help="data folder (default: data/ or $BENCH_DATA_DIR)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--executor", choices=list(EXECUTORS), default="local", help="local process pool (default) or Ray tasks")
    parser.add_argument("--ray-address", help="join a running Ray cluster (e.g. 10.0.0.1:6379); default: start a local Ray instance")
    parser.add_argument("--quiet", action="store_true", help="one line per finished run, no progress display")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and whether each is complete, run nothing")
    parser.add_argument(
        "--tuned", action="store_true", help="each tuned cell with its best val trial's params (`python -m bench tune` first; other run hashes)"
    )
    parser.set_defaults(func=run_command)


def _open_datasets(names: list[str], data_dir: str, console: Console) -> dict:
    return open_grid_datasets(names, data_dir, say=console.print)


def run_command(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    overrides = parse_sets(args.sets)
    grid = with_shots(load_grid(args.grid), parse_shots(args.shots), overrides)
    if args.engine:
        overrides["engine"] = args.engine
    seeds = parse_seeds(args.seeds)
    if args.ray_address and args.executor != "ray":
        raise BenchError("--ray-address is only used with --executor ray", "add --executor ray")
    if args.jobs < 1:
        raise BenchError(f"--jobs {args.jobs} must be at least 1", "write e.g. --jobs 2")
    names = args.dataset or list(grid.datasets)
    expand(grid, dict.fromkeys(names, ""), seeds, overrides)  # every value checked before a dataset is opened or built
    datasets = _open_datasets(names, args.data_dir, console)
    runs = expand(grid, {name: ds.content_hash for name, ds in datasets.items()}, seeds, overrides)
    if args.tuned:  # every tunable cell must have a finished study (refused in one line otherwise)
        from bench.run.tune import tuned_params

        tuned = tuned_params(grid, runs, args.results)
        clash = sorted(set(overrides) & {key for params in tuned.values() for key in params})
        if clash:
            raise BenchError(f"--set {', '.join(clash)} with --tuned: tuning chose them", "drop --tuned or those --set values")
        runs = tuned_runs(runs, tuned)
    check_shots(datasets, runs)  # a dataset without a test, val or train episode at some K, Q: refused in one line each
    for name, ds in datasets.items():  # refuse impossible K/Q before any run starts
        shots = sorted({(r.K, r.Q, r.population_K) for r in runs if r.dataset == name}, key=lambda s: (s[1], s[0]))
        for K, Q, population_K in shots:
            for split in ("train", "val", "test"):
                ds.episodes(split, K, Q, population_K)
        for line in population_lines(name, ds, shots):
            console.print(line, markup=False, soft_wrap=True)
    from bench.methods.registry import check_run

    for run in runs:  # refuse, before any run starts, what a dataset cannot serve (a checkpoint's vocabulary, session statistics)
        check_run(run.method, run.init, run.params_dict, datasets[run.dataset])
    store = Store(args.results)  # created only once the grid is known to be runnable

    if args.dry_run:
        for run in runs:
            console.print(
                f"{run.hash}  {run.dataset}  K={run.K} Q={run.Q}  seed={run.seed}  {run.cell}  ({dry_run_state(store, run.hash)})",
                markup=False,
                soft_wrap=True,
            )
        return 0

    with StoreLock(store):
        set_aside_damaged(runs, store, console)
        outcomes = _run_with_display(runs, args, store, console)
    failed = [o for o in outcomes if o.error]
    for outcome in failed:  # one line each; the traceback is in the run's error.txt, when there was room to write it
        details = store.run_dir(outcome.config.hash) / ERROR_FILE
        where = f"details in {details}" if details.is_file() else "no error.txt (it could not be written)"
        console.print(
            f"run {outcome.config.hash} ({outcome.config.cell}, seed {outcome.config.seed}) failed: {outcome.error}; {where}",
            markup=False,
            soft_wrap=True,
            style="red",
        )

    subset = load_results(store.root).only({r.hash for r in runs})
    if subset.runs:
        tables = leaderboard(subset)
        questions = with_answers_by_dataset(answer_questions(subset, grid.compare, grid=grid.name)) if grid.compare else []
        print_report(tables, console=console if console.is_terminal else None, questions=questions, header=dataset_header(tables, args.data_dir))
    return 1 if failed else 0


def dry_run_state(store: Store, run_hash: str) -> str:
    """A run's word in `run --dry-run`: complete, damaged (and what is wrong: `run` recomputes it), failed or to run."""
    state = store.inspect(run_hash)
    if state.state == "complete":
        return "complete"
    if state.state == "damaged":
        return f"damaged: {state.problem}; run moves it aside and recomputes it"
    return "to run, it failed before" if state.state == "failed" else "to run"


def set_aside_damaged(runs: list[RunConfig], store: Store, console: Console) -> None:
    """Move each damaged run of ``runs`` under <results>/damaged/ (never deleted), saying so; they then run again."""
    for run in runs:
        state = store.inspect(run.hash)
        if state.state == "damaged":
            target = store.move_aside(run.hash)
            console.print(
                f"run {run.hash} ({run.cell}, seed {run.seed}) is damaged ({state.problem}): moved to {target}; recomputing it",
                markup=False,
                soft_wrap=not console.is_terminal,  # a terminal wraps it between words; a log keeps one line
                style="yellow",
            )


def population_lines(name: str, dataset, shots: list[tuple[int, int, int | None]]) -> list[str]:
    """One line per (Q, population K): the test episodes and learners that every K at that Q is scored on."""
    groups: dict[tuple[int, int], list[int]] = {}
    for K, Q, population_K in shots:
        groups.setdefault((Q, population_K or K), []).append(K)
    lines = []
    for (Q, population_K), ks in sorted(groups.items()):
        test = dataset.episodes("test", ks[0], Q, population_K)
        same = f"the same for K = {', '.join(map(str, sorted(ks)))}" if len(ks) > 1 else f"K = {ks[0]}"
        lines.append(
            f"{name}: {len(test):,} test episodes from {test['user_id'].nunique():,} learners "
            f"(those with >= {population_K + Q} pairs) at Q={Q}, {same}"
        )
    return lines


def _describe(config: RunConfig) -> str:
    return f"{config.cell} seed={config.seed} K={config.K}"


def _markup(config: RunConfig) -> str:
    """``_describe`` safe inside rich markup (cell labels such as ``maml[random]`` look like tags)."""
    return escape(_describe(config))


def _grid_eta(runs: list[RunConfig], store: Store, jobs: int) -> GridEta:
    """The ETA model, taught the cost of every complete run already in the store."""
    eta = GridEta(jobs=jobs)
    for record in store.complete_runs():
        if isinstance(record.get("wall_seconds"), (int, float)) and isinstance(record.get("config"), dict):
            eta.learn(record["config"], record["wall_seconds"])
    for run in runs:
        if not store.is_complete(run.hash):
            eta.queue(run.hash, run.identity())
    return eta


class _EtaColumn(ProgressColumn):
    """The grid row shows the cost-based estimate (nothing until there is one); run rows their own rate's."""

    def __init__(self):
        super().__init__()
        self.per_run = TimeRemainingColumn()

    def render(self, task) -> Text:
        if "grid_eta" not in task.fields:
            return Text.assemble("eta ", self.per_run.render(task))
        seconds = task.fields["grid_eta"]
        if seconds is None or task.finished:
            return Text("")
        minutes, secs = divmod(int(round(seconds)), 60)
        return Text(f"eta {minutes // 60}:{minutes % 60:02d}:{secs:02d}", style="progress.remaining")


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

        outcomes = run_grid(
            runs, args.data_dir, store, args.jobs, args.device, on_start, on_progress, on_done, executor=args.executor, ray_address=args.ray_address
        )
    else:
        eta = _grid_eta(runs, store, args.jobs)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), _EtaColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            overall = progress.add_task(f"grid {args.grid}", total=total, completed=already, grid_eta=eta.remaining())
            tasks: dict[str, int] = {}

            def on_start(config):
                eta.start(config.hash)
                tasks[config.hash] = progress.add_task(f"  {_markup(config)}: starting", total=None)

            def on_progress(run_hash, phase, done, total_steps):
                eta.progress(run_hash, phase, done, total_steps)
                progress.update(overall, grid_eta=eta.remaining())
                if run_hash in tasks:
                    progress.update(
                        tasks[run_hash], description=f"  {_markup(by_hash[run_hash])}: {phase}", completed=done, total=total_steps or None
                    )

            def on_done(outcome):
                eta.finish(outcome.config.hash, outcome.record["wall_seconds"] if outcome.record else None)
                task = tasks.pop(outcome.config.hash, None)
                if task is not None:
                    progress.remove_task(task)
                progress.advance(overall)
                progress.update(overall, grid_eta=eta.remaining())
                status = "[red]failed[/red]" if outcome.error else f"{outcome.record['wall_seconds']:.1f} s"
                progress.console.print(f"done {_markup(outcome.config)}: {status}")

            outcomes = run_grid(
                runs,
                args.data_dir,
                store,
                args.jobs,
                args.device,
                on_start,
                on_progress,
                on_done,
                executor=args.executor,
                ray_address=args.ray_address,
            )
    console.print(f"grid {args.grid}: {len(outcomes)} runs in {time.perf_counter() - t0:.1f} s")
    return outcomes
