"""Interactions -> sessions -> pairs: checked interactions, session statistics, consecutive repeats removed,
the vocabulary, (prefix, label) pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from bench.core.errors import BenchError
from bench.data.pipeline.config import PAIRS_SCHEMA

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
