"""One pipeline for every source: interactions -> sessions -> pairs -> user split -> episodes.

Interactions are a DataFrame ``user, item, timestamp, session`` (raw ids as strings, timestamp in
epoch seconds). Everything on disk is written deterministically (same input, same bytes) into a
temporary folder that is renamed into place only when complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.core.atomic import atomic_write, atomic_write_text
from bench.core.errors import BenchError
from bench.core.paths import default_data_dir

SPLITS = ("train", "val", "test")
MANIFEST = "dataset.json"
SCHEMA_VERSION = 1

PAIRS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("session_id", pa.string()),
        ("prefix", pa.list_(pa.int64())),
        ("label", pa.int64()),
        ("timestamp", pa.int64()),
    ]
)
EPISODE_COLUMNS = ("user_id", "support_prefixes", "support_labels", "query_prefixes", "query_labels")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The pipeline's parameters; all of them are recorded in dataset.json."""

    max_prefix: int = 50
    split_seed: int = 20260107
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    K: int = 5
    Q: int = 10
    stride: int = 1
    test_episodes_per_user: int = 1  # val/test episodes per learner; 1 is the seed notebook's protocol

    def __post_init__(self):
        if self.K < 1 or self.Q < 1:
            raise BenchError(f"K={self.K} and Q={self.Q} must both be at least 1", "pass --K 5 --Q 10 or similar")
        if self.stride < 1:
            raise BenchError(f"stride {self.stride} must be at least 1", "pass --stride 1")
        check_episodes_per_user(self.test_episodes_per_user)
        if self.max_prefix < 1:
            raise BenchError(f"max_prefix {self.max_prefix} must be at least 1", "pass --max-prefix 50")

    def to_json(self) -> dict:
        return {
            "max_prefix": self.max_prefix,
            "split_seed": self.split_seed,
            "split_fractions": list(self.split_fractions),
            "K": self.K,
            "Q": self.Q,
            "stride": self.stride,
            "test_episodes_per_user": self.test_episodes_per_user,
        }


def check_episodes_per_user(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise BenchError(f"test_episodes_per_user {n!r} must be a whole number >= 1", "pass --test-episodes-per-user 1 (the seed's protocol) or more")
    return n


_HELD_OUT_RULE = (
    "up to N = test_episodes_per_user episodes per user, taken backwards from the user's L time-ordered pairs: "
    "episode j = 0..N-1 has query = pairs [L-(j+1)Q, L-jQ) and support = the K pairs just before them; it exists "
    "when L >= P+(j+1)Q, where P = the population K (the largest K of the grid at this Q, else K), so every K of a "
    "grid scores the same users on the same query pairs; query sets of one user are disjoint; rows ordered by user, "
    "then oldest episode first. N=1 and P=K: one episode per user, the user's last K+Q pairs"
)
EPISODE_RULES = {
    "train": "sliding windows of K+Q consecutive time-ordered pairs per user, step `stride`",
    "val": _HELD_OUT_RULE,
    "test": _HELD_OUT_RULE,
    "order": "pairs sorted by label timestamp, ties by session id then position; first K are support",
}


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


# ----------------------------------------------------------------------------------------------
# Files: deterministic parquet, hashes, atomic folders


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` so that the same table always gives the same bytes; atomic (temp + rename)."""
    atomic_write(path, lambda tmp: pq.write_table(table.replace_schema_metadata(None), tmp, compression="zstd", compression_level=3))


def write_json(obj, path: Path) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hash(files: dict[str, str]) -> str:
    """sha256 over the (relative path, file sha256) list, sorted by path."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(f"{rel}\0{files[rel]}\n".encode())
    return digest.hexdigest()


def write_manifest(
    folder: Path, *, name: str, source: dict, settings: dict, counts: dict, summaries: dict, srs: dict, diagnostics: dict
) -> dict:
    """Write ``folder``'s dataset.json, the one writer of every dataset's manifest: its sections in one order
    (schema, name, source, pipeline = ``settings``, counts, summaries, srs, diagnostics), then ``files``
    (sha256 of every file so far) and ``content_hash``. Returns the manifest written."""
    manifest = {
        "schema": SCHEMA_VERSION, "name": name, "source": source, "pipeline": settings, "counts": counts,
        "summaries": summaries, "srs": srs, "diagnostics": diagnostics,
    }
    files = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            files[path.relative_to(folder).as_posix()] = sha256_file(path)
    manifest = {**manifest, "files": files, "content_hash": content_hash(files)}
    write_json(manifest, Path(folder) / MANIFEST)
    return manifest


def processed_dir(data_dir) -> Path:
    return Path(data_dir if data_dir is not None else default_data_dir()) / "processed"


@contextmanager
def atomic_dataset_dir(name: str, data_dir, force: bool = False):
    """Yield a temporary folder; on success it replaces ``<data-dir>/processed/<name>``, on error it is removed."""
    if not name or "/" in name or name.startswith("."):
        raise BenchError(f"dataset name {name!r} is not a plain folder name", "pick a name like xuetangx-synth")
    base = processed_dir(data_dir)
    final = base / name
    if final.exists() and not force:
        raise BenchError(f"dataset {name!r} already exists at {final}", "pass --force to rebuild it or pick another --name")
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            old = base / f".old-{name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# Interactions -> sessions -> pairs


INTERACTION_COLUMNS = ("user", "item", "timestamp", "session")
KIND = "kind"  # optional interactions column: the event's kind (action type), for the SRS's composition


def normalise_interactions(interactions: pd.DataFrame) -> pd.DataFrame:
    """Check and coerce ``user, item, timestamp, session`` (and ``kind`` when present); drop rows with a missing value."""
    missing = [c for c in INTERACTION_COLUMNS if c not in interactions.columns]
    if missing:
        raise ValueError(f"interactions lack columns {missing}")
    columns = list(INTERACTION_COLUMNS) + ([KIND] if KIND in interactions.columns else [])
    df = interactions[columns].dropna()
    if len(df) == 0:
        raise BenchError("no interactions left after filtering", "check the input file, the column choice and the filters")
    out = {
        "user": df["user"].astype(str).to_numpy(dtype=object),
        "item": df["item"].astype(str).to_numpy(dtype=object),
        "timestamp": df["timestamp"].to_numpy(dtype=np.int64),
        "session": df["session"].astype(str).to_numpy(dtype=object),
    }
    if KIND in columns:
        out[KIND] = df[KIND].astype(str).to_numpy(dtype=object)
    return pd.DataFrame(out)


def session_key(users, sessions) -> np.ndarray:
    """One string per (user, session) (both str already): how sessions are told apart (a session id is per user)."""
    return (pd.Series(users, dtype=object) + "\x1f" + pd.Series(sessions, dtype=object)).to_numpy(dtype=object)


def session_stats(interactions: pd.DataFrame) -> pd.DataFrame:
    """Per session, over its raw events (before consecutive repeats are removed; the SRS's inputs,
    bench.data.srs): ``user, session, events`` (events), ``seconds`` (last minus first event time)
    and, when the interactions have a ``kind`` column, ``kinds`` (distinct kinds). Indexed by
    ``session_key``, sorted."""
    df = normalise_interactions(interactions)
    codes, keys = pd.factorize(session_key(df["user"].to_numpy(), df["session"].to_numpy()), sort=True)
    n = len(keys)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])  # one per session: every code occurs
    times = df["timestamp"].to_numpy(dtype=np.int64)[order]
    first_row = order[starts]
    out = pd.DataFrame(
        {
            "user": df["user"].to_numpy()[first_row],
            "session": df["session"].to_numpy()[first_row],
            "events": np.diff(np.r_[starts, len(order)]).astype(np.int64),
            "seconds": (np.maximum.reduceat(times, starts) - np.minimum.reduceat(times, starts)).astype(np.int64),
        },
        index=pd.Index(np.asarray(keys, dtype=object), name="session_key"),
    )
    if KIND in df.columns:
        kind_codes, kinds = pd.factorize(df[KIND].to_numpy())
        distinct = np.unique(codes.astype(np.int64) * len(kinds) + kind_codes)
        out["kinds"] = np.bincount(distinct // len(kinds), minlength=n).astype(np.int64)
    return out


def collapse_sessions(interactions: pd.DataFrame) -> pd.DataFrame:
    """Sort each (user, session) by time (stable) and drop consecutive repeats of the same item."""
    df = normalise_interactions(interactions)
    session_codes, _ = pd.factorize(df["user"] + "\x1f" + df["session"], sort=True)
    order = np.lexsort((np.arange(len(df)), df["timestamp"].to_numpy(), session_codes))
    df = df.iloc[order].reset_index(drop=True)
    session_codes = session_codes[order]
    items = df["item"].to_numpy()
    keep = np.ones(len(df), dtype=bool)
    keep[1:] = (session_codes[1:] != session_codes[:-1]) | (items[1:] != items[:-1])
    return df.loc[keep, list(INTERACTION_COLUMNS)].reset_index(drop=True)


def build_vocab(items) -> dict[str, int]:
    """Raw item id -> 1..N in sorted raw-id order; 0 stays free for padding."""
    unique = sorted(set(str(i) for i in items))
    return {raw: index + 1 for index, raw in enumerate(unique)}


def list_array(offsets: np.ndarray, values) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)


def make_pairs(collapsed: pd.DataFrame, vocab: dict[str, int], max_prefix: int) -> pa.Table:
    """Pairs from collapsed sessions, ordered by user, label time, session, position.

    Position t >= 1 of a session gives (prefix = the up to ``max_prefix`` items before t, label = item t).
    """
    n = len(collapsed)
    session_key = (collapsed["user"] + "\x1f" + collapsed["session"]).to_numpy()
    session_codes, _ = pd.factorize(session_key, sort=True)
    new_session = np.ones(n, dtype=bool)
    new_session[1:] = session_codes[1:] != session_codes[:-1]
    session_start = np.maximum.accumulate(np.where(new_session, np.arange(n), 0))
    position = np.arange(n) - session_start
    item_ids = collapsed["item"].map(vocab).to_numpy(dtype=np.int64)
    if (item_ids < 1).any():
        raise AssertionError("a real item got id 0")

    rows = np.flatnonzero(position >= 1)
    starts = np.maximum(session_start[rows], rows - max_prefix)
    lengths = rows - starts
    user_codes, _ = pd.factorize(collapsed["user"].to_numpy(), sort=True)
    timestamps = collapsed["timestamp"].to_numpy(dtype=np.int64)
    order = np.lexsort((position[rows], session_codes[rows], timestamps[rows], user_codes[rows]))
    rows, starts, lengths = rows[order], starts[order], lengths[order]

    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    prefix = list_array(offsets.astype(np.int32), pa.array(item_ids[flat], type=pa.int64()))
    return pa.Table.from_arrays(
        [
            pa.array(collapsed["user"].to_numpy()[rows], type=pa.string()),
            pa.array(collapsed["session"].to_numpy()[rows], type=pa.string()),
            prefix,
            pa.array(item_ids[rows], type=pa.int64()),
            pa.array(timestamps[rows], type=pa.int64()),
        ],
        schema=PAIRS_SCHEMA,
    )


def split_users(users, seed: int, fractions=(0.8, 0.1, 0.1)) -> dict[str, list[str]]:
    """Disjoint seeded user split: sorted ids, one permutation, first 80% train, next 10% val, rest test."""
    users = sorted(set(users))
    perm = np.random.default_rng(seed).permutation(len(users))
    n_train = int(fractions[0] * len(users))
    n_val = int(fractions[1] * len(users))
    shuffled = [users[i] for i in perm]
    return {
        "train": sorted(shuffled[:n_train]),
        "val": sorted(shuffled[n_train : n_train + n_val]),
        "test": sorted(shuffled[n_train + n_val :]),
    }


# ----------------------------------------------------------------------------------------------
# Pairs -> episodes


def order_pairs(pairs: pa.Table) -> pa.Table:
    """Stable sort by user, then label timestamp (the file order already breaks ties by session/position)."""
    users = pairs.column("user_id").to_numpy(zero_copy_only=False)
    user_codes, _ = pd.factorize(users, sort=True)
    ts = pairs.column("timestamp").to_numpy()
    order = np.lexsort((np.arange(len(ts)), ts, user_codes))
    if (order == np.arange(len(order))).all():
        return pairs
    return pairs.take(pa.array(order))


def pair_counts(pairs: pa.Table) -> pd.Series:
    """Number of pairs per user (index sorted by user id)."""
    users = pairs.column("user_id").to_numpy(zero_copy_only=False)
    return pd.Series(users).value_counts().sort_index()


def held_out_starts(user_start: np.ndarray, user_len: np.ndarray, K: int, Q: int, population_K: int, per_user: int) -> np.ndarray:
    """First pair of every val/test episode (EPISODE_RULES["test"]): per user, oldest episode first."""
    ends = user_start + user_len  # one past each user's last pair
    offsets = np.arange(per_user - 1, -1, -1)  # j, oldest (largest) first
    query_start = ends[:, None] - (offsets[None, :] + 1) * Q
    exists = user_len[:, None] >= population_K + (offsets[None, :] + 1) * Q
    return (query_start - K)[exists]  # row-major: by user, then oldest first


def episode_starts(
    pairs: pa.Table, split: str, K: int, Q: int, stride: int = 1, population_K: int | None = None, per_user: int = 1
) -> tuple[pa.Table, np.ndarray]:
    """(the time-ordered pairs, the index into them of each episode's first pair), in episode order.

    Episode e's support is pairs ``starts[e] .. starts[e]+K-1``, its query the Q after them; see
    EPISODE_RULES and ``build_episodes``, which uses it (so does ``support_mean``). Only the columns
    ``user_id`` and ``timestamp`` of ``pairs`` are read. Raises BenchError as ``build_episodes``."""
    pairs = order_pairs(pairs)
    population_K = K if population_K is None or split == "train" else int(population_K)
    if population_K < K:
        raise BenchError(f"population K {population_K} is smaller than K={K}", "the population K is the largest K scored; pass one >= K")
    length = population_K + Q
    users = pairs.column("user_id").to_numpy(zero_copy_only=False)
    n = len(users)
    if n == 0:
        raise BenchError(f"the {split} split has no pairs", "rebuild the dataset from a larger input")
    change = np.ones(n, dtype=bool)
    change[1:] = users[1:] != users[:-1]
    user_start = np.flatnonzero(change)
    user_len = np.diff(np.append(user_start, n))
    if user_len.max() < length:
        what = f"K+Q={length}" if population_K == K else f"K+Q={length} (population K {population_K}, Q {Q})"
        raise BenchError(
            f"{what} is larger than any {split} user allows (the most pairs a {split} user has is {int(user_len.max())})",
            f"pick K+Q <= {int(user_len.max())}",
        )
    eligible = user_len >= length
    if split == "train":
        windows = np.where(eligible, (user_len - length) // stride + 1, 0)
        first = np.repeat(user_start, windows)
        within = np.arange(windows.sum()) - np.repeat(np.cumsum(windows) - windows, windows)
        starts = first + stride * within
    else:
        starts = held_out_starts(user_start, user_len, K, Q, population_K, per_user)
    return pairs, starts


def build_episodes(
    pairs: pa.Table, split: str, K: int, Q: int, stride: int = 1, population_K: int | None = None, per_user: int = 1
) -> pa.Table:
    """Episodes of K support then Q query pairs, time-ordered; see EPISODE_RULES.

    ``population_K`` (>= K) and ``per_user`` shape val/test only; train is always sliding windows.
    Raises BenchError when no user of the split has enough pairs, naming the largest K+Q allowed.
    """
    pairs, starts = episode_starts(pairs, split, K, Q, stride, population_K, per_user)
    users = pairs.column("user_id").to_numpy(zero_copy_only=False)
    E = len(starts)
    support_idx = (starts[:, None] + np.arange(K)[None, :]).ravel()
    query_idx = (starts[:, None] + K + np.arange(Q)[None, :]).ravel()
    prefix = pairs.column("prefix").combine_chunks()
    label = pairs.column("label").combine_chunks()
    ts = pairs.column("timestamp").combine_chunks()

    def nest(column, idx, size):
        return list_array(np.arange(0, E * size + 1, size, dtype=np.int32), column.take(pa.array(idx)))

    return pa.Table.from_arrays(
        [
            pa.array(users[starts], type=pa.string()),
            nest(prefix, support_idx, K),
            nest(label, support_idx, K),
            nest(prefix, query_idx, Q),
            nest(label, query_idx, Q),
            nest(ts, support_idx, K),
            nest(ts, query_idx, Q),
        ],
        names=list(EPISODE_COLUMNS) + ["support_timestamps", "query_timestamps"],
    )


def support_mean(
    pairs: pa.Table, column: str, split: str, K: int, Q: int, stride: int = 1, population_K: int | None = None, per_user: int = 1
) -> np.ndarray:
    """Per episode (rows in ``build_episodes``' order), the mean of ``column`` over its K support pairs
    (float64 [E]); the same indexing as ``build_episodes``, so pairs are matched by position, not value."""
    ordered, starts = episode_starts(pairs, split, K, Q, stride, population_K, per_user)
    values = ordered.column(column).to_numpy().astype(np.float64)
    return values[starts[:, None] + np.arange(K)[None, :]].mean(axis=1)


def episodes_relpath(split: str, K: int, Q: int, population_K: int | None = None) -> str:
    """The cached file; ``_P{population_K}`` is added only when the population K differs from K."""
    suffix = "" if population_K is None or int(population_K) == int(K) or split == "train" else f"_P{int(population_K)}"
    return f"episodes/episodes_{split}_K{K}_Q{Q}{suffix}.parquet"


# ----------------------------------------------------------------------------------------------
# Summaries and the whole build


def _quantiles(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {}
    q = np.percentile(values, [0, 25, 50, 75, 90, 100])
    return {
        "mean": round(float(np.mean(values)), 4),
        **{k: float(v) for k, v in zip(("min", "p25", "median", "p75", "p90", "max"), q)},
    }


def summarise(pairs_by_split: dict[str, pa.Table], n_items: int, max_prefix: int) -> dict:
    """Prefix-length and label-popularity summaries over all pairs."""
    all_pairs = pa.concat_tables(pairs_by_split.values())
    lengths = pc.list_value_length(all_pairs.column("prefix")).to_numpy()
    labels = all_pairs.column("label").to_numpy()
    counts = np.sort(np.bincount(labels, minlength=n_items + 1)[1:])[::-1]
    total = max(int(counts.sum()), 1)
    cum = np.cumsum(counts)
    ascending = np.sort(counts).astype(np.float64)
    m = len(ascending)
    # Gini coefficient of label counts over all items (0 = uniform, near 1 = concentrated)
    gini = float(2 * np.sum(np.arange(1, m + 1) * ascending) / (m * total) - (m + 1) / m) if m else 0.0
    return {
        "prefix_length": {**_quantiles(lengths), "share_truncated": round(float(np.mean(lengths >= max_prefix)), 6)},
        "label_popularity": {
            "items_seen_as_label": int((counts > 0).sum()),
            "top1_share": round(float(cum[0] / total), 6) if len(cum) else 0.0,
            "top10_share": round(float(cum[min(9, len(cum) - 1)] / total), 6) if len(cum) else 0.0,
            "top1pct_items_share": round(float(cum[max(0, int(0.01 * len(cum)) - 1)] / total), 6) if len(cum) else 0.0,
            "gini": round(gini, 6),
        },
    }
