"""The result store: one folder per run, named by the run's config hash, written atomically.

Layout::

    <results>/store.json                 {"schema": SCHEMA}
    <results>/runs/<hash>/run.json       config, provenance, timings, status
    <results>/runs/<hash>/episodes.parquet   one row per test episode and mode, every metric
    <results>/runs/<hash>/curve.parquet      meta-training curve (iteration, train_loss, val_acc@1)
    <results>/cache/                     shared prerequisites (GRU4Rec weights), never results

A run is complete only when its run.json says ``"status": "complete"``; run.json is written
last, by rename, so a process killed at any moment leaves either a complete run or one that
``run`` redoes from scratch. Reports read only complete runs.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.core.atomic import atomic_write, atomic_write_text
from bench.core.errors import BenchError
from bench.core.metrics import METRICS

SCHEMA = 1
EPISODE_COLUMNS = ("episode", "user_id", "mode", *METRICS)


def atomic_write_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


class Store:
    """A results folder. Opening it checks (or creates) its schema marker."""

    def __init__(self, root: str | Path, create: bool = True):
        self.root = Path(root)
        marker = self.root / "store.json"
        if marker.is_file():
            try:
                schema = json.loads(marker.read_text()).get("schema")
            except (json.JSONDecodeError, AttributeError):
                schema = None
            if schema != SCHEMA:
                raise BenchError(
                    f"results folder {self.root} was written by store schema {schema!r}, this bench writes schema {SCHEMA}",
                    "use another --results folder or move the old one away; results of different schemas are never mixed",
                )
        elif create:
            (self.root / "runs").mkdir(parents=True, exist_ok=True)
            atomic_write_json(marker, {"schema": SCHEMA})
        else:
            raise BenchError(f"no results in {self.root} (no store.json)", "run `python -m bench run --grid NAME` first or pass --results DIR")
        self.runs_dir = self.root / "runs"
        self.cache_dir = self.root / "cache"

    def run_dir(self, run_hash: str) -> Path:
        return self.runs_dir / run_hash

    def read_run(self, run_hash: str) -> dict | None:
        path = self.run_dir(run_hash) / "run.json"
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def read_curve(self, run_hash: str) -> pd.DataFrame:
        """The run's meta-training curve (``curve.parquet``); empty when the run stored none."""
        path = self.run_dir(run_hash) / "curve.parquet"
        return pd.read_parquet(path) if path.is_file() else pd.DataFrame()

    def is_complete(self, run_hash: str) -> bool:
        record = self.read_run(run_hash)
        return bool(record) and record.get("status") == "complete" and record.get("schema") == SCHEMA

    def start_run(self, run_hash: str, record: dict) -> None:
        """Mark a run as started: clear any leftovers of an interrupted attempt, write run.json (running)."""
        folder = self.run_dir(run_hash)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        atomic_write_json(folder / "run.json", {**record, "schema": SCHEMA, "status": "running"})

    def finish_run(self, run_hash: str, record: dict, episodes: pd.DataFrame, curve: pd.DataFrame) -> None:
        """Write the run's tables, then run.json with status complete (last, atomically)."""
        missing = [c for c in EPISODE_COLUMNS if c not in episodes.columns]
        if missing:
            raise ValueError(f"episode table lacks columns {missing}")
        folder = self.run_dir(run_hash)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_parquet(folder / "episodes.parquet", episodes.loc[:, list(EPISODE_COLUMNS)])
        atomic_write_parquet(folder / "curve.parquet", curve)
        atomic_write_json(folder / "run.json", {**record, "schema": SCHEMA, "status": "complete"})

    def prune_run(self, run_hash: str, record: dict) -> None:
        """A tuning trial's run its study's pruner stopped (bench/run/pruning.py): run.json with status
        "pruned" and no tables; never complete, so no report reads it, and its study never runs it again."""
        folder = self.run_dir(run_hash)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "run.json", {**record, "schema": SCHEMA, "status": "pruned"})

    def is_pruned(self, run_hash: str) -> bool:
        record = self.read_run(run_hash)
        return bool(record) and record.get("status") == "pruned" and record.get("schema") == SCHEMA

    def complete_runs(self) -> list[dict]:
        """run.json of every complete run, sorted by hash."""
        if not self.runs_dir.is_dir():
            return []
        records = []
        for path in sorted(self.runs_dir.glob("*/run.json")):
            record = self.read_run(path.parent.name)
            if record and record.get("status") == "complete":
                if record.get("schema") != SCHEMA:
                    raise BenchError(
                        f"run {path.parent.name} in {self.root} has schema {record.get('schema')!r}, expected {SCHEMA}",
                        "use another --results folder; results of different schemas are never mixed",
                    )
                records.append(record)
        return records


@dataclass(frozen=True)
class Results:
    runs: list[dict]
    episodes: pd.DataFrame  # one row per run x test episode x mode, with the run's identity columns

    def only(self, run_hashes: set[str]) -> "Results":
        """The subset made of the given runs (e.g. one grid's)."""
        runs = [r for r in self.runs if r["hash"] in run_hashes]
        return Results(runs, self.episodes[self.episodes["run"].isin(run_hashes)].reset_index(drop=True))

    def of_grid(self, grid_name: str, results_dir, any_code: bool = False) -> "Results":
        """The runs grid ``grid_name`` declares, each under that grid's cell label (a run shared with
        another grid keeps one hash but may have been stored under the other grid's label); refused
        in one line when there is none."""
        from bench.plan.grid import grid_run_labels, load_grid

        labels = grid_run_labels(load_grid(grid_name), self.runs, any_code=any_code)
        subset = self.only(set(labels))
        if not subset.runs:
            raise BenchError(f"no complete runs of grid {grid_name!r} in {results_dir}", f"run `python -m bench run --grid {grid_name}` first")
        runs = [{**r, "cell": labels[r["hash"]]} for r in subset.runs]
        episodes = subset.episodes.assign(cell=subset.episodes["run"].map(labels))
        return Results(runs, episodes)


def load_results(results_dir: str | Path, dataset: str | None = None) -> Results:
    """Every complete run in a store (optionally one dataset's), with per-episode metrics in long form."""
    store = Store(results_dir, create=False)
    runs = [r for r in store.complete_runs() if dataset is None or r["config"]["dataset"] == dataset]
    if not runs:
        where = f" for dataset {dataset!r}" if dataset else ""
        raise BenchError(f"no complete runs in {store.root}{where}", "run `python -m bench run --grid NAME` first, or check --results/--dataset")
    frames = []
    for record in runs:
        config = record["config"]
        frame = pd.read_parquet(store.run_dir(record["hash"]) / "episodes.parquet")
        frame.insert(0, "run", record["hash"])
        for column in ("dataset", "method", "init", "seed", "K", "Q"):
            frame[column] = config[column]
        frame["cell"] = record["cell"]
        frames.append(frame)
    return Results(runs=runs, episodes=pd.concat(frames, ignore_index=True))
