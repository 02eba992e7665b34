"""The dataset handle every method reads: ``open_dataset(name, data_dir=None) -> Dataset``."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.core.errors import BenchError
from bench.data import pipeline, srs


@functools.lru_cache(maxsize=64)
def _read_parquet_cached(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def read_parquet(path: Path) -> pd.DataFrame:
    """Read a parquet file, cached by (path, mtime, size); returns a shallow copy so callers may add columns."""
    stat = os.stat(path)
    return _read_parquet_cached(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size).copy(deep=False)


@functools.lru_cache(maxsize=64)
def _query_excluded_cached(path: str, mtime_ns: int, size: int, rule: str | None) -> pd.Series:
    prefixes = pq.read_table(path, columns=["query_prefixes"]).column("query_prefixes")
    return pa.Table.from_arrays([pipeline.query_excluded(prefixes, rule)], names=[pipeline.QUERY_EXCLUDED]).to_pandas()[pipeline.QUERY_EXCLUDED]


@functools.lru_cache(maxsize=16)
def _support_srs_cached(
    path: str, mtime_ns: int, size: int, split: str, K: int, Q: int, stride: int, population_K: int | None, per_user: int
) -> np.ndarray:
    table = pq.read_table(path, columns=["user_id", "timestamp", srs.SCORE])
    values = pipeline.support_mean(table, srs.SCORE, split, K, Q, stride, population_K=population_K, per_user=per_user)
    values.setflags(write=False)
    return values


def list_datasets(data_dir=None) -> list[str]:
    base = pipeline.processed_dir(data_dir)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if not p.name.startswith(".") and (p / pipeline.MANIFEST).is_file())


def open_dataset(name: str, data_dir=None) -> Dataset:
    """Open ``<data-dir>/processed/<name>``; BenchError listing the datasets present if it is not there."""
    if isinstance(name, Dataset):
        return name
    root = pipeline.processed_dir(data_dir) / name
    if not (root / pipeline.MANIFEST).is_file():
        present = list_datasets(data_dir)
        listed = ", ".join(present) if present else "none"
        if root.is_dir() and (root / "episodes").is_dir():
            fix = f"it holds files but no dataset.json: run `python -m bench data import seed-episodes {root} --name {name}-imported`"
        else:
            fix = "run `python -m bench data synth --name xuetangx-synth` or `python -m bench data import ...`"
        raise BenchError(f"no dataset {name!r} in {root.parent} (present: {listed})", fix)
    return Dataset(root)


class Dataset:
    """A processed dataset folder: vocabulary, pairs per split, episodes per split and K/Q."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.name = self.root.name
        self.manifest = json.loads((self.root / pipeline.MANIFEST).read_text())

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, n_items={self.n_items}, hash={self.content_hash[:12]})"

    @property
    def n_items(self) -> int:
        return int(self.manifest["counts"]["items"])

    @property
    def content_hash(self) -> str:
        return self.manifest["content_hash"]

    @functools.cached_property
    def vocab(self) -> dict[str, int]:
        return json.loads((self.root / "vocab" / "course2id.json").read_text())

    def _check_split(self, split: str) -> None:
        if split not in pipeline.SPLITS:
            raise BenchError(f"unknown split {split!r}", f"use one of {', '.join(pipeline.SPLITS)}")

    def pairs(self, split: str) -> pd.DataFrame:
        """``user_id, session_id, prefix, label, timestamp``; prefix cells are int64 numpy arrays."""
        self._check_split(split)
        return read_parquet(self.root / "pairs" / f"pairs_{split}.parquet")

    @property
    def test_episodes_per_user(self) -> int:
        """Val/test episodes per learner (dataset option; datasets built before it have 1)."""
        return int(self.manifest.get("pipeline", {}).get("test_episodes_per_user", 1))

    @functools.cached_property
    def excluded_from_ranking(self) -> str | None:
        """What a label can never be, so the evaluator leaves it out of every ranking (manifest
        ``pipeline.excluded_from_ranking``): ``"last_prefix_item"`` or None (nothing excluded).
        A dataset built before the key was recorded is decided from its pairs, as the seed importer does."""
        recorded = self.manifest.get("pipeline", {})
        if "excluded_from_ranking" in recorded:
            return pipeline.check_exclusion_rule(recorded["excluded_from_ranking"])
        tables = [pq.read_table(self.root / "pairs" / f"pairs_{split}.parquet", columns=["prefix", "label"]) for split in pipeline.SPLITS]
        return pipeline.exclusion_rule((table.column("prefix"), table.column("label")) for table in tables)

    @property
    def srs(self) -> dict:
        """``manifest["srs"]``: the session reliability score's caps and constants (bench.data.srs), or
        ``{"available": False, "why": ...}``; a dataset built before the key was recorded has none."""
        recorded = self.manifest.get("srs")
        if not recorded:
            return {"available": False, "why": "it was built before session statistics were recorded (rebuild it)"}
        return recorded

    @property
    def srs_available(self) -> bool:
        """Whether every pair carries its session's statistics and SRS (``pairs`` column ``session_srs``)."""
        return bool(self.srs.get("available"))

    def require_srs(self, method: str) -> None:
        """Refuse, in one line, before any work, a ``method`` that needs session statistics the dataset lacks."""
        if self.srs_available:
            return
        kind = self.manifest.get("source", {}).get("kind")
        why = "an episodes-only import" if kind == "seed-episodes" else self.srs.get("why", "no session statistics recorded")
        raise BenchError(
            f"dataset {self.name} has no session statistics ({why}); {method} needs them",
            "import the raw activity log with `python -m bench data import xuetangx-activity FILE --name NAME` "
            "(or an interaction log with `python -m bench data import interactions FILE ...`, or build `python -m bench data synth`)",
        )

    def episode_srs(self, split: str, K: int, Q: int, population_K: int | None = None, method: str = "episode_srs") -> np.ndarray:
        """One SRS per episode row of ``episodes(split, K, Q, population_K)``, same order: the mean of its
        K support pairs' session SRS (float64 [E]). Pairs are matched by position (the episodes' own
        indexing, ``pipeline.support_mean``). Refuses (``require_srs(method)``) without session statistics."""
        self.require_srs(method)
        self._check_split(split)
        path = self.root / "pairs" / f"pairs_{split}.parquet"
        stat = os.stat(path)
        stride = int(self.manifest.get("pipeline", {}).get("stride", 1))
        population = None if population_K is None else int(population_K)
        return _support_srs_cached(
            str(path.resolve()), stat.st_mtime_ns, stat.st_size, split, int(K), int(Q), stride, population, self.test_episodes_per_user
        )

    def episodes_path(self, split: str, K: int, Q: int, population_K: int | None = None) -> Path:
        return self.root / pipeline.episodes_relpath(split, int(K), int(Q), population_K)

    def episodes(self, split: str, K: int, Q: int, population_K: int | None = None) -> pd.DataFrame:
        """``user_id, support_prefixes, support_labels, query_prefixes, query_labels, query_excluded`` (list cells).

        ``query_excluded`` (not stored: derived on read from the query prefixes and
        ``excluded_from_ranking``): per query, the item the evaluator leaves out of its ranking, 0 = none.
        ``support_srs`` (only with session statistics; derived on read, ``episode_srs``): the mean
        session reliability score of the episode's K support pairs (SRS-adaptive MAML's task SRS).

        ``population_K`` (val/test; >= K): score the users eligible at population_K+Q on their last Q
        pairs, so every K of a grid sees the same learners and query pairs; ignored for train.
        A missing file is built from the pairs with the recorded episode rules and cached atomically.
        """
        self._check_split(split)
        path = self.episodes_path(split, K, Q, population_K)
        if not path.is_file():
            stride = int(self.manifest.get("pipeline", {}).get("stride", 1))
            table = pq.read_table(self.root / "pairs" / f"pairs_{split}.parquet")
            episodes = pipeline.build_episodes(table, split, int(K), int(Q), stride, population_K=population_K, per_user=self.test_episodes_per_user)
            pipeline.write_parquet(episodes, path)
        frame = read_parquet(path)
        stat = os.stat(path)
        excluded = _query_excluded_cached(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size, self.excluded_from_ranking)
        frame[pipeline.QUERY_EXCLUDED] = excluded.to_numpy()
        if self.srs_available:
            frame[srs.EPISODE_COLUMN] = self.episode_srs(split, K, Q, population_K)
        return frame
