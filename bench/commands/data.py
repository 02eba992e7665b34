"""``python -m bench data ...``: synth, import {interactions, xuetangx-activity, seed-episodes}, info."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr)


def _add_common(parser: argparse.ArgumentParser) -> None:
    from bench.core.paths import default_data_dir

    parser.add_argument("--data-dir", default=None, help=f"data folder (default: $BENCH_DATA_DIR or data/; now {default_data_dir()})")


def _add_build(parser: argparse.ArgumentParser) -> None:
    from bench.data.pipeline import PipelineConfig

    d = PipelineConfig()
    _add_common(parser)
    parser.add_argument("--name", required=True, help="dataset name: the folder under <data-dir>/processed/")
    parser.add_argument("--force", action="store_true", help="rebuild if the dataset exists")
    parser.add_argument("--K", type=int, default=d.K, help=f"support pairs per episode (default {d.K})")
    parser.add_argument("--Q", type=int, default=d.Q, help=f"query pairs per episode (default {d.Q})")
    parser.add_argument("--stride", type=int, default=d.stride, help="step between train windows (default 1)")
    parser.add_argument("--max-prefix", type=int, default=d.max_prefix, help="prefix truncation (default 50)")
    parser.add_argument("--split-seed", type=int, default=d.split_seed, help=f"user split seed (default {d.split_seed})")
    _add_episodes_per_user(parser)


def _add_episodes_per_user(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--test-episodes-per-user",
        type=int,
        default=1,
        metavar="N",
        help="val/test episodes per learner, taken backwards from their last pairs with disjoint query sets (default 1: the seed's protocol)",
    )


def _add_strict(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse the import (exit 2, naming the first such row) instead of dropping rows with a missing field, duplicates or unkept kinds",
    )


def _pipeline_config(args):
    from bench.data.pipeline import PipelineConfig

    return PipelineConfig(
        max_prefix=args.max_prefix,
        split_seed=args.split_seed,
        K=args.K,
        Q=args.Q,
        stride=args.stride,
        test_episodes_per_user=args.test_episodes_per_user,
    )


def _report(dataset, started: float) -> int:
    from bench.data.importers import rows_line

    c = dataset.manifest["counts"]
    s = c["splits"]
    rows = dataset.manifest["source"].get("rows")
    if rows:
        print(f"input: {rows_line(rows)}")
    print(
        f"dataset {dataset.name} at {dataset.root}: {c['items']:,} items, {c['users_with_pairs']:,} users with pairs, "
        f"episodes train/val/test {s['train']['episodes']:,}/{s['val']['episodes']:,}/{s['test']['episodes']:,} "
        f"(K={c['K']}, Q={c['Q']}) in {time.perf_counter() - started:.1f}s"
    )
    return 0


def _synth(args) -> int:
    from bench.core.errors import BenchError
    from bench.data import pipeline, synth

    started = time.perf_counter()
    root = pipeline.processed_dir(args.data_dir) / args.name
    if args.if_missing and root.exists() and not args.force:
        print(f"dataset {args.name} exists at {root}; nothing to do (--force rebuilds it)")
        return 0
    knobs = {f.name: getattr(args, f.name) for f in dataclasses.fields(synth.SynthConfig)}
    if args.name in synth.BUILTIN:
        # a built-in name means the built-in's knobs (grids name these datasets and build them on first use):
        # a flag that contradicts one would store other data under the name every grid trusts
        builtin = dataclasses.asdict(synth.SynthConfig(**synth.BUILTIN[args.name]))  # what build_builtin builds
        defaults = dataclasses.asdict(synth.SynthConfig())
        clash = [k for k, v in knobs.items() if v != defaults[k] and v != builtin[k]]
        if clash:
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in clash)
            raise BenchError(
                f"{args.name} is a built-in dataset ({synth.BUILTIN[args.name] or 'the default knobs'}); {flags} would change it",
                "drop those flags to build the built-in, or choose another --name",
            )
        knobs = builtin
    dataset = synth.build_synthetic(
        args.name, args.data_dir, synth.SynthConfig(**knobs), _pipeline_config(args), force=args.force, progress=_progress
    )
    return _report(dataset, started)


def _import_interactions(args) -> int:
    from bench.data import importers

    started = time.perf_counter()
    dataset = importers.import_interactions(
        args.file,
        name=args.name,
        user=args.user,
        item=args.item,
        time=args.time,
        session=args.session,
        session_gap=args.session_gap,
        sep=args.sep,
        data_dir=args.data_dir,
        config=_pipeline_config(args),
        force=args.force,
        progress=_progress,
        strict=args.strict,
        event=args.event,
    )
    return _report(dataset, started)


def _import_activity(args) -> int:
    from bench.data import importers

    started = time.perf_counter()
    dataset = importers.import_xuetangx_activity(
        args.file,
        name=args.name,
        data_dir=args.data_dir,
        config=_pipeline_config(args),
        force=args.force,
        progress=_progress,
        strict=args.strict,
    )
    return _report(dataset, started)


def _import_seed(args) -> int:
    from bench.data import importers

    started = time.perf_counter()
    dataset = importers.import_seed_episodes(
        args.dir,
        name=args.name,
        data_dir=args.data_dir,
        force=args.force,
        progress=_progress,
        test_episodes_per_user=args.test_episodes_per_user,
        strict=args.strict,
    )
    repair = dataset.manifest["source"].get("repair")
    if repair:
        print(f"repaired: {repair['reason']}")
    return _report(dataset, started)


def _info(args) -> int:
    from bench.data.info import show_info

    show_info(args.name, args.data_dir, as_json=args.json)
    return 0


def register(subparsers) -> None:
    from bench.data.synth import SynthConfig

    data = subparsers.add_parser("data", help="build, import and inspect datasets")
    commands = data.add_subparsers(dest="data_command", required=True)

    synth = commands.add_parser("synth", help="generate the XuetangX-shaped synthetic dataset")
    _add_build(synth)
    synth.add_argument("--if-missing", action="store_true", help="do nothing if the dataset already exists")
    helps = {
        "users": "number of learners",
        "seed": "generator seed",
        "n_courses": "courses",
        "n_topics": "topics",
        "zipf": "popularity exponent (acts at enrolment)",
        "user_topic_alpha": "Dirichlet concentration of a learner's topic mix",
        "graph_window": "courses ahead in a topic a course may link to",
        "graph_link_prob": "chance of each such link",
        "p_graph": "chance an enrolment follows the course graph",
        "p_popular": "chance an enrolment follows global popularity",
        "sessions_tail": "Pareto tail of sessions per learner",
        "max_sessions": "cap on sessions per learner",
        "switch_tail": "Pareto tail of courses per ordinary session",
        "p_long_session": "chance of a long switching session",
        "long_session_scale": "least switches of a long session",
        "long_session_tail": "Pareto tail of a long session's switches",
        "max_session_courses": "cap on course visits per session",
        "p_enrol_start": "chance a session starts on a new enrolment",
        "p_enrol_switch": "chance a switch enrols in a new course",
        "p_return": "chance of returning to the course before (A-B-A)",
        "mean_events": "mean events of a one-course session",
        "events_sigma": "lognormal sigma of a session's activity (events)",
        "events_visits_power": "how a session's events grow with its visits (v ** power)",
        "mean_gap_days": "days between sessions",
        "gap_median_seconds": "median seconds between events",
        "gap_sigma": "lognormal sigma of the seconds between events",
        "gap_max_seconds": "longest gap inside a session",
        "gap_parts": "logged gaps summed per generated gap",
        "kind_repeat": "chance an event repeats the previous event's kind",
    }
    for field in dataclasses.fields(SynthConfig):
        flag = "--" + field.name.replace("_", "-")
        synth.add_argument(
            flag,
            dest=field.name,
            type=type(field.default),
            default=field.default,
            help=f"{helps.get(field.name, field.name)} (default {field.default})",
        )
    synth.set_defaults(func=_synth)

    importer = commands.add_parser("import", help="import a dataset")
    sources = importer.add_subparsers(dest="source", required=True)

    inter = sources.add_parser("interactions", help="any CSV/TSV/parquet interaction log")
    inter.add_argument("file")
    _add_build(inter)
    inter.add_argument("--user", required=True, help="user column")
    inter.add_argument("--item", required=True, help="item column")
    inter.add_argument("--time", required=True, help="timestamp column: epoch seconds or ISO 8601")
    group = inter.add_mutually_exclusive_group()
    group.add_argument("--session", default=None, help="session column")
    group.add_argument("--session-gap", type=float, default=None, help="minutes of inactivity that start a new session (default 30)")
    inter.add_argument("--sep", default=None, help="field separator (default from the extension: , or tab)")
    inter.add_argument(
        "--event",
        default=None,
        metavar="COLUMN",
        help="action-type column: the session reliability score's composition counts its distinct values per session "
        "(without it the score is the mean of intensity and extent only)",
    )
    _add_strict(inter)
    inter.set_defaults(func=_import_interactions)

    activity = sources.add_parser("xuetangx-activity", help="the seed's raw XuetangX activity JSON (streamed)")
    activity.add_argument("file")
    _add_build(activity)
    _add_strict(activity)
    activity.set_defaults(func=_import_activity)

    seed = sources.add_parser("seed-episodes", help="the seed's processed episodes and course2id.json")
    seed.add_argument("dir")
    _add_common(seed)
    seed.add_argument("--name", required=True)
    seed.add_argument("--force", action="store_true")
    _add_episodes_per_user(seed)
    _add_strict(seed)
    seed.set_defaults(func=_import_seed)

    info = commands.add_parser("info", help="counts and summaries of a dataset")
    info.add_argument("name")
    _add_common(info)
    info.add_argument("--json", action="store_true", help="print the counts as JSON")
    info.set_defaults(func=_info)
