"""`python -m bench ...`: the command-line entry point.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``func=handler(args) -> int``. Errors of type BenchError print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from bench.errors import BenchError

# Modules that contribute commands; a module that is missing is skipped so partial checkouts work.
COMMAND_MODULES = ["bench.data.cli", "bench.run_cli", "bench.report", "bench.perf", "bench.projection", "bench.figures.cli"]


def default_data_dir() -> str:
    return os.environ.get("BENCH_DATA_DIR", "data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:
                continue
            raise
        module.register(subparsers)
    return parser


def check_threads_env() -> None:
    """BENCH_THREADS must be a thread count (0 or empty: the default); refused in one line otherwise."""
    value = os.environ.get("BENCH_THREADS")
    if value is None:
        return
    if not value.strip():
        del os.environ["BENCH_THREADS"]  # empty means unset, in this process and the workers it starts
    elif not value.strip().isdigit():
        raise BenchError(f"BENCH_THREADS={value!r} is not a thread count", "set it to a whole number such as 1 (0: the default), or unset it")


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings(
        "ignore", message="The .grad attribute of a Tensor that is not a leaf Tensor is being accessed"
    )
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
