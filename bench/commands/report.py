"""`python -m bench report` (terminal or one HTML page) and `python -m bench export` (LaTeX,
markdown, CSV): the same selection, laid out by the renderers in :mod:`bench.output`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.analysis.select import dataset_header
from bench.commands.common import (
    note_problems,
    parse_shots,
    questions_from_args,
    results_from_args,
    selection_options,
    strict_status,
    tables_from_args,
    with_shots,
)
from bench.commands.plot import export_figures
from bench.core.atomic import atomic_write_text
from bench.core.errors import BenchError
from bench.output import csv, latex, markdown
from bench.output.figures import Skipped, close, draw_all
from bench.output.figures.inputs import PlotInputs, read_manifests
from bench.output.html import html_page
from bench.output.terminal import print_report
from bench.store.results import problem_note

EXPORT_FORMATS = ("latex", "markdown", "csv")


def write_html_report(args: argparse.Namespace) -> int:
    """The `report --html FILE` handler: same selection options as the terminal report."""
    results = results_from_args(args)
    note_problems(results)  # the page carries the same note (bench/output/html.py)
    tables = tables_from_args(args, results)
    questions = questions_from_args(args, results)
    notice = (
        None
        if questions
        else (
            "no --grid given: the declared questions are a grid's [[compare]] blocks"
            if not args.grid
            else f"grid {args.grid!r} declares no questions"
        )
    )
    manifests = read_manifests((run["config"]["dataset"] for run in results.runs), args.data_dir)
    inputs = PlotInputs(results, Path(args.results), tuple(tables), tuple(questions), notice, manifests, args.metric, args.grid)
    drawn = draw_all(inputs)
    try:
        page = html_page(inputs, drawn)
    finally:
        close(drawn)
    atomic_write_text(Path(args.html), page)
    for name, item in drawn.items():
        if isinstance(item, Skipped):
            print(f"figure {name} not drawn: {item.notice}")
    print(f"wrote {args.html}: open file://{Path(args.html).resolve()}")
    return strict_status(results, args.strict)


def _report_command(args: argparse.Namespace) -> int:
    if args.html:  # the one-file HTML page (bench/output/html.py)
        return write_html_report(args)
    results = results_from_args(args)
    tables = tables_from_args(args, results)
    questions = questions_from_args(args, results)
    note_problems(results)  # above the tables
    print_report(tables, questions=questions, wide=args.wide, header=dataset_header(tables, args.data_dir))
    if args.grid:  # the grid's tuning studies, when `python -m bench tune` has run (bench/run/tune.py)
        from bench.output.tuning import tuning_markdown
        from bench.plan.grid import load_grid
        from bench.run.studies import grid_study_summaries

        grid = with_shots(load_grid(args.grid), parse_shots(args.shots))  # the tuning changes at the shots shown
        summaries = grid_study_summaries(grid.name, args.results)
        if summaries:
            print()
            print(tuning_markdown(summaries))
            if grid.compare:
                print()
                print(tuning_changes_text(args, grid, results, questions))
    return strict_status(results, args.strict)


def tuning_changes_text(args: argparse.Namespace, grid, results, questions) -> str:
    """The "what tuning changes" table: each declared question on the untuned runs and on `run --tuned`'s."""
    from bench.analysis.questions import answer_questions
    from bench.analysis.tuning import tuning_changes
    from bench.core.errors import BenchError
    from bench.output.tuning import changes_markdown
    from bench.plan.grid import expand, tuned_runs
    from bench.run.tune import tuned_params
    from bench.store.results import load_results

    versions = {(run["config"]["dataset"], run["config"]["dataset_hash"]) for run in results.runs}
    hashes: set[str] = set()
    changed: set[str] = set()  # the runs tuning gave other params
    untuned: list[tuple[str, BenchError]] = []  # dataset versions the grid's studies were not made on
    for dataset, dataset_hash in sorted(versions):
        runs = expand(grid, {dataset: dataset_hash})
        try:
            tuned_hashes = {run.hash for run in tuned_runs(runs, tuned_params(grid, runs, args.results))}
        except BenchError as err:
            untuned.append((dataset, err))
            continue
        hashes |= tuned_hashes
        changed |= tuned_hashes - {run.hash for run in runs}
    names = {dataset for dataset, _ in versions} - {dataset for dataset, _ in untuned}
    if untuned and not names:  # no dataset of the selection was tuned: say why for the first
        return f"what tuning changes: not shown ({str(untuned[0][1]).splitlines()[0]})"
    tuned = load_results(args.results).only(hashes).sliced(getattr(args, "slice", "all"))
    if changed and not any(run["hash"] in changed for run in tuned.runs):
        return f"what tuning changes: not shown (no tuned runs yet: run `python -m bench run --grid {grid.name} --tuned`)"
    answers = answer_questions(tuned, grid.compare, metric=args.metric, dataset=args.dataset, grid=grid.name)
    text = changes_markdown(tuning_changes([t for t in questions if t.dataset in names], answers))
    if untuned:  # the datasets left out, named, so a table of one dataset is not read as the selection's
        text += "\n\nNot in this table (grid not tuned on them): " + ", ".join(sorted({dataset for dataset, _ in untuned})) + "."
    return text


def _export_command(args: argparse.Namespace) -> int:
    if args.figures and args.shots:  # the figures select through bench.output.figures.inputs, which takes no shots
        raise BenchError("export --figures does not take --shots", "drop --figures, or plot every shot's runs with `python -m bench plot`")
    columns = latex.parse_columns(args.columns) if args.columns else None
    results = results_from_args(args)
    tables = tables_from_args(args, results)
    questions = questions_from_args(args, results)
    extra: dict[str, str] = {}
    note = problem_note(results.problems)  # each run the tables lack, above them
    if args.format == "csv" or args.out not in (None, "-"):  # on the terminal too, unless it goes there inside the LaTeX or markdown
        note_problems(results, out=sys.stderr)
    if args.format == "latex":
        text = latex.notes_to_latex(note) + latex.to_latex(
            tables,
            caption=args.caption,
            label=args.label,
            columns=columns,
            all_columns=args.all_columns,
            layout=args.layout,
            scale=args.scale,
            questions=questions,
        )
    elif args.format == "markdown":
        text = (
            markdown.notes_to_markdown(note)
            + markdown.header_to_markdown(dataset_header(tables, args.data_dir))
            + markdown.questions_to_markdown(questions)
            + markdown.to_markdown(tables)
        )
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
        export_figures(args, tables)
    return strict_status(results, args.strict)


def register(subparsers) -> None:
    common = selection_options()

    report = subparsers.add_parser(
        "report",
        parents=[common],
        help="print the leaderboard: means with 95%% CIs, paired comparisons vs a reference",
    )
    report.add_argument("--wide", action="store_true", help="every column, even beyond the terminal's width (default: the columns that fit)")
    report.add_argument("--html", default=None, metavar="FILE", help="write one self-contained HTML page (tables, figures, provenance) instead")
    report.set_defaults(func=_report_command)

    export = subparsers.add_parser("export", parents=[common], help="write the leaderboard as LaTeX (booktabs), markdown or CSV")
    export.add_argument("format", choices=EXPORT_FORMATS)
    export.add_argument("--out", default=None, help="output file, written atomically (default or '-': stdout)")
    export.add_argument("--caption", default=None, help="LaTeX caption (LaTeX markup allowed; default describes the table)")
    export.add_argument("--label", default=None, help="LaTeX \\label (suffixed per table when there are several)")
    export.add_argument(
        "--layout",
        choices=("column", "page"),
        default="column",
        help="LaTeX: fit one column of a two-column paper (table) or the page width (table*); default column",
    )
    export.add_argument(
        "--columns",
        default=None,
        metavar="A,B,C",
        help="LaTeX columns, from: rank, cell, mode, acc@1, recall@5, recall@10, mrr, ndcg@10, repeat, explore, delta, wtl, "
        "episodes, seeds, seed-sd, train-s",
    )
    export.add_argument("--all-columns", action="store_true", help="LaTeX: every column (wider than a page; see --scale)")
    export.add_argument("--scale", action="store_true", help="LaTeX: shrink the table to the layout's width with \\resizebox (needs graphicx)")
    export.add_argument(
        "--figures", default=None, metavar="DIR", help="also write the figures there and DIR/figures.tex (\\includegraphics and captions)"
    )
    export.set_defaults(func=_export_command)
