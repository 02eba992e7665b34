"""The seed's processed episodes + course2id.json -> dataset: ids repaired, rows checked, pairs derived.

The only importer with no interactions to hand to ``build.build_dataset``: it writes the seed's episode
files as given and derives the pairs behind them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.core.errors import BenchError
from bench.data import pipeline, srs
from bench.data.importers.rows import RowAccount, missing_values


def _find_seed_root(folder: Path) -> Path:
    """DIR itself, or the one ``[data/]processed/<name>`` folder below it that holds episodes/ and vocab/."""
    if (folder / "episodes").is_dir() and (folder / "vocab").is_dir():
        return folder
    candidates = sorted(
        p
        for pattern in ("*", "processed/*", "data/processed/*")
        for p in folder.glob(pattern)
        if (p / "episodes").is_dir() and (p / "vocab").is_dir()
    )
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        names = ", ".join(str(c) for c in candidates)
        raise BenchError(f"{folder} holds several seed datasets ({names})", "pass the one folder to import")
    raise BenchError(
        f"{folder} has no episodes/ and vocab/ folders",
        "pass the seed's data/processed/<name> folder (episodes/episodes_*_K*_Q*.parquet and vocab/course2id.json)",
    )


def check_vocab(course2id) -> int:
    """Return the shift that makes ids 1..N: 1 if they are 0..N-1, 0 if already 1..N; refuse otherwise."""
    if not isinstance(course2id, dict) or not course2id:
        raise BenchError("course2id.json is not a non-empty object of course -> id", "pass the seed's vocab/course2id.json")
    try:
        ids = sorted(int(v) for v in course2id.values())
    except (TypeError, ValueError):
        raise BenchError("course2id.json has non-integer ids", "ids must be integers 0..N-1 or 1..N") from None
    n = len(ids)
    if ids == list(range(n)):
        return 1
    if ids == list(range(1, n + 1)):
        return 0
    raise BenchError(
        f"course2id.json ids are not a permutation of 0..{n - 1} or 1..{n} (min {ids[0]}, max {ids[-1]}, {n} courses)",
        "repair the vocabulary so each course has one distinct id",
    )


def _shift_nested(column: pa.ChunkedArray | pa.Array, shift: int, depth: int) -> pa.Array:
    """Add ``shift`` to every integer of a list (depth 1) or list-of-lists (depth 2) column, as int64."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if depth == 0:
        return pc.add(arr.cast(pa.int64()), pa.scalar(shift, pa.int64()))
    offsets = pc.subtract(arr.offsets, arr.offsets[0]).cast(pa.int32())
    inner = arr.values.slice(arr.offsets[0].as_py(), len(arr.values) - arr.offsets[0].as_py())
    return pa.ListArray.from_arrays(offsets, _shift_nested(inner, shift, depth - 1))


def _merge_user_sequences(users: list[str], episodes: list[list[tuple]]) -> dict[str, list[tuple]]:
    """Per user, the pair sequence behind their episodes: each next episode is appended after its
    largest overlap with what is known (stride-1 sliding windows overlap by K+Q-1)."""
    merged: dict[str, list[tuple]] = {}
    for user, sequence in zip(users, episodes):
        known = merged.setdefault(user, [])
        overlap = 0
        for o in range(min(len(known), len(sequence)), 0, -1):
            if known[-o:] == sequence[:o]:
                overlap = o
                break
        known.extend(sequence[overlap:])
    return merged


def _rows_with_null(values: pa.Array, depth: int) -> np.ndarray:
    """Per row of a list (depth 1) or list-of-lists (depth 2) column: is the row, an inner list or a value null?"""
    bad = pc.is_null(values).to_numpy(zero_copy_only=False).copy()
    parent = np.arange(len(values))
    for _ in range(depth):
        parent = parent[pc.list_parent_indices(values).to_numpy()]
        values = pc.list_flatten(values)
        bad[parent[pc.is_null(values).to_numpy(zero_copy_only=False)]] = True
    return bad


def _seed_row_checks(table: pa.Table, user_ids: pa.Array, needed: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    """Drop checks for one seed episode file: missing user id, a missing id in any list, exact duplicate rows."""
    missing_user = missing_values(pd.Series(user_ids.to_pandas()))
    missing_item = np.logical_or.reduce([_rows_with_null(table.column(c).combine_chunks(), 2 if c.endswith("prefixes") else 1) for c in needed])
    duplicate = np.zeros(table.num_rows, dtype=bool)
    seen = set()
    columns = [user_ids.to_pylist()] + [table.column(c).to_pylist() for c in needed]
    for i, row in enumerate(zip(*columns)):
        if missing_user[i] or missing_item[i]:
            continue
        key = repr(row)
        duplicate[i] = key in seen
        seen.add(key)
    return [("missing_user", missing_user), ("missing_item", missing_item), ("duplicate", duplicate)]


SEED_COLUMNS = ("support_prefixes", "support_labels", "query_prefixes", "query_labels")  # what a seed episode file must hold


def _read_vocab(root: Path) -> tuple[Path, dict, int]:
    """(the path of ``root``'s vocab/course2id.json, its course -> id mapping, the id shift ``check_vocab`` gives)."""
    vocab_path = root / "vocab" / "course2id.json"
    if not vocab_path.is_file():
        raise BenchError(f"no vocab/course2id.json in {root}", "copy the seed's course2id.json there")
    try:
        course2id = json.loads(vocab_path.read_text())
    except json.JSONDecodeError as err:
        raise BenchError(f"malformed JSON in {vocab_path} at character {err.pos}: {err.msg}", "copy the file again") from None
    return vocab_path, course2id, check_vocab(course2id)


def _complete_episode_files(root: Path) -> dict[tuple[int, int], dict[str, Path]]:
    """Per (K, Q) whose train, val and test files are all in ``root``/episodes: split -> file."""
    found: dict[tuple[int, int], dict[str, Path]] = {}
    for path in sorted((root / "episodes").glob("episodes_*_K*_Q*.parquet")):
        parts = path.stem.split("_")
        if len(parts) != 4:  # e.g. our own _P<population K> files: not the seed's
            continue
        try:
            split, K, Q = parts[1], int(parts[2][1:]), int(parts[3][1:])
        except (IndexError, ValueError):
            continue
        if split in pipeline.SPLITS:
            found.setdefault((K, Q), {})[split] = path
    complete = {kq: files for kq, files in found.items() if set(files) == set(pipeline.SPLITS)}
    if not complete:
        raise BenchError(
            f"no complete set of episodes_{{train,val,test}}_K*_Q*.parquet in {root / 'episodes'}",
            "copy all three split files for one K and Q",
        )
    return complete


def _read_episode_file(path: Path, split: str, shift: int, n_items: int, account: RowAccount) -> pa.Table:
    """One seed episode file as ``user_id`` + ``SEED_COLUMNS``: rows dropped (and counted) by ``account``, every
    id checked against the vocabulary's 1 - shift .. n_items - shift and shifted by ``shift``; a file without
    user ids gives each episode its own user."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise BenchError(f"cannot read {path}: {str(err).splitlines()[0]}", "copy the file again") from None
    missing = [c for c in SEED_COLUMNS if c not in table.column_names]
    if missing:
        raise BenchError(f"{path.name} lacks columns {missing}", f"episode files need {', '.join(SEED_COLUMNS)}")
    if "user_id" in table.column_names:
        user_ids = table.column("user_id").cast(pa.string())
    else:
        user_ids = pa.array([f"{split}-episode-{i}" for i in range(table.num_rows)], type=pa.string())
    kept = account.drop_rows(_seed_row_checks(table, user_ids, SEED_COLUMNS), lambda i: f"row {i + 1:,} of {path.name}")
    if not kept.all():
        table, user_ids = table.filter(pa.array(kept)), user_ids.filter(pa.array(kept))
    if table.num_rows == 0:
        raise BenchError(f"no episode rows left in {path.name} after dropping incomplete and duplicate rows", "copy the file again")
    columns = [user_ids]
    for column in SEED_COLUMNS:
        depth = 2 if column.endswith("prefixes") else 1
        values = table.column(column).combine_chunks()
        flat = pc.list_flatten(pc.list_flatten(values) if depth == 2 else values)
        if len(flat):
            low, high = pc.min(flat).as_py(), pc.max(flat).as_py()
            if low < 1 - shift or high > n_items - shift:
                raise BenchError(
                    f"{path.name} column {column} holds ids {low}..{high}, outside the vocabulary's {1 - shift}..{n_items - shift}",
                    "the episodes and course2id.json must come from the same seed run",
                )
        columns.append(_shift_nested(values, shift, depth))
    return pa.Table.from_arrays(columns, names=["user_id", *SEED_COLUMNS])


def _pairs_from_episodes(episodes: pa.Table) -> tuple[pa.Table, dict]:
    """(the pairs behind one split's episodes, per user in sequence order (``PAIRS_SCHEMA``, timestamp = position,
    session 'unknown'); the split's counts for ``manifest["counts"]["splits"]``)."""
    columns = episodes.to_pydict()
    sequences = [
        [(tuple(p), int(l)) for p, l in zip(sp + qp, sl + ql)]
        for sp, sl, qp, ql in zip(columns["support_prefixes"], columns["support_labels"], columns["query_prefixes"], columns["query_labels"])
    ]
    merged = _merge_user_sequences(columns["user_id"], sequences)
    users, prefixes, labels, order = [], [], [], []
    for user in sorted(merged):
        for position, (prefix, label) in enumerate(merged[user]):
            users.append(user)
            prefixes.append(list(prefix))
            labels.append(label)
            order.append(position)
    pairs = pa.Table.from_arrays(
        [
            pa.array(users, type=pa.string()),
            pa.array(["unknown"] * len(users), type=pa.string()),
            pa.array(prefixes, type=pa.list_(pa.int64())),
            pa.array(labels, type=pa.int64()),
            pa.array(order, type=pa.int64()),
        ],
        schema=pipeline.PAIRS_SCHEMA,
    )
    counts = {
        "users": len(merged),
        "pairs": pairs.num_rows,
        "episodes": len(sequences),
        "episode_users": len(merged),
        "users_dropped_too_few_pairs": None,  # unknown: the seed kept only users with episodes
    }
    return pairs, counts


def _seed_source(root: Path, vocab_path: Path, complete: dict, account: RowAccount, shift: int, primary: tuple[int, int]) -> dict:
    """``manifest["source"]`` of a seed-episodes import: where from, rows dropped, original hashes, repair, derivation."""
    return {
        "kind": "seed-episodes",
        "folder": str(root),
        "episode_files": {f"K{k}_Q{q}": sorted(files) for (k, q), files in complete.items()},
        "rows": account.to_json(),
        "original_files": {
            p.relative_to(root).as_posix(): pipeline.sha256_file(p) for p in [vocab_path, *(f for files in complete.values() for f in files.values())]
        },
        "repair": (
            {
                "id_shift": 1,
                "reason": "course2id.json gave id 0 to a real course; every id (vocabulary, prefixes, labels) was shifted by +1 so 0 is padding only",
            }
            if shift
            else None
        ),
        "pairs_derivation": (
            "pairs_{split}.parquet are derived from the K%d_Q%d episodes: per user, each episode's K+Q pairs "  # noqa: UP031
            "appended after their largest overlap with the pairs already known (exact for stride-1 windows); "
            "timestamp = the pair's position in the user's sequence, session_id = 'unknown'" % primary
        ),
    }


def import_seed_episodes(
    folder,
    *,
    name: str,
    data_dir=None,
    force: bool = False,
    progress=None,
    test_episodes_per_user: int = 1,
    strict: bool = False,
):
    """The seed's episodes + course2id.json -> dataset; id 0 for a real course is repaired by +1 on every id.

    Episode rows are dropped, and counted, for a missing user id, a missing (null) id in a list, then as
    exact duplicates of an earlier row of the same file; ``strict`` refuses the first instead.

    ``test_episodes_per_user`` shapes only val/test episodes built later from the derived pairs (other
    K/Q); the seed's own files are kept as they are."""
    from bench.data import diagnostics  # here, not at the top: it imports torch

    say = progress or (lambda message: None)
    pipeline.check_episodes_per_user(test_episodes_per_user)
    folder = Path(folder)
    if not folder.is_dir():
        raise BenchError(f"no such folder: {folder}", "pass the seed's data/processed/<name> folder")
    root = _find_seed_root(folder)
    vocab_path, course2id, shift = _read_vocab(root)
    n_items = len(course2id)
    complete = _complete_episode_files(root)
    primary = (5, 10) if (5, 10) in complete else sorted(complete)[0]
    account = RowAccount("episode row", ("missing_user", "missing_item", "duplicate"), strict)
    tables: dict[tuple[int, int], dict[str, pa.Table]] = {}
    for kq, files in sorted(complete.items()):
        for split, path in files.items():
            tables.setdefault(kq, {})[split] = _read_episode_file(path, split, shift, n_items, account)

    with pipeline.atomic_dataset_dir(name, data_dir, force=force) as tmp:
        vocab = {str(course): int(i) + shift for course, i in sorted(course2id.items(), key=lambda kv: int(kv[1]))}
        pipeline.write_json(vocab, tmp / "vocab" / "course2id.json")
        for (k, q), by_split in tables.items():
            for split, table in by_split.items():
                pipeline.write_parquet(table, tmp / pipeline.episodes_relpath(split, k, q))
        pairs_by_split, counts_split = {}, {}
        for split in pipeline.SPLITS:
            pairs_by_split[split], counts_split[split] = _pairs_from_episodes(tables[primary][split])
            pipeline.write_parquet(pairs_by_split[split], tmp / "pairs" / f"pairs_{split}.parquet")
            say(f"{split}: {counts_split[split]}")
        all_users = set().union(*(set(pairs_by_split[s].column("user_id").to_pylist()) for s in pipeline.SPLITS))
        K, Q = primary
        pipeline.write_manifest(
            tmp,
            name=name,
            source=_seed_source(root, vocab_path, complete, account, shift, primary),
            settings={
                "max_prefix": None,
                "split_seed": None,
                "K": K,
                "Q": Q,
                "stride": 1,
                "test_episodes_per_user": test_episodes_per_user,
                "episode_rules": pipeline.EPISODE_RULES,
                # the seed's episodes are taken as given: the last prefix item is excluded only if no pair has it as label
                "excluded_from_ranking": pipeline.exclusion_rule(
                    (pc.list_flatten(table.column(f"{part}_prefixes")), pc.list_flatten(table.column(f"{part}_labels")))
                    for by_split in tables.values()
                    for table in by_split.values()
                    for part in ("support", "query")
                ),
            },
            counts={
                "interactions": None,
                "users": len(all_users),
                "users_with_pairs": len(all_users),
                "items": n_items,
                "sessions": None,
                "pairs": sum(t.num_rows for t in pairs_by_split.values()),
                "K": K,
                "Q": Q,
                "splits": counts_split,
            },
            summaries=pipeline.summarise(pairs_by_split, n_items, 50),
            srs=srs.unavailable("an episodes-only import: the seed's episodes hold no sessions, so no session has events, a duration or kinds"),
            diagnostics=diagnostics.compute(pairs_by_split, tables[primary], n_items, max_prefix=None),
        )
    from bench.data.dataset import open_dataset

    return open_dataset(name, data_dir)
