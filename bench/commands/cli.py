"""`python -m bench ...`: the command-line entry point.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``func=handler(args) -> int``. Errors of type BenchError print one line and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from bench.commands import data, perf, plot, project, report, run, store, tune
from bench.core.errors import BenchError
from bench.core.threads import env_threads

COMMAND_MODULES = (data, run, report, perf, project, plot, tune, store)  # each adds its subcommands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def check_threads_env() -> None:
    """BENCH_THREADS must be a thread count (0 or empty: the default); refused in one line otherwise."""
    env_threads()
    if os.environ.get("BENCH_THREADS", "x").strip() == "":
        del os.environ["BENCH_THREADS"]  # empty means unset, in this process and the workers it starts


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor that is not a leaf Tensor is being accessed")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_threads_env()
        return int(args.func(args) or 0)
    except BenchError as err:
        for line in str(err).splitlines():  # BenchErrors: one line per problem
            print(f"error: {line}", file=sys.stderr)
        return BenchError.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
