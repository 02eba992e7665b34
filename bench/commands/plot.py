"""`python -m bench plot`: the paper's figures from the result store; and the figures half of
`python -m bench export latex --figures DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.commands.common import note_problems, selection_options, strict_status
from bench.core.atomic import atomic_write_text
from bench.core.labels import check_metric
from bench.core.paths import default_data_dir
from bench.output.figures import Skipped, close, draw_all, figures_tex, write_figures
from bench.output.figures.inputs import load_inputs

DEFAULT_OUT = "figures"


def _write(inputs, out_dir: str, say) -> list:
    drawn = draw_all(inputs)
    try:
        written = write_figures(drawn, out_dir)
    finally:
        close(drawn)
    for name, item in drawn.items():
        if isinstance(item, Skipped):
            say(f"skipped {name}: {item.notice}")
    for item in written:
        say(f"wrote {item.pdf.with_suffix('')}.{{pdf,png,txt}}")
    return written


def _plot_command(args: argparse.Namespace) -> int:
    inputs = load_inputs(
        args.results, grid=args.grid, dataset=args.dataset, data_dir=args.data_dir, metric=check_metric(args.metric), slice=args.slice
    )
    note_problems(inputs.results)  # each run the figures lack
    _write(inputs, args.out, print)
    return strict_status(inputs.results, args.strict)


def export_figures(args: argparse.Namespace, tables) -> Path:
    """The figures of the exported selection into ``args.figures``, and ``figures.tex`` including them."""
    data_dir = getattr(args, "data_dir", None) or default_data_dir()
    inputs = load_inputs(
        args.results, grid=args.grid, dataset=args.dataset, data_dir=data_dir, metric=args.metric, tables=tables, slice=getattr(args, "slice", "all")
    )
    say = lambda text: print(text, file=sys.stderr)  # noqa: E731  stdout may be carrying the LaTeX table
    written = _write(inputs, args.figures, say)
    tex = Path(args.figures) / "figures.tex"
    atomic_write_text(tex, figures_tex(written, args.figures))
    say(f"wrote {tex} ({len(written)} figure(s))")
    return tex


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot",
        parents=[selection_options(reference=False, mixed_code=False, shots=False)],
        help="draw the paper's figures (PDF + PNG + caption) from the result store",
    )
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"folder for the figures (default {DEFAULT_OUT}/)")
    parser.set_defaults(func=_plot_command)
