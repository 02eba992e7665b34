"""The result store: one folder per run, named by the run's config hash, written atomically.

Layout::

    <results>/store.json                 {"schema": SCHEMA}
    <results>/runs/<hash>/run.json       config, provenance, timings, status
    <results>/runs/<hash>/episodes.parquet   one row per test episode and mode, every metric
    <results>/runs/<hash>/curve.parquet      meta-training curve (iteration, train_loss, val_acc@1)
    <results>/runs/<hash>/queries.parquet    one row per test query and mode: its rank, label, whether the
                                             label is in the prefix, the prefix length (runs stored before
                                             per-query results have none; they serve the "all" slice only)
    <results>/cache/                     shared prerequisites (GRU4Rec weights), never results

A run is complete only when its run.json says ``"status": "complete"`` and every file it lists
under ``files`` has the size and sha256 recorded there (runs stored before checksums list none and
are read as before: legacy). run.json is written last, by rename, so a process killed at any moment
leaves either a complete run or one that ``run`` redoes from scratch. A run whose run.json does not
parse or whose files fail their check is *damaged*: no reader uses it, reports name it, and ``run``
moves its folder under ``<results>/damaged/`` (never deleted) and recomputes it.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bench.core.atomic import atomic_write, atomic_write_text
from bench.core.errors import BenchError, BenchErrors
from bench.core.metrics import METRICS, QUERY_COLUMNS, SLICES, slice_metrics
from bench.store import integrity

SCHEMA = 1
EPISODE_COLUMNS = ("episode", "user_id", "mode", *METRICS)
EPISODES, CURVE, QUERIES = "episodes.parquet", "curve.parquet", "queries.parquet"
RUN_TABLES = (EPISODES, CURVE)  # the files a complete run has beside run.json (checksummed there)
ERROR_FILE = "error.txt"  # in the run's folder: the traceback of a run that failed at run time
DAMAGED_DIR = "damaged"  # <results>/damaged/<hash>-<time>: damaged runs moved aside, never deleted


@dataclass(frozen=True)
class RunState:
    """What a run's folder holds: ``state`` is complete, damaged, failed, pruned, running (run.json
    says running and no error.txt: interrupted, or running now), orphaned (a folder with no run.json)
    or missing (no folder); ``problem`` says what is wrong in one line (damaged, failed, orphaned)."""

    hash: str
    state: str
    record: dict | None = None
    problem: str | None = None


class DamagedRun(BenchError):
    """A run's file failed its check while being read."""

    def __init__(self, run_hash: str, problem: str, root: Path):
        self.run_hash, self.problem = run_hash, problem
        super().__init__(f"run {run_hash} in {root} is damaged: {problem}", f"python -m bench store verify --results {root} --repair")


def atomic_write_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def set_aside(root: Path, path: Path, name: str) -> Path:
    """Move ``path`` to ``<root>/damaged/<name>-<UTC time>`` (never deleted, never overwritten); returns where."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target, n = Path(root) / DAMAGED_DIR / f"{name}-{stamp}", 1
    while target.exists():
        target, n = Path(root) / DAMAGED_DIR / f"{name}-{stamp}-{n}", n + 1
    target.parent.mkdir(parents=True, exist_ok=True)
    Path(path).rename(target)
    return target


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
            record = json.loads(path.read_text())
        except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        return record if isinstance(record, dict) else None

    def inspect(self, run_hash: str) -> RunState:
        """The run's state, every file of a complete run checked against run.json's record of it."""
        folder = self.run_dir(run_hash)
        if not folder.is_dir():
            return RunState(run_hash, "missing")
        try:
            data = (folder / "run.json").read_bytes()
        except FileNotFoundError:
            if (folder / ERROR_FILE).is_file():
                return RunState(run_hash, "failed", None, self.error_line(run_hash))
            return RunState(run_hash, "orphaned", None, "a run folder with no run.json")
        try:
            record = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if not isinstance(record, dict):
            return RunState(run_hash, "damaged", None, integrity.json_problem("run.json", data))
        status = record.get("status")
        if status == "complete":
            problem = self.files_problem(run_hash, record)
            return RunState(run_hash, "damaged" if problem else "complete", record, problem)
        if status == "pruned":
            return RunState(run_hash, "pruned", record)
        if (folder / ERROR_FILE).is_file():
            return RunState(run_hash, "failed", record, self.error_line(run_hash))
        return RunState(run_hash, "running", record, "incomplete: interrupted, or running now")

    def error_line(self, run_hash: str) -> str:
        """The last line of a failed run's error.txt (its exception), or a word when there is none."""
        try:
            lines = [line for line in (self.run_dir(run_hash) / ERROR_FILE).read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return "failed (no error.txt)"
        return f"failed: {lines[-1].strip()}" if lines else "failed (empty error.txt)"

    def files_problem(self, run_hash: str, record: dict) -> str | None:
        """What is wrong with a complete run's files (missing, or not what run.json records), else None."""
        folder = self.run_dir(run_hash)
        recorded = record.get("files")
        for name in recorded if isinstance(recorded, dict) else RUN_TABLES:
            try:
                data = (folder / name).read_bytes()
            except FileNotFoundError:
                return f"{name} is missing"
            problem = integrity.mismatch(name, data, recorded[name]) if isinstance(recorded, dict) else integrity.parquet_problem(name, data)
            if problem:
                return problem
        return None

    def read_table(self, run_hash: str, name: str, record: dict | None = None) -> pd.DataFrame:
        """One of a run's parquet tables, its bytes checked against run.json's record; DamagedRun otherwise."""
        record = self.read_run(run_hash) if record is None else record
        if record is None:
            raise DamagedRun(run_hash, f"run.json of the run reading {name} does not parse", self.root)
        try:
            data = (self.run_dir(run_hash) / name).read_bytes()
        except FileNotFoundError:
            raise DamagedRun(run_hash, f"{name} is missing", self.root) from None
        want = (record.get("files") or {}).get(name)
        problem = integrity.mismatch(name, data, want) if want else integrity.parquet_problem(name, data)
        if problem:
            raise DamagedRun(run_hash, problem, self.root)
        try:
            return pd.read_parquet(io.BytesIO(data))
        except (OSError, ValueError) as err:  # a legacy file whose ends looked whole (ArrowInvalid is a ValueError)
            raise DamagedRun(run_hash, f"{name} does not read ({type(err).__name__})", self.root) from None

    def read_episodes(self, run_hash: str, record: dict | None = None) -> pd.DataFrame:
        """The run's per-episode metrics (``episodes.parquet``), checked."""
        return self.read_table(run_hash, EPISODES, record)

    def read_queries(self, run_hash: str, record: dict | None = None) -> pd.DataFrame | None:
        """The run's per-query ranks (``queries.parquet``), checked; None for a run stored before them
        (run.json's ``files`` does not list it)."""
        record = self.read_run(run_hash) if record is None else record
        if QUERIES not in ((record or {}).get("files") or {}):
            return None
        return self.read_table(run_hash, QUERIES, record)

    def read_curve(self, run_hash: str) -> pd.DataFrame:
        """The run's meta-training curve (``curve.parquet``), checked; empty when the run stored none."""
        record = self.read_run(run_hash)
        if not (self.run_dir(run_hash) / CURVE).is_file() and CURVE not in ((record or {}).get("files") or {}):
            return pd.DataFrame()
        return self.read_table(run_hash, CURVE, record)

    def is_complete(self, run_hash: str) -> bool:
        """Complete, and every file as run.json records it (a damaged run is not complete)."""
        state = self.inspect(run_hash)
        return state.state == "complete" and state.record.get("schema") == SCHEMA

    def move_aside(self, run_hash: str) -> Path:
        """Move a run's folder to ``<results>/damaged/<hash>-<UTC time>`` (never deleted); returns where."""
        return set_aside(self.root, self.run_dir(run_hash), run_hash)

    def write_error(self, run_hash: str, text: str) -> bool:
        """Write a failed run's traceback to its error.txt; False (and nothing raised) when there is no
        room to write it, so the failure itself is still what is reported."""
        try:
            folder = self.run_dir(run_hash)
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / ERROR_FILE, text)
        except OSError:
            return False
        return True

    def start_run(self, run_hash: str, record: dict) -> None:
        """Mark a run as started: move a damaged folder aside, clear any leftovers of an interrupted
        attempt, write run.json (running)."""
        folder = self.run_dir(run_hash)
        if self.inspect(run_hash).state == "damaged":
            self.move_aside(run_hash)
        elif folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        atomic_write_json(folder / "run.json", {**record, "schema": SCHEMA, "status": "running"})

    def finish_run(self, run_hash: str, record: dict, episodes: pd.DataFrame, curve: pd.DataFrame, queries: pd.DataFrame | None = None) -> None:
        """Write the run's tables (``queries``: the per-query ranks, QUERY_COLUMNS; None writes no
        queries.parquet), then run.json with status complete (last, atomically)."""
        missing = [c for c in EPISODE_COLUMNS if c not in episodes.columns]
        if missing:
            raise ValueError(f"episode table lacks columns {missing}")
        if queries is not None and [c for c in QUERY_COLUMNS if c not in queries.columns]:
            raise ValueError(f"query table lacks columns {[c for c in QUERY_COLUMNS if c not in queries.columns]}")
        folder = self.run_dir(run_hash)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_parquet(folder / EPISODES, episodes.loc[:, list(EPISODE_COLUMNS)])
        atomic_write_parquet(folder / CURVE, curve)
        if queries is not None:
            atomic_write_parquet(folder / QUERIES, queries.loc[:, list(QUERY_COLUMNS)])
        files = integrity.file_digests(folder, RUN_TABLES + ((QUERIES,) if queries is not None else ()))
        atomic_write_json(folder / "run.json", {**record, "schema": SCHEMA, "status": "complete", "files": files})

    def prune_run(self, run_hash: str, record: dict) -> None:
        """A tuning trial's run its study's pruner stopped (bench/run/pruning.py): run.json with status
        "pruned" and no tables; never complete, so no report reads it, and its study never runs it again."""
        folder = self.run_dir(run_hash)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "run.json", {**record, "schema": SCHEMA, "status": "pruned"})

    def is_pruned(self, run_hash: str) -> bool:
        record = self.read_run(run_hash)
        return bool(record) and record.get("status") == "pruned" and record.get("schema") == SCHEMA

    def scan(self) -> list[RunState]:
        """The state of every run folder, sorted by hash (a complete run of another schema is refused)."""
        if not self.runs_dir.is_dir():
            return []
        states = [self.inspect(path.name) for path in sorted(self.runs_dir.iterdir()) if path.is_dir()]
        for state in states:
            if state.state in ("complete", "damaged") and state.record and state.record.get("schema") != SCHEMA:
                raise BenchError(
                    f"run {state.hash} in {self.root} has schema {state.record.get('schema')!r}, expected {SCHEMA}",
                    "use another --results folder; results of different schemas are never mixed",
                )
        return states

    def complete_runs(self) -> list[dict]:
        """run.json of every complete run (files checked), sorted by hash."""
        return [state.record for state in self.scan() if state.state == "complete"]


@dataclass(frozen=True)
class RunProblem:
    """A run that a report's tables lack (damaged, failed, incomplete or never run), named in one line."""

    hash: str
    state: str  # damaged | failed | incomplete | pruned | missing
    what: str  # what is wrong, in words
    repair: str  # the command that repairs it
    cell: str | None = None
    seed: int | None = None
    dataset: str | None = None
    K: int | None = None

    @property
    def line(self) -> str:
        where = f" {self.cell}" if self.cell else " (cell unknown: its run.json is unreadable)"
        seed = f" seed {self.seed}" if self.seed is not None else ""
        data = f" ({self.dataset} K={self.K})" if self.dataset else ""
        return f"{self.state} run {self.hash}{where}{seed}{data}: {self.what}; repair: {self.repair}"

    @classmethod
    def of(cls, state: RunState, repair: str, config=None) -> RunProblem:
        """From a run's state, with its identity from ``config`` (a RunConfig) or else its run.json."""
        words = {"running": "incomplete", "orphaned": "incomplete"}
        what = state.problem or {"missing": "never run", "pruned": "pruned by tuning"}.get(state.state, state.state)
        if config is not None:
            return cls(state.hash, words.get(state.state, state.state), what, repair, config.cell, config.seed, config.dataset, config.K)
        record = state.record or {}
        identity = record.get("config") if isinstance(record.get("config"), dict) else {}
        return cls(
            state.hash,
            words.get(state.state, state.state),
            what,
            repair,
            record.get("cell"),
            identity.get("seed"),
            identity.get("dataset"),
            identity.get("K"),
        )


def problem_note(problems) -> list[str]:
    """The note every report and export puts above its tables: a title line, then one line per run."""
    problems = list(problems)
    if not problems:
        return []
    return [f"{len(problems)} run(s) not in these tables (damaged, failed or missing):", *(f"- {p.line}" for p in problems)]


def _no_runs(problem: str, fix: str, problems) -> BenchError:
    """'No complete runs' refused in one line, with a line per damaged or missing run when there are some."""
    if not problems:
        return BenchError(problem, fix)
    return BenchErrors([f"{problem} ({fix})", *(p.line for p in problems)])


@dataclass(frozen=True)
class Results:
    runs: list[dict]
    episodes: pd.DataFrame  # one row per run x test episode x mode, with the run's identity columns
    problems: tuple[RunProblem, ...] = ()  # runs these lack: damaged ones (and a grid's missing ones), each named
    states: tuple[RunState, ...] = field(default=(), repr=False, compare=False)  # every run folder's, when read from a store
    # one row per run x test query x mode (``run`` and QUERY_COLUMNS); runs stored before per-query results have none
    queries: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    slice: str = "all"  # which queries ``episodes`` averages over (bench.core.metrics.SLICES)
    whole: pd.DataFrame | None = field(default=None, repr=False, compare=False)  # the "all" episodes, when sliced

    def only(self, run_hashes: set[str]) -> Results:
        """The subset made of the given runs (e.g. one grid's)."""
        runs = [r for r in self.runs if r["hash"] in run_hashes]
        problems = tuple(p for p in self.problems if p.hash in run_hashes)
        return replace(
            self,
            runs=runs,
            episodes=_rows_of(self.episodes, run_hashes),
            problems=problems,
            queries=_rows_of(self.queries, run_hashes),
            whole=_rows_of(self.whole, run_hashes),
        )

    def without_queries(self) -> list[dict]:
        """run.json of each run stored before per-query results (no queries.parquet): it serves the "all" slice only."""
        have = set() if self.queries is None else set(self.queries["run"].unique())
        return [r for r in self.runs if r["hash"] not in have]

    def sliced(self, name: str, partial: bool = False) -> Results:
        """These results with ``episodes`` averaged over the queries of slice ``name`` only
        (bench.core.metrics.slice_metrics; same identity columns, an episode with no query in the slice
        absent), so every table and question reads a slice as it reads "all". A run stored before
        per-query results is refused in one line naming them, unless ``partial`` (then left out)."""
        if name not in SLICES:
            raise BenchError(f"unknown slice {name!r}", f"choose one of: {', '.join(SLICES)}")
        base = self.episodes if self.whole is None else self.whole
        if name == "all":
            return replace(self, episodes=base, slice="all", whole=None)
        lacking = self.without_queries()
        if lacking and not partial:
            shown = ", ".join(f"{r.get('cell')} seed {(r.get('config') or {}).get('seed')} ({r['hash'][:12]})" for r in lacking[:4])
            more = f" and {len(lacking) - 4} more" if len(lacking) > 4 else ""
            raise BenchError(
                f"slice {name!r} needs per-query results, which {len(lacking)} run(s) stored before them lack (no queries.parquet): {shown}{more}",
                "rerun their grid with this code (python -m bench run --grid NAME), or report the 'all' slice",
            )
        frames = [] if self.queries is None else [slice_metrics(q, name).assign(run=run) for run, q in self.queries.groupby("run", sort=False)]
        have = {r["hash"] for r in self.runs} - {r["hash"] for r in lacking}
        identity = base.loc[base["run"].isin(have), [c for c in base.columns if c not in METRICS]]
        if frames:
            metrics = pd.concat(frames, ignore_index=True).drop(columns="n_queries")
            episodes = identity.merge(metrics, on=["run", "episode", "mode"], how="inner", validate="one_to_one")
        else:
            episodes = identity.iloc[:0].assign(**{m: pd.Series(dtype="float64") for m in METRICS})
        return replace(self, episodes=episodes.reset_index(drop=True), slice=name, whole=base)

    def of_grid(self, grid_name: str, results_dir, any_code: bool = False, dataset: str | None = None, shots=None) -> Results:
        """The runs grid ``grid_name`` declares, each under that grid's cell label (a run shared with
        another grid keeps one hash but may have been stored under the other grid's label), with each
        of its runs that is not complete named in ``problems``; refused in one line when there is none.
        ``shots`` ((K, Q) pairs, `--shots`): the grid with its shots replaced, as `run --shots` makes it."""
        from bench.plan.grid import grid_run_labels, load_grid

        grid = load_grid(grid_name)
        flag = ""
        if shots:
            grid = replace(grid, shots=tuple(shots))
            flag = " --shots " + ",".join(f"{K}:{Q}" for K, Q in shots)
        labels = grid_run_labels(grid, self.runs, any_code=any_code)
        subset = self.only(set(labels))
        problems = self._grid_problems(grid, grid_name, results_dir, any_code, dataset, {r["hash"] for r in subset.runs}, flag)
        if not subset.runs:
            where = f" at{flag}" if flag else ""
            raise _no_runs(
                f"no complete runs of grid {grid_name!r}{where} in {results_dir}",
                f"run `python -m bench run --grid {grid_name}{flag}` first",
                problems,
            )
        runs = [{**r, "cell": labels[r["hash"]]} for r in subset.runs]

        def relabel(frame: pd.DataFrame | None) -> pd.DataFrame | None:
            return None if frame is None else frame.assign(cell=frame["run"].map(labels))

        return replace(subset, runs=runs, episodes=relabel(subset.episodes), problems=problems, whole=relabel(subset.whole))

    def _grid_problems(
        self, grid, grid_name: str, results_dir, any_code: bool, dataset: str | None, complete: set[str], flag: str = ""
    ) -> tuple[RunProblem, ...]:
        """Every run of ``grid`` not in ``complete``, for each dataset version and code the grid has any
        run of in the store (a never-run cell of a grid that has run is named, another grid's data is not)."""
        from bench.core.provenance import code_fingerprint
        from bench.plan.grid import expand

        states = {state.hash: state for state in self.states}
        known = {p.hash: p for p in self.problems}
        configs = [r["config"] for r in self.runs] + [
            s.record["config"] for s in self.states if s.record and isinstance(s.record.get("config"), dict)
        ]
        versions = sorted({(c["dataset"], c["dataset_hash"]) for c in configs if dataset is None or c.get("dataset") == dataset})
        codes = sorted({c.get("code", "") for c in configs}) if any_code else [code_fingerprint()]
        problems: dict[str, RunProblem] = {}
        for (name, version), code in ((v, c) for v in versions for c in codes):
            try:
                runs = expand(grid, {name: version}, code=code)
            except BenchError:
                continue
            if not any(run.hash in states or run.hash in complete for run in runs):
                continue
            repair = f"python -m bench run --grid {grid_name} --dataset {name}{flag} --results {results_dir}"
            for run in runs:
                if run.hash in complete or run.hash in problems:
                    continue
                if run.hash in known:
                    problems[run.hash] = replace(known[run.hash], repair=repair, cell=run.cell, seed=run.seed, dataset=run.dataset, K=run.K)
                else:
                    problems[run.hash] = RunProblem.of(states.get(run.hash, RunState(run.hash, "missing")), repair, run)
        return tuple(problems.values())


def load_results(results_dir: str | Path, dataset: str | None = None) -> Results:
    """Every complete run in a store (optionally one dataset's), with per-episode metrics in long form,
    each file checked against its run.json; the damaged runs are left out and named in ``problems``."""
    store = Store(results_dir, create=False)
    states = store.scan()
    repair = f"python -m bench store verify --results {results_dir} --repair"
    runs, frames, problems, query_frames = [], [], [], []
    for state in states:
        record = state.record
        if dataset is not None and record is not None and (record.get("config") or {}).get("dataset") != dataset:
            continue
        if state.state == "damaged":
            problems.append(RunProblem.of(state, repair))
            continue
        if state.state != "complete":
            continue
        try:
            frame = store.read_episodes(state.hash, record)
            queries = store.read_queries(state.hash, record)
        except DamagedRun as err:  # changed since it was checked
            problems.append(RunProblem.of(RunState(state.hash, "damaged", record, err.problem), repair))
            continue
        config = record["config"]
        frame.insert(0, "run", record["hash"])
        for column in ("dataset", "method", "init", "seed", "K", "Q"):
            frame[column] = config[column]
        frame["cell"] = record["cell"]
        runs.append(record)
        frames.append(frame)
        if queries is not None:
            queries.insert(0, "run", record["hash"])
            query_frames.append(queries)
    if not runs:
        where = f" for dataset {dataset!r}" if dataset else ""
        raise _no_runs(
            f"no complete runs in {store.root}{where}", "run `python -m bench run --grid NAME` first, or check --results/--dataset", problems
        )
    return Results(
        runs=runs,
        episodes=pd.concat(frames, ignore_index=True),
        problems=tuple(problems),
        states=tuple(states),
        queries=pd.concat(query_frames, ignore_index=True) if query_frames else None,
    )


def _rows_of(frame: pd.DataFrame | None, run_hashes: set[str]) -> pd.DataFrame | None:
    """The rows of ``frame`` (long form with ``run``) of the given runs; None stays None."""
    return None if frame is None else frame[frame["run"].isin(run_hashes)].reset_index(drop=True)


def config_of(record: dict | None):
    """The RunConfig (bench.plan.grid) a run.json records, or None when it does not rebuild to the run's hash."""
    from bench.plan.grid import RunConfig

    try:
        c = record["config"]
        config = RunConfig(
            dataset=c["dataset"],
            dataset_hash=c["dataset_hash"],
            method=c["method"],
            init=c.get("init"),
            seed=int(c["seed"]),
            K=int(c["K"]),
            Q=int(c["Q"]),
            params=tuple(sorted(c["params"].items())),
            cell=record.get("cell") or c["method"],
            code=c.get("code", ""),
            population_K=c.get("population_K"),
            eval_split=c.get("eval_split", "test"),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return config if config.hash == record.get("hash") else None
