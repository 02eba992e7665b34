"""Building a dataset folder: the whole pipeline on raw interactions, then its handle.

The pipeline's steps are in :mod:`bench.data.pipeline`; the handle that reads the result is
:mod:`bench.data.dataset`. This module joins them, so neither imports the other's user.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from bench.core.errors import BenchError
from bench.data import srs
from bench.data.dataset import open_dataset
from bench.data.pipeline import (
    EPISODE_RULES,
    KIND,
    SPLITS,
    PipelineConfig,
    atomic_dataset_dir,
    build_episodes,
    build_vocab,
    collapse_sessions,
    episodes_relpath,
    exclusion_rule,
    make_pairs,
    pair_counts,
    session_key,
    split_users,
    summarise,
    write_json,
    write_manifest,
    write_parquet,
)
from bench.data.pipeline import (
    session_stats as compute_session_stats,
)


def attach_srs(pairs: pa.Table, stats: pd.DataFrame, train_users, kinds_from: str | None, kinds_seen) -> tuple[pa.Table, dict]:
    """Add each pair's session statistics and SRS (``srs.PAIR_COLUMNS``) to ``pairs``; caps from the
    sessions of ``train_users`` only. ``stats`` is ``pipeline.session_stats``' table (with ``kinds``:
    composition defined). Returns (pairs with the columns, ``manifest["srs"]`` without its per-split part)."""
    with_kinds = "kinds" in stats.columns
    is_train = stats["user"].isin(set(train_users)).to_numpy()
    events, seconds = stats["events"].to_numpy(np.int64), stats["seconds"].to_numpy(np.int64)
    kinds = stats["kinds"].to_numpy(np.int64) if with_kinds else None
    cap_events, cap_seconds, n_cap = srs.caps(events, seconds, is_train)
    score = srs.scores(events, seconds, kinds, cap_events, cap_seconds)
    where = stats.index.get_indexer(
        session_key(pairs.column("user_id").to_numpy(zero_copy_only=False), pairs.column("session_id").to_numpy(zero_copy_only=False))
    )
    if (where < 0).any():
        raise AssertionError("a pair's session has no session statistics")
    columns = {"session_events": events, "session_seconds": seconds, "session_kinds": kinds, "session_srs": score}
    for column in srs.PAIR_COLUMNS:
        if columns[column] is not None:
            values = columns[column][where]
            pairs = pairs.append_column(column, pa.array(values, type=pa.float64() if column == srs.SCORE else pa.int64()))
    kinds_from = (kinds_from or "the session statistics' kinds") if with_kinds else None
    described = srs.describe(cap_events, cap_seconds, n_cap, kinds_from, kinds_seen if with_kinds else (), {})
    return pairs, described


def build_dataset(
    interactions: pd.DataFrame,
    *,
    name: str,
    data_dir=None,
    source: dict,
    config: PipelineConfig = PipelineConfig(),
    force: bool = False,
    progress=None,
    session_stats: pd.DataFrame | None = None,
    kinds_from: str | None = None,
    kinds_seen=None,
):
    """Run the whole pipeline on raw interactions and write ``<data-dir>/processed/<name>`` atomically.

    Every pair carries its session's statistics and SRS (bench.data.srs), computed over the raw
    events (``pipeline.session_stats(interactions)``, before consecutive repeats are removed) unless
    ``session_stats`` gives them (an importer that collapses before, by parts); an interactions
    ``kind`` column (or a ``kinds`` column of ``session_stats``) defines the composition, described by
    ``kinds_from`` with the distinct kinds ``kinds_seen``.
    Returns the opened ``Dataset``. Raises BenchError on empty results or K+Q too large.
    """
    from bench.data import diagnostics  # here, not at the top: it imports torch, which `data info` does not need

    say = progress or (lambda message: None)
    with atomic_dataset_dir(name, data_dir, force=force) as tmp:
        n_raw = len(interactions)
        if session_stats is None:
            session_stats = compute_session_stats(interactions)
            if KIND in interactions.columns:
                kinds_seen = sorted(set(interactions[KIND].dropna().astype(str).unique())) if kinds_seen is None else kinds_seen
                kinds_from = kinds_from or "the interactions' kind column"
        collapsed = collapse_sessions(interactions)
        del interactions
        vocab = build_vocab(collapsed["item"].unique())
        say(f"{n_raw:,} interactions -> {len(collapsed):,} after removing consecutive repeats; {len(vocab):,} items")
        pairs = make_pairs(collapsed, vocab, config.max_prefix)
        if pairs.num_rows == 0:
            raise BenchError(
                "no pairs: every session holds a single distinct item",
                "choose a session column or a longer --session-gap so sessions hold several items",
            )
        n_sessions = int(pd.Series(collapsed["user"] + "\x1f" + collapsed["session"]).nunique())
        n_users = int(collapsed["user"].nunique())
        sessions_per_user = diagnostics.sessions_per_user(collapsed)
        del collapsed
        split = split_users(pairs.column("user_id").to_pylist(), config.split_seed, config.split_fractions)
        pairs, srs_manifest = attach_srs(pairs, session_stats, split["train"], kinds_from, kinds_seen or ())
        del session_stats
        say(
            f"SRS caps from train sessions: {srs_manifest['cap_events']:g} events, {srs_manifest['cap_seconds']:g} s; components "
            f"{', '.join(srs_manifest['components'])}"
        )
        write_json(vocab, tmp / "vocab" / "course2id.json")
        users_col = pairs.column("user_id")
        pairs_by_split = {}
        counts_split = {}
        episodes_by_split = {}
        for name_split in SPLITS:
            mask = pc.is_in(users_col, value_set=pa.array(split[name_split], type=pa.string()))
            part = pairs.filter(mask)
            pairs_by_split[name_split] = part
            write_parquet(part, tmp / "pairs" / f"pairs_{name_split}.parquet")
            episodes = build_episodes(part, name_split, config.K, config.Q, config.stride, per_user=config.test_episodes_per_user)
            write_parquet(episodes, tmp / episodes_relpath(name_split, config.K, config.Q))
            episodes_by_split[name_split] = episodes
            srs_manifest["pairs_by_split"][name_split] = srs.distribution(part.column(srs.SCORE).to_numpy())
            per_user = pair_counts(part)
            counts_split[name_split] = {
                "users": len(split[name_split]),
                "pairs": part.num_rows,
                "episodes": episodes.num_rows,
                "episode_users": int((per_user >= config.K + config.Q).sum()),
                "users_dropped_too_few_pairs": int((per_user < config.K + config.Q).sum()),
            }
            say(f"{name_split}: {counts_split[name_split]}")
        write_manifest(
            tmp,
            name=name,
            source=source,
            settings={
                **config.to_json(),
                "episode_rules": EPISODE_RULES,
                # consecutive repeats are removed, so no label equals its prefix's last item: "last_prefix_item"
                "excluded_from_ranking": exclusion_rule([(pairs.column("prefix"), pairs.column("label"))]),
            },
            counts={
                "interactions": n_raw,
                "users": n_users,
                "users_with_pairs": sum(len(v) for v in split.values()),
                "items": len(vocab),
                "sessions": n_sessions,
                "pairs": pairs.num_rows,
                "K": config.K,
                "Q": config.Q,
                "splits": counts_split,
            },
            summaries=summarise(pairs_by_split, len(vocab), config.max_prefix),
            srs=srs_manifest,
            diagnostics=diagnostics.compute(
                pairs_by_split,
                episodes_by_split,
                len(vocab),
                max_prefix=config.max_prefix,
                n_users=n_users,
                n_sessions=n_sessions,
                sessions_per_user=sessions_per_user,
            ),
        )
    return open_dataset(name, data_dir)
