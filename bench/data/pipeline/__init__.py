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
    EPISODE_COLUMNS as EPISODE_COLUMNS,
)
from bench.data.pipeline.config import (
    MANIFEST as MANIFEST,
)
from bench.data.pipeline.config import (
    PAIRS_SCHEMA as PAIRS_SCHEMA,
)
from bench.data.pipeline.config import (
    SCHEMA_VERSION as SCHEMA_VERSION,
)
from bench.data.pipeline.config import (
    SPLITS as SPLITS,
)
from bench.data.pipeline.config import (
    PipelineConfig as PipelineConfig,
)
from bench.data.pipeline.config import (
    check_episodes_per_user as check_episodes_per_user,
)
from bench.data.pipeline.episodes import (
    EPISODE_RULES as EPISODE_RULES,
)
from bench.data.pipeline.episodes import (
    build_episodes as build_episodes,
)
from bench.data.pipeline.episodes import (
    episode_starts as episode_starts,
)
from bench.data.pipeline.episodes import (
    episodes_relpath as episodes_relpath,
)
from bench.data.pipeline.episodes import (
    held_out_starts as held_out_starts,
)
from bench.data.pipeline.episodes import (
    order_pairs as order_pairs,
)
from bench.data.pipeline.episodes import (
    pair_counts as pair_counts,
)
from bench.data.pipeline.episodes import (
    split_users as split_users,
)
from bench.data.pipeline.episodes import (
    support_mean as support_mean,
)
from bench.data.pipeline.exclusion import (
    EXCLUSION_RULES as EXCLUSION_RULES,
)
from bench.data.pipeline.exclusion import (
    LAST_PREFIX_ITEM as LAST_PREFIX_ITEM,
)
from bench.data.pipeline.exclusion import (
    QUERY_EXCLUDED as QUERY_EXCLUDED,
)
from bench.data.pipeline.exclusion import (
    check_exclusion_rule as check_exclusion_rule,
)
from bench.data.pipeline.exclusion import (
    exclusion_rule as exclusion_rule,
)
from bench.data.pipeline.exclusion import (
    labels_repeating_last as labels_repeating_last,
)
from bench.data.pipeline.exclusion import (
    last_items as last_items,
)
from bench.data.pipeline.exclusion import (
    query_excluded as query_excluded,
)
from bench.data.pipeline.files import (
    atomic_dataset_dir as atomic_dataset_dir,
)
from bench.data.pipeline.files import (
    content_hash as content_hash,
)
from bench.data.pipeline.files import (
    processed_dir as processed_dir,
)
from bench.data.pipeline.files import (
    sha256_file as sha256_file,
)
from bench.data.pipeline.files import (
    write_json as write_json,
)
from bench.data.pipeline.files import (
    write_manifest as write_manifest,
)
from bench.data.pipeline.files import (
    write_parquet as write_parquet,
)
from bench.data.pipeline.pairs import (
    INTERACTION_COLUMNS as INTERACTION_COLUMNS,
)
from bench.data.pipeline.pairs import (
    KIND as KIND,
)
from bench.data.pipeline.pairs import (
    build_vocab as build_vocab,
)
from bench.data.pipeline.pairs import (
    collapse_sessions as collapse_sessions,
)
from bench.data.pipeline.pairs import (
    list_array as list_array,
)
from bench.data.pipeline.pairs import (
    make_pairs as make_pairs,
)
from bench.data.pipeline.pairs import (
    normalise_interactions as normalise_interactions,
)
from bench.data.pipeline.pairs import (
    session_key as session_key,
)
from bench.data.pipeline.pairs import (
    session_stats as session_stats,
)
from bench.data.pipeline.summaries import (
    summarise as summarise,
)
