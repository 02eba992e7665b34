"""What a label can never be: the item the evaluator leaves out of every ranking (``excluded_from_ranking``)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from bench.core.errors import BenchError
from bench.data.pipeline.pairs import list_array

# What a label can never be, recorded as manifest["pipeline"]["excluded_from_ranking"]: one of
# EXCLUSION_RULES, or None (nothing excluded). The evaluator (bench.core.metrics) leaves the excluded
# item out of every method's ranking, as it leaves out padding; val and test alike.
LAST_PREFIX_ITEM = "last_prefix_item"


EXCLUSION_RULES = {
    LAST_PREFIX_ITEM: (
        "the query prefix's last item: no pair of the dataset has label == prefix[-1] (the pipeline removes "
        "consecutive repeats, so the course just taken is never the next one)"
    ),
}


QUERY_EXCLUDED = "query_excluded"  # the episodes' column (added on read): per query, the excluded item id, 0 = none


def last_items(prefixes) -> np.ndarray:
    """The last item of each prefix of a list<int64> array (int64 [n]; 0 for an empty prefix)."""
    prefixes = prefixes.combine_chunks() if isinstance(prefixes, pa.ChunkedArray) else prefixes
    offsets = prefixes.offsets.to_numpy()
    values = prefixes.values.to_numpy()
    ends = offsets[1:]
    nonempty = ends > offsets[:-1]
    last = np.zeros(len(ends), dtype=np.int64)
    last[nonempty] = values[ends[nonempty] - 1]
    return last


def labels_repeating_last(prefixes, labels) -> int:
    """How many pairs have label == the prefix's last item (``prefixes`` list<int64>, ``labels`` int64)."""
    labels = labels.combine_chunks() if isinstance(labels, pa.ChunkedArray) else labels
    labels = np.asarray(labels.to_numpy(zero_copy_only=False) if isinstance(labels, pa.Array) else labels, dtype=np.int64)
    last = last_items(prefixes)
    return int(((last == labels) & (last > 0)).sum())


def exclusion_rule(pair_columns) -> str | None:
    """The protocol the data allows: ``LAST_PREFIX_ITEM`` when no (prefixes, labels) pair of
    ``pair_columns`` has label == prefix[-1], else None (a label may repeat the last item: rank it)."""
    repeats = sum(labels_repeating_last(prefixes, labels) for prefixes, labels in pair_columns)
    return LAST_PREFIX_ITEM if repeats == 0 else None


def check_exclusion_rule(rule) -> str | None:
    if rule is not None and rule not in EXCLUSION_RULES:
        raise BenchError(
            f"dataset.json pipeline.excluded_from_ranking is {rule!r}, not a known rule",
            f"use one of {', '.join(EXCLUSION_RULES)} or null (rebuild the dataset)",
        )
    return rule


def query_excluded(query_prefixes, rule: str | None) -> pa.ListArray:
    """Per episode, per query, the item id ``rule`` excludes from its ranking (0: none); list<int64>.

    ``query_prefixes`` is an episodes' list<list<int64>> column; None excludes nothing.
    """
    check_exclusion_rule(rule)
    query_prefixes = query_prefixes.combine_chunks() if isinstance(query_prefixes, pa.ChunkedArray) else query_prefixes
    inner = query_prefixes.values
    excluded = last_items(inner) if rule == LAST_PREFIX_ITEM else np.zeros(len(inner), dtype=np.int64)
    return list_array(query_prefixes.offsets.to_numpy(), pa.array(excluded, type=pa.int64()))
