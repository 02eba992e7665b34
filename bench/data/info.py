"""``python -m bench data info NAME``: a dataset's counts and summaries, as rich tables or JSON."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from bench.data import pipeline
from bench.data.dataset import open_dataset


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def cached_episode_counts(dataset) -> dict[str, int]:
    """Episode rows of every cached episodes file, keyed ``{split}_K{K}_Q{Q}`` (read from parquet footers)."""
    import pyarrow.parquet as pq

    counts = {}
    for path in sorted((dataset.root / "episodes").glob("episodes_*_K*_Q*.parquet")):
        counts[path.stem.removeprefix("episodes_")] = pq.ParquetFile(path).metadata.num_rows
    return counts


# SRS-adaptive MAML's threshold (meta/srs_maml.py SRS_DEFAULTS, notebook 10's TAU): shown, not imported
# (data sits below meta); tests/test_srs_maml.py checks that the two agree.
TASK_SRS_TAU = 0.5


def task_srs(dataset) -> dict:
    """Per split, the distribution of the task SRS (the mean session SRS of an episode's K support pairs,
    what srs-maml adapts by) at the dataset's K and Q, with the share of tasks below TASK_SRS_TAU; {} without
    session statistics or episodes."""
    if not dataset.srs_available:
        return {}
    from bench.core.errors import BenchError
    from bench.data.srs import distribution

    K, Q = int(dataset.manifest["counts"]["K"]), int(dataset.manifest["counts"]["Q"])
    found = {}
    for split in pipeline.SPLITS:
        try:
            values = dataset.episode_srs(split, K, Q)
        except BenchError:  # no user of that split has K+Q pairs
            continue
        found[split] = {**distribution(values), "below_tau": round(float((values < TASK_SRS_TAU).mean()), 6) if len(values) else None}
    return {"K": K, "Q": Q, "tau": TASK_SRS_TAU, "by_split": found} if found else {}


def info_dict(name: str, data_dir=None) -> dict:
    dataset = open_dataset(name, data_dir)
    m = dataset.manifest
    return {
        "name": dataset.name,
        "root": str(dataset.root),
        "source": m["source"].get("kind"),
        "source_rows": m["source"].get("rows"),  # input rows read, kept, dropped by reason (importers)
        "content_hash": dataset.content_hash,
        "pipeline": {k: v for k, v in m["pipeline"].items() if k != "episode_rules"},
        "counts": m["counts"],
        "cached_episodes": cached_episode_counts(dataset),
        "summaries": m.get("summaries", {}),
        "srs": dataset.srs,
        "task_srs": task_srs(dataset),
        "diagnostics": m.get("diagnostics"),
    }


def show_info(name: str, data_dir=None, as_json: bool = False, console: Console | None = None) -> dict:
    info = info_dict(name, data_dir)
    console = console or Console()
    if as_json:
        print(json.dumps(info, indent=2))
        return info
    counts = info["counts"]
    head = Table(title=f"dataset {info['name']} ({info['source']}, hash {info['content_hash'][:12]})", show_header=False)
    head.add_column("what")
    head.add_column("value", justify="right")
    if info["source_rows"]:
        from bench.data.importers import rows_line

        head.add_row("input", rows_line(info["source_rows"]))
    for key in ("interactions", "users", "users_with_pairs", "items", "sessions", "pairs"):
        head.add_row(key.replace("_", " "), _fmt(counts.get(key)))
    p = info["pipeline"]
    head.add_row(
        "pipeline",
        f"max_prefix={p.get('max_prefix')} split_seed={p.get('split_seed')} K={p.get('K')} Q={p.get('Q')} stride={p.get('stride')} "
        f"test_episodes_per_user={p.get('test_episodes_per_user', 1)}",
    )
    console.print(head)

    K, Q = counts["K"], counts["Q"]
    splits = Table(title=f"splits (episodes at K={K}, Q={Q})")
    for column in ("split", "users", "pairs", "episodes", "episode users", f"users dropped (< {K + Q} pairs)"):
        splits.add_column(column, justify="right" if column != "split" else "left")
    for split in pipeline.SPLITS:
        c = counts["splits"][split]
        splits.add_row(split, *(_fmt(c.get(k)) for k in ("users", "pairs", "episodes", "episode_users", "users_dropped_too_few_pairs")))
    console.print(splits)

    cached = Table(title="episode files present")
    cached.add_column("file")
    cached.add_column("episodes", justify="right")
    for key, n in info["cached_episodes"].items():
        cached.add_row(key, _fmt(n))
    console.print(cached)

    summaries = info["summaries"]
    if summaries:
        table = Table(title="prefix length and label popularity (all pairs)")
        table.add_column("summary")
        table.add_column("value", justify="right")
        for group, values in summaries.items():
            for key, value in values.items():
                table.add_row(f"{group.replace('_', ' ')}: {key.replace('_', ' ')}", _fmt(value))
        console.print(table)
    for line in srs_lines(info["srs"]):
        console.print(line, highlight=False)
    if info["srs"].get("available"):
        console.print(srs_table(info["srs"]))
    if info["task_srs"]:
        console.print(task_srs_table(info["task_srs"]))
    if info["diagnostics"]:
        console.print(diagnostics_table(info["diagnostics"]))
    return info


def srs_lines(srs: dict) -> list[str]:
    """The session reliability score's header lines: caps, components, or why there is none."""
    if not srs.get("available"):
        return [f"SRS: unavailable: {srs.get('why', 'no session statistics')}"]
    return [
        f"SRS caps ({srs.get('source')}, p{srs.get('percentile')} over {_fmt(srs.get('n_cap_sessions'))} sessions): "
        f"{_fmt(srs.get('cap_events'))} events, {_fmt(srs.get('cap_seconds'))} s",
        f"SRS components: {', '.join(srs.get('components', []))}; composition: {srs.get('composition')}",
    ]


def srs_table(srs: dict) -> Table:
    """Pair-level session SRS per split (mean, p10, p50, p90); ``srs_lines`` give the caps."""
    table = Table(title="SRS per split (each pair's session SRS)")
    for column in ("split", "pairs", "mean", "p10", "p50", "p90"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, values in (srs.get("pairs_by_split") or {}).items():
        table.add_row(split, *(_fmt(values.get(key)) for key in ("n", "mean", "p10", "p50", "p90")))
    return table


def task_srs_table(tasks: dict) -> Table:
    """Task SRS per split (``task_srs``): what srs-maml's rate, steps and weights follow."""
    table = Table(title=f"task SRS per split (mean over an episode's K={tasks['K']} support pairs; srs-maml's tau {tasks['tau']:g})")
    for column in ("split", "episodes", "mean", "p10", "p50", "p90", f"below {tasks['tau']:g}"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, values in tasks["by_split"].items():
        below = values.get("below_tau")
        table.add_row(split, *(_fmt(values.get(key)) for key in ("n", "mean", "p10", "p50", "p90")), "-" if below is None else f"{100 * below:.1f}%")
    return table


def _flat(diagnostics: dict, prefix: str = ""):
    """(dotted name, value) for every scalar diagnostic, nested groups too (scored_query_slices.repeat.*);
    the plot lists are left out."""
    for key, value in diagnostics.items():
        if key in ("prefix_length_hist", "label_share_curve"):
            continue
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def diagnostics_table(d: dict) -> Table:
    """Every scalar diagnostic beside the real XuetangX figure and the band a stand-in should meet."""
    from bench.data.diagnostics import XUETANGX_BANDS

    table = Table(title="diagnostics (model-free; shares are fractions; band: what a XuetangX stand-in should meet)")
    for column in ("statistic", "value", "real XuetangX", "band", ""):
        table.add_column(column, justify="left" if column == "statistic" else "right", no_wrap=column == "statistic")
    for name, value in _flat(d):
        real, low, high = XUETANGX_BANDS.get(name, (None, None, None))
        band, mark = "", ""
        if low is not None or high is not None:
            band = f"{_fmt(low) if low is not None else ''}..{_fmt(high) if high is not None else ''}"
            inside = value is not None and (low is None or value >= low) and (high is None or value <= high)
            mark = "in" if inside else "OUT"
        table.add_row(name, _fmt(value), _fmt(real) if real is not None else "", band, mark)
    return table
