"""`python -m bench store verify [--results DIR] [--repair]`: check every run, cached model and tuning
journal of a results folder against its checksums (`git fsck` for the store); --repair does for each
damaged run what `bench run` would: move it aside under <results>/damaged/ and recompute it."""

from __future__ import annotations

import argparse

from bench.commands.common import say
from bench.core.errors import BenchError
from bench.core.paths import DEFAULT_RESULTS, default_data_dir
from bench.run.executors import run_grid
from bench.run.lock import StoreLock
from bench.store.results import config_of
from bench.store.verify import (
    Finding,
    StoreCheck,
    check_store,
    repair_cache,
    repair_journal,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("store", help="check the result store: every run, cached model and tuning journal (verify [--repair])")
    commands = parser.add_subparsers(dest="store_command", required=True)
    verify = commands.add_parser("verify", help="check every file against its checksum; exit 1 if anything is damaged")
    verify.add_argument("--results", default=DEFAULT_RESULTS, help=f"results folder (default {DEFAULT_RESULTS}/)")
    verify.add_argument("--repair", action="store_true", help="move each damaged run aside (results/damaged/) and recompute it, as `run` would")
    verify.add_argument("--data-dir", default=default_data_dir(), help="data folder, for recomputing (default: data/ or $BENCH_DATA_DIR)")
    verify.add_argument("--jobs", type=int, default=1, help="runs recomputed in parallel by --repair")
    verify.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME",
        help="--repair: a grid (preset or .toml, repeatable) to find runs whose run.json is unreadable in (default: the presets)",
    )
    verify.set_defaults(func=verify_command)


def describe(finding: Finding) -> str:
    """One line: what is not complete, where, and what is wrong."""
    if finding.kind != "run":
        return f"{finding.state} {finding.kind} {finding.path}: {finding.problem}"
    record = finding.run.record or {}
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    who = f" {record['cell']} seed {config.get('seed')} ({config.get('dataset')} K={config.get('K')})" if record.get("cell") else ""
    return f"{finding.state} run {finding.run.hash}{who}: {finding.problem}"


def verify_command(args: argparse.Namespace) -> int:
    check = check_store(args.results)
    say(f"store {check.summary()}")
    for finding in check.findings:
        say(describe(finding), indent="  ")
    damaged = [f for f in check.findings if f.state == "damaged"]
    if not damaged:
        return 0
    if not args.repair:
        say(f"error: {len(damaged)} damaged (repair: python -m bench store verify --results {args.results} --repair)")
        return 1
    with StoreLock(check.stores[0]):
        left = repair(check, damaged, args)
    if left:
        print(f"error: {left} damaged thing(s) not repaired (see above)")
        return 1
    print(f"repaired {len(damaged)} damaged thing(s); `python -m bench store verify --results {args.results}` checks again")
    return 0


def repair(check: StoreCheck, damaged: list[Finding], args: argparse.Namespace) -> int:
    """Repair what can be: runs moved aside and recomputed, cached models moved aside, journals cut to
    their good lines. Returns how many are left damaged (a run whose config or data is not at hand)."""
    left = 0
    todo: dict[int, list] = {}
    for finding in damaged:
        if finding.kind == "cache":
            print(f"cache {finding.path}: {repair_cache(check.root, finding)}")
            continue
        if finding.kind == "journal":
            print(f"journal {finding.path}: {repair_journal(check.root, finding)}")
            continue
        n = next(i for i, store in enumerate(check.stores) if finding.path.parent == store.runs_dir)
        config = config_of(finding.run.record) or find_in_grids(finding.run.hash, check, args.grid)
        target = check.stores[n].move_aside(finding.run.hash)
        reason = cannot_recompute(config, args.data_dir)
        if reason:
            print(f"run {finding.run.hash}: moved to {target}; not recomputed: {reason}")
            left += 1
            continue
        say(f"run {finding.run.hash} ({config.cell}, seed {config.seed}): moved to {target}; recomputing it")
        todo.setdefault(n, []).append(config)
    for n, configs in todo.items():
        store = check.stores[n]
        for outcome in run_grid(configs, args.data_dir, store, jobs=args.jobs):
            if outcome.error:
                left += 1
                print(f"run {outcome.config.hash} ({outcome.config.cell}, seed {outcome.config.seed}) failed: {outcome.error}")
            else:
                print(
                    f"run {outcome.config.hash} ({outcome.config.cell}, seed {outcome.config.seed}): recomputed in "
                    f"{outcome.record['wall_seconds']:.1f} s"
                )
    return left


def find_in_grids(run_hash: str, check: StoreCheck, grids=()):
    """The run of ``grids`` or a preset grid with this hash, for a run whose run.json is unreadable (None if none has it)."""
    from bench.plan.grid import available_grids, expand, load_grid

    versions = {
        (s.record["config"]["dataset"], s.record["config"]["dataset_hash"])
        for store in check.stores
        for s in store.scan()
        if s.record and isinstance(s.record.get("config"), dict)
    }
    for name in [*grids, *available_grids()]:
        for dataset, version in sorted(versions):
            try:
                runs = expand(load_grid(name), {dataset: version})
            except BenchError:
                continue
            found = next((run for run in runs if run.hash == run_hash), None)
            if found is not None:
                return found
    return None


def cannot_recompute(config, data_dir: str) -> str | None:
    """Why ``config`` cannot be recomputed here (unknown, other code, data not at hand), else None."""
    from bench.core.provenance import code_fingerprint
    from bench.data.dataset import open_dataset

    if config is None:
        return "its config is unknown (run.json unreadable, no preset grid declares it): name its grid with --grid, or run the grid again"
    if config.code != code_fingerprint():
        return f"it was made by other code (fingerprint {config.code or 'none'}, this checkout's {code_fingerprint()}): run its grid again"
    try:
        dataset = open_dataset(config.dataset, data_dir)
    except BenchError as err:
        return f"{err} (pass --data-dir)"
    if dataset.content_hash != config.dataset_hash:
        return f"dataset {config.dataset} in {data_dir} is another version ({dataset.content_hash[:8]}, the run's {config.dataset_hash[:8]})"
    return None
