"""One pipeline for every source: interactions -> sessions -> pairs -> user split -> episodes.

Interactions are a DataFrame ``user, item, timestamp, session`` (raw ids as strings, timestamp in
epoch seconds). Everything on disk is written deterministically (same input, same bytes) into a
temporary folder that is renamed into place only when complete.

The steps, one module each: ``config`` (parameters, splits, schemas), ``pairs`` (interactions ->
sessions -> pairs), ``episodes`` (the user split -> episodes), ``exclusion`` (what a label can never
be), ``summaries`` (dataset.json's summaries), ``files`` (deterministic files, dataset.json, atomic
folders). The public names are re-exported here.
"""

from bench.data.pipeline.config import (
    SPLITS as SPLITS,
    MANIFEST as MANIFEST,
    SCHEMA_VERSION as SCHEMA_VERSION,
    PAIRS_SCHEMA as PAIRS_SCHEMA,
    EPISODE_COLUMNS as EPISODE_COLUMNS,
    PipelineConfig as PipelineConfig,
    check_episodes_per_user as check_episodes_per_user,
)
from bench.data.pipeline.files import (
    write_parquet as write_parquet,
    write_json as write_json,
    sha256_file as sha256_file,
    content_hash as content_hash,
    write_manifest as write_manifest,
    processed_dir as processed_dir,
    atomic_dataset_dir as atomic_dataset_dir,
)
from bench.data.pipeline.pairs import (
    INTERACTION_COLUMNS as INTERACTION_COLUMNS,
    KIND as KIND,
    normalise_interactions as normalise_interactions,
    session_key as session_key,
    session_stats as session_stats,
    collapse_sessions as collapse_sessions,
    build_vocab as build_vocab,
    list_array as list_array,
    make_pairs as make_pairs,
)
from bench.data.pipeline.exclusion import (
    LAST_PREFIX_ITEM as LAST_PREFIX_ITEM,
    EXCLUSION_RULES as EXCLUSION_RULES,
    QUERY_EXCLUDED as QUERY_EXCLUDED,
    last_items as last_items,
    labels_repeating_last as labels_repeating_last,
    exclusion_rule as exclusion_rule,
    check_exclusion_rule as check_exclusion_rule,
    query_excluded as query_excluded,
)
from bench.data.pipeline.episodes import (
    EPISODE_RULES as EPISODE_RULES,
    split_users as split_users,
    order_pairs as order_pairs,
    pair_counts as pair_counts,
    held_out_starts as held_out_starts,
    episode_starts as episode_starts,
    build_episodes as build_episodes,
    support_mean as support_mean,
    episodes_relpath as episodes_relpath,
)
from bench.data.pipeline.summaries import (
    summarise as summarise,
)
