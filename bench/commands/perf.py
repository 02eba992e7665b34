"""`python -m bench perf engines|full|baselines`: benchmarks that print figures, not tests.

- ``perf engines``: the inner-loop engines and arms on generated episodes (bench/run/perf/engines.py);
- ``perf full``: the batched engine at the `full` grid's settings on a dataset (bench/run/perf/full.py);
- ``perf baselines``: the baselines on one dataset (bench/run/perf/baselines.py).
The old forms still work: ``perf [options]`` (= ``perf engines``), ``perf --settings full`` (= ``perf
full``) and ``perf-baselines`` (= ``perf baselines``).
"""

from __future__ import annotations

import argparse
import dataclasses

from bench.core.errors import BenchError
from bench.output.perf import (
    baselines_training_lines,
    perf_console,
    print_baselines_progress,
    print_engines_progress,
    print_engines_report,
    print_full_progress,
)
from bench.run.perf.baselines import BaselinesSettings, measure_baselines
from bench.run.perf.common import MEAN_LENGTH, write_figures
from bench.run.perf.engines import DEFAULT_ARMS, DEFAULT_ENGINES, EnginesSettings, measure_engines
from bench.run.perf.full import FullSettings, measure_full, parse_thread_counts


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "perf",
        help="benchmarks: `perf engines`, `perf full`, `perf baselines`",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # The old form `perf [--settings full] [options]`, options hidden from its help.
    engines_options(parser, hidden=True)
    full_options(parser, hidden=True)
    parser.add_argument("--settings", choices=("synthetic", "full"), default="synthetic", help=argparse.SUPPRESS)
    parser.set_defaults(func=old_perf_command)
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="{engines,full,baselines}")
    engines = benchmarks.add_parser("engines", help="the inner-loop engines and arms on generated episodes (tasks/s, episodes/s, GFLOP/s, RSS)")
    engines_options(engines)
    engines.set_defaults(func=engines_command)
    full = benchmarks.add_parser(
        "full",
        help="the batched engine at the `full` grid's settings (E 64, H 128, dropout 0.2, meta-batch 32, "
        "K 5, Q 10, 5 steps) on --dataset's train/val episodes, batched against batched-segmented, at each of --thread-counts",
    )
    full_options(full)
    full.set_defaults(func=full_command)
    baselines = benchmarks.add_parser("baselines", help="the baselines' fit and scoring on one dataset, and SASRec/GRU4Rec training throughput")
    baselines_options(baselines)
    baselines.set_defaults(func=baselines_command)
    old = subparsers.add_parser("perf-baselines", help="the same as `perf baselines` (its old name)")
    baselines_options(old)
    old.set_defaults(func=baselines_command)


def _help(text: str, hidden: bool) -> str:
    return argparse.SUPPRESS if hidden else text


def engines_options(parser, hidden: bool = False) -> None:
    h = lambda text: _help(text, hidden)  # noqa: E731
    parser.add_argument("--engines", default=DEFAULT_ENGINES, help=h(f"comma-separated engines (default {DEFAULT_ENGINES})"))
    parser.add_argument(
        "--arms",
        default=DEFAULT_ARMS,
        help=h(f"other meta-learning algorithms to time, each on the --engines that implement it (default {DEFAULT_ARMS}; '' for none)"),
    )
    parser.add_argument("--threads", type=int, default=None, help=h("torch threads (default: $BENCH_THREADS or all cores)"))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help=h("torch device"))
    parser.add_argument("--meta-batch", type=int, default=32, help=h("tasks per meta-batch"))
    parser.add_argument("--embed-dim", type=int, default=64, help=h("embedding size"))
    parser.add_argument("--hidden-dim", type=int, default=64, help=h("GRU hidden size"))
    parser.add_argument("--items", type=int, default=1518, help=h("real items (the vocabulary adds padding id 0)"))
    parser.add_argument("--K", type=int, default=5, help=h("support prefixes per task"))
    parser.add_argument("--Q", type=int, default=10, help=h("query prefixes per task"))
    parser.add_argument("--inner-steps", type=int, default=5, help=h("inner steps"))
    parser.add_argument("--repeats", type=int, default=3, help=h("alternating rounds; medians over them"))
    parser.add_argument("--train-iterations", type=int, default=2, help=h("meta-iterations timed per round and engine"))
    parser.add_argument("--eval-episodes", type=int, default=313, help=h("few-shot episodes scored per round and engine"))
    parser.add_argument("--rss-iterations", type=int, default=150, help=h("long loop (fastest engine) for RSS growth; 0 skips"))
    parser.add_argument("--json", dest="json_path", default=None, help=h("write the figures to this JSON file"))
    parser.add_argument("--mean-length", type=float, default=MEAN_LENGTH, help=h("mean generated prefix length (1 + geometric, capped at 50)"))
    parser.add_argument("--seed", type=int, default=0, help=h("seed of the generated episodes and the initial weights"))


def full_options(parser, hidden: bool = False) -> None:
    """`perf full`'s own options; with ``hidden`` (the old form, beside engines_options) only those engines lacks."""
    h = lambda text: _help(text, hidden)  # noqa: E731
    parser.add_argument("--dataset", default="xuetangx-synth", help=h("the dataset whose episodes are timed (default xuetangx-synth)"))
    parser.add_argument("--data-dir", default=None, help=h("its data folder (default: the project's)"))
    parser.add_argument("--thread-counts", default="1,2", help=h("comma-separated torch thread counts, measured one after the other (default 1,2)"))
    parser.add_argument("--val-episodes", type=int, default=0, help=h("cap on val episodes per validation (default 0: all)"))
    if hidden:
        return
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds; medians over them")
    parser.add_argument("--train-iterations", type=int, default=2, help="meta-iterations timed per round and engine")
    parser.add_argument("--json", dest="json_path", default=None, help='write the figures to this JSON file (under "full")')
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled meta-batches and the initial weights")


def baselines_options(parser) -> None:
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--episodes", type=int, default=313, help="test episodes scored (XuetangX has 313)")
    parser.add_argument("--methods", default=None, help="comma-separated (default: every memory baseline of the registry)")
    parser.add_argument("--batches", type=int, default=30, help="training batches timed per model and round; 0 skips")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--K", type=int, default=5)
    parser.add_argument("--Q", type=int, default=10)
    parser.add_argument("--json", dest="json_path", default=None, help="write the figures to this JSON file")


def _settings(cls, args, **parsed):
    """``cls`` (a perf settings dataclass) from the options of the same names, ``parsed`` ones given as parsed;
    an option that is None (not given, no default) keeps the dataclass's default."""
    given = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls)}
    return cls(**{name: value for name, value in {**given, **parsed}.items() if value is not None})


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def old_perf_command(args) -> int:
    """`perf [options]` and `perf --settings full [options]`, the forms before the subcommands."""
    if args.settings == "full":
        if args.device != "cpu":
            raise BenchError("--settings full measures the CPU engines", "drop --device, or use --settings synthetic")
        return full_command(args)
    return engines_command(args)


def engines_command(args) -> int:
    console = perf_console()
    settings = _settings(EnginesSettings, args, engines=_names(args.engines), arms=_names(args.arms))
    figures = measure_engines(settings, print_engines_progress(console))
    print_engines_report(console, figures)
    if args.json_path:
        console.print(f"figures written to {write_figures(args.json_path, figures)}")
    return 0


def full_command(args) -> int:
    console = perf_console()
    settings = _settings(FullSettings, args, thread_counts=parse_thread_counts(args.thread_counts))
    figures = measure_full(settings, print_full_progress(console))
    if args.json_path:
        path = write_figures(args.json_path, {"full": figures})
        console.print(f"figures written to {path} (full.engines: {settings.thread_counts[0]} thread(s); full.threads.<n>: each thread count)")
    return 0


def baselines_command(args) -> int:
    console = perf_console()
    settings = _settings(BaselinesSettings, args, methods=tuple(_names(args.methods)) if args.methods else None)
    figures = measure_baselines(settings, print_baselines_progress(console))
    if figures["training"]:
        for line in baselines_training_lines(figures["training"]):
            console.print(line, soft_wrap=True)
    if args.json_path:
        console.print(f"figures written to {write_figures(args.json_path, figures)}")
    return 0
