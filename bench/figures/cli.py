"""`python -m bench plot`: the paper's figures from the result store; and the figures half of
`python -m bench export latex --figures DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.atomic import atomic_write_text
from bench.report import DEFAULT_METRIC, DEFAULT_RESULTS, check_metric

DEFAULT_OUT = "figures"


def _write(inputs, out_dir: str, say) -> list:
    from bench.figures import Skipped, close, draw_all, write_figures

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
    from bench.figures.inputs import load_inputs

    inputs = load_inputs(args.results, grid=args.grid, dataset=args.dataset, data_dir=args.data_dir, metric=check_metric(args.metric))
    _write(inputs, args.out, print)
    return 0


def export_figures(args: argparse.Namespace, tables) -> Path:
    """The figures of the exported selection into ``args.figures``, and ``figures.tex`` including them."""
    from bench.cli import default_data_dir
    from bench.figures import figures_tex
    from bench.figures.inputs import load_inputs

    data_dir = getattr(args, "data_dir", None) or default_data_dir()
    inputs = load_inputs(args.results, grid=args.grid, dataset=args.dataset, data_dir=data_dir, metric=args.metric, tables=tables)
    say = lambda text: print(text, file=sys.stderr)  # noqa: E731  stdout may be carrying the LaTeX table
    written = _write(inputs, args.figures, say)
    tex = Path(args.figures) / "figures.tex"
    atomic_write_text(tex, figures_tex(written, args.figures))
    say(f"wrote {tex} ({len(written)} figure(s))")
    return tex


def register(subparsers) -> None:
    from bench.cli import default_data_dir

    parser = subparsers.add_parser("plot", help="draw the paper's figures (PDF + PNG + caption) from the result store")
    parser.add_argument("--results", default=DEFAULT_RESULTS, help=f"results folder (default {DEFAULT_RESULTS}/)")
    parser.add_argument("--dataset", default=None, help="only this dataset (default: every dataset)")
    parser.add_argument("--grid", default=None, help="only the runs this grid declares, and its declared questions (preset name or .toml path)")
    parser.add_argument("--data-dir", default=default_data_dir(), help="where dataset.json is read for the diagnostics (default: data/ or $BENCH_DATA_DIR)")
    parser.add_argument("--metric", default=DEFAULT_METRIC, help=f"metric of the accuracy and comparison figures (default {DEFAULT_METRIC})")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"folder for the figures (default {DEFAULT_OUT}/)")
    parser.set_defaults(func=_plot_command)
