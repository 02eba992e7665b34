"""What the report-like commands share: one set of selection options (report, export, plot) and
the selection they make, through :mod:`bench.analysis.select`."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import textwrap

from bench.analysis.leaderboard import DEFAULT_METRIC, DEFAULT_REFERENCE, LeaderboardTable, leaderboard, parse_reference
from bench.analysis.questions import answer_questions, with_answers_by_dataset
from bench.analysis.select import select_results
from bench.core.labels import check_metric
from bench.core.metrics import METRICS, SLICES
from bench.core.paths import DEFAULT_RESULTS, default_data_dir
from bench.plan.grid import questions_for
from bench.store.results import Results, problem_note


def parse_seeds(text: str | None) -> list[int] | None:
    """``--seeds 0,1,2`` as a list (None when not given); anything else is refused in one line."""
    if not text:
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        from bench.core.errors import BenchError

        raise BenchError(f"--seeds {text!r} is not a comma-separated list of integers", "write e.g. --seeds 0,1,2")
    return seeds


SHOTS_HELP = "K:Q[,K:Q...], e.g. 3:2 or 1:5,5:5"


def parse_shots(text: str | None) -> tuple[tuple[int, int], ...] | None:
    """``--shots 3:2,5:2`` as ((3, 2), (5, 2)) (None when not given); anything else, or K or Q < 1, is
    refused in one line."""
    if text is None:
        return None
    from bench.core.errors import BenchError

    shots = []
    for part in text.split(","):
        K, sep, Q = part.strip().partition(":")
        try:
            shot = (int(K), int(Q))
        except ValueError:
            shot = None
        if not sep or shot is None:
            raise BenchError(f"--shots {text!r}: {part.strip()!r} is not K:Q", f"write {SHOTS_HELP}")
        if min(shot) < 1:
            raise BenchError(f"--shots {text!r}: K={shot[0]}, Q={shot[1]}: both must be at least 1", f"write {SHOTS_HELP}")
        shots.append(shot)
    return tuple(dict.fromkeys(shots))  # a pair given twice is one pair of runs


def with_shots(grid, shots: tuple[tuple[int, int], ...] | None, sets: dict | None = None):
    """``grid`` with its shots replaced by ``--shots`` (for every dataset of the run); refused beside
    --set K/Q, which replaces them too."""
    if shots is None:
        return grid
    if sets and ({"K", "Q"} & set(sets)):
        from bench.core.errors import BenchError

        raise BenchError("--shots and --set K/Q both replace the grid's shots", "keep one: --shots K:Q")
    return dataclasses.replace(grid, shots=shots)


def check_shots(datasets: dict, runs, splits=("test", "val", "train")) -> None:
    """Refuse, one line per (dataset, split, K, Q), shots at which a dataset has no episode of a split: no
    learner of the split has the pairs such an episode needs (K + Q; on val and test the population K +
    Q, ``bench.plan.grid.population_ks``). Only the first split short of a (K, Q) is named."""
    from bench.core.errors import BenchErrors

    problems = []
    for name, dataset in datasets.items():
        asked = sorted({(r.K, r.Q, r.population_K or r.K) for r in runs if r.dataset == name}, key=lambda s: (s[1], s[0]))
        most = {}
        for split in splits if asked else ():
            pairs = dataset.pairs(split)
            most[split] = int(pairs.groupby("user_id").size().max()) if len(pairs) else 0
        for K, Q, population_K in asked:
            for split in splits:
                length = K + Q if split == "train" else population_K + Q
                if length <= most[split]:
                    continue
                needs = f"K+Q={length}" if length == K + Q else f"{length} (the largest K at Q={Q} is {population_K})"
                problems.append(
                    f"dataset {name} can give no {split} episode at K={K}, Q={Q}: an episode needs {needs} pairs, a {split} learner "
                    f"has at most {most[split]} (ask smaller shots: --shots K:Q with K+Q <= {most[split]})"
                )
                break
    if problems:
        raise BenchErrors(problems)


def selection_options(reference: bool = True, mixed_code: bool = True, shots: bool = True) -> argparse.ArgumentParser:
    """The options that choose what a report shows, as a parent parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--results", default=DEFAULT_RESULTS, help=f"results folder (default {DEFAULT_RESULTS}/)")
    common.add_argument("--dataset", default=None, help="only this dataset (default: every dataset)")
    common.add_argument(
        "--grid", default=None, help="only the runs this grid declares, with its declared questions (preset name or .toml path; default: every run)"
    )
    if shots:
        common.add_argument(
            "--shots",
            default=None,
            metavar="K:Q,...",
            help=f"only runs at these shots ({SHOTS_HELP}); with --grid, the grid's runs at these shots instead of its own (as `run --shots`)",
        )
    if reference:
        common.add_argument(
            "--reference",
            default=None,
            metavar="CELL:MODE",
            help=f"row the others are compared with (default {DEFAULT_REFERENCE}; a table without it has no comparison columns)",
        )
    if mixed_code:
        common.add_argument(
            "--allow-mixed-code",
            action="store_true",
            help="pool runs of one cell made by different code versions (refused by default; noted in the table)",
        )
    common.add_argument(
        "--data-dir", default=default_data_dir(), help="where the datasets are, for their diagnostics (default: data/ or $BENCH_DATA_DIR)"
    )
    common.add_argument("--metric", default=DEFAULT_METRIC, help=f"sort and compare by ({', '.join(METRICS)}; default {DEFAULT_METRIC})")
    common.add_argument(
        "--slice",
        default="all",
        choices=SLICES,
        help="the test queries every table and question is on: all, repeat (label already in the prefix) or explore (a course "
        "not in the prefix); a question declared on a slice keeps its own (default all)",
    )
    common.add_argument(
        "--strict", action="store_true", help="exit 1 when a run is damaged or, with --grid, any run of the grid is missing (for CI and papers)"
    )
    return common


def note_problems(results: Results, out=None) -> None:
    """Print the note naming each run the tables lack (damaged, failed, missing; see bench.store.results)
    to ``out`` (default stdout)."""
    out = out or sys.stdout
    lines = problem_note(results.problems)
    for line in lines:
        say(line, out, indent="  " if line.startswith("- ") else "")
    if lines:
        print(file=out)


def say(line: str, out=None, indent: str = "") -> None:
    """Print ``line``; on a terminal, wrapped at its width between words (a hash, a number or a flag is
    never cut), continuation lines indented by ``indent``; piped, as one line (for grep)."""
    out = out or sys.stdout
    width = shutil.get_terminal_size().columns if out.isatty() else 0
    wrapped = textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False) if width > 20 else [line]
    print("\n".join(wrapped) or line, file=out)


def strict_status(results: Results, strict: bool) -> int:
    """The exit status of a report: 1 (said on stderr) when ``strict`` and a run is damaged or missing, else 0."""
    if strict and results.problems:
        print(f"error: {len(results.problems)} run(s) damaged or missing (--strict): each is named above the tables with its repair", file=sys.stderr)
        return 1
    return 0


def results_from_args(args: argparse.Namespace) -> Results:
    """The selection (select_results, at ``--shots``), on the queries of ``--slice`` (Results.sliced)."""
    shots = parse_shots(getattr(args, "shots", None))
    results = select_results(args.results, args.grid, any_code=getattr(args, "allow_mixed_code", False), shots=shots)
    if args.dataset:  # the tables show one dataset: so does the note of the runs they lack
        results = dataclasses.replace(results, problems=tuple(p for p in results.problems if p.dataset in (None, args.dataset)))
    return results.sliced(getattr(args, "slice", "all"))


def tables_from_args(args: argparse.Namespace, results: Results | None = None) -> list[LeaderboardTable]:
    metric = check_metric(args.metric)
    reference = getattr(args, "reference", None)
    if reference is not None:
        parse_reference(reference)
    return leaderboard(
        results_from_args(args) if results is None else results,
        reference=reference or DEFAULT_REFERENCE,
        metric=metric,
        dataset=args.dataset,
        require_reference=reference is not None,
        allow_mixed_code=getattr(args, "allow_mixed_code", False),
    )


def questions_from_args(args: argparse.Namespace, results: Results) -> list:
    """The declared questions of ``--grid`` answered on ``results`` (none without --grid)."""
    if not args.grid:
        return []
    # several datasets (e.g. the scenarios grid): every answer side by side too
    return with_answers_by_dataset(answer_questions(results, questions_for(args.grid), metric=args.metric, dataset=args.dataset, grid=args.grid))


def open_grid_datasets(names, data_dir: str, say=print) -> dict:
    """The grid's datasets by name; a built-in one (bench.data.synth.BUILTIN) is built on first use."""
    from bench.core.errors import BenchError
    from bench.data.dataset import open_dataset
    from bench.data.synth import BUILTIN, build_builtin

    datasets = {}
    for name in names:
        try:
            datasets[name] = open_dataset(name, data_dir)
        except BenchError:
            if name not in BUILTIN:
                raise
            say(f"building the built-in dataset {name} in {data_dir} ...")
            datasets[name] = build_builtin(name, data_dir)
    return datasets
