"""Building a dataset folder: the whole pipeline on raw interactions, then its handle.

The pipeline's steps are in :mod:`bench.data.pipeline`; the handle that reads the result is
:mod:`bench.data.dataset`. This module joins them, so neither imports the other's user.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from bench.core.errors import BenchError
from bench.data.dataset import open_dataset
from bench.data.pipeline import (
    PipelineConfig,
    SPLITS,
    SCHEMA_VERSION,
    EPISODE_RULES,
    atomic_dataset_dir,
    collapse_sessions,
    build_vocab,
    make_pairs,
    split_users,
    write_json,
    write_parquet,
    build_episodes,
    episodes_relpath,
    exclusion_rule,
    pair_counts,
    summarise,
    write_manifest,
)


def build_dataset(
    interactions: pd.DataFrame,
    *,
    name: str,
    data_dir=None,
    source: dict,
    config: PipelineConfig = PipelineConfig(),
    force: bool = False,
    progress=None,
):
    """Run the whole pipeline on raw interactions and write ``<data-dir>/processed/<name>`` atomically.

    Returns the opened ``Dataset``. Raises BenchError on empty results or K+Q too large.
    """
    from bench.data import diagnostics  # here, not at the top: it imports torch, which `data info` does not need

    say = progress or (lambda message: None)
    with atomic_dataset_dir(name, data_dir, force=force) as tmp:
        n_raw = len(interactions)
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
            per_user = pair_counts(part)
            counts_split[name_split] = {
                "users": len(split[name_split]),
                "pairs": part.num_rows,
                "episodes": episodes.num_rows,
                "episode_users": int((per_user >= config.K + config.Q).sum()),
                "users_dropped_too_few_pairs": int((per_user < config.K + config.Q).sum()),
            }
            say(f"{name_split}: {counts_split[name_split]}")
        manifest = {
            "schema": SCHEMA_VERSION,
            "name": name,
            "source": source,
            "pipeline": {
                **config.to_json(),
                "episode_rules": EPISODE_RULES,
                # consecutive repeats are removed, so no label equals its prefix's last item: "last_prefix_item"
                "excluded_from_ranking": exclusion_rule([(pairs.column("prefix"), pairs.column("label"))]),
            },
            "counts": {
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
            "summaries": summarise(pairs_by_split, len(vocab), config.max_prefix),
            "diagnostics": diagnostics.compute(
                pairs_by_split, episodes_by_split, len(vocab), max_prefix=config.max_prefix,
                n_users=n_users, n_sessions=n_sessions, sessions_per_user=sessions_per_user,
            ),
        }
        write_manifest(tmp, manifest)
    return open_dataset(name, data_dir)
