"""Grids are data: TOML files under bench/plan/grids/ expand into frozen, hashable run configs.

A grid file declares ``datasets``, ``seeds``, ``shots`` (a list of {K, Q}), global ``[params]``
(applied to every method that has the parameter) and ``[[cells]]``: a method, its init(s), and
optional ``params`` (fixed) and ``sweep`` (key -> list of values, one cell per value); or
``extends = "NAME"`` and only what differs from that preset. A run is one
(dataset, cell, seed, K, Q) with every parameter resolved; its content hash names its folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError, BenchErrors
from bench.core.provenance import code_fingerprint
from bench.methods.registry import get_method
from bench.plan.questions import Question, parse_compare

GRID_DIR = Path(__file__).parent / "grids"


@dataclass(frozen=True)
class RunConfig:
    """One run: everything that determines its result (and nothing that does not)."""

    dataset: str
    dataset_hash: str
    method: str
    init: str | None
    seed: int
    K: int
    Q: int
    params: tuple[tuple[str, Any], ...]
    cell: str = field(compare=False)  # display label, derived; not part of the identity
    code: str = field(default_factory=lambda: code_fingerprint())  # bench.core.provenance.code_fingerprint
    population_K: int | None = None  # val/test learners are those eligible at population_K+Q (None: K)
    eval_split: str = "test"  # the episodes the run is scored on: "val" for tuning trials (bench/run/tune.py)

    def __post_init__(self):
        if self.population_K is not None and int(self.population_K) == self.K:
            object.__setattr__(self, "population_K", None)  # one spelling, so equal runs compare equal

    @property
    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def identity(self) -> dict[str, Any]:
        identity = {
            "dataset": self.dataset,
            "dataset_hash": self.dataset_hash,
            "method": self.method,
            "init": self.init,
            "seed": self.seed,
            "K": self.K,
            "Q": self.Q,
            "params": self.params_dict,
            # only when it differs from K, so single-K runs keep the hashes they had before it existed
            **({"population_K": self.population_K} if self.population_K is not None else {}),
        }
        if self.eval_split != "test":  # only for tuning trials, so every test run keeps its hash
            identity["eval_split"] = self.eval_split
        if self.code:  # runs stored before fingerprints existed keep their hash (code "")
            identity["code"] = self.code
        return identity

    @property
    def hash(self) -> str:
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Grid:
    name: str
    description: str
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    shots: tuple[tuple[int, int], ...]
    params: dict
    cells: tuple[dict, ...]
    compare: tuple = ()  # tuple[bench.plan.questions.Question, ...]: the declared family of questions
    source: str = ""  # where error messages say a value came from: grids/NAME.toml or the path given

    @property
    def where(self) -> str:
        return self.source or f"grid {self.name}"


CELL_KEYS = ("method", "init", "params", "sweep")  # what a [[cells]] entry may declare


def available_grids() -> list[str]:
    return sorted(p.stem for p in GRID_DIR.glob("*.toml"))


def _source(path: Path) -> str:
    try:
        return path.resolve().relative_to(GRID_DIR.parent.resolve()).as_posix()  # grids/NAME.toml
    except ValueError:
        return str(path)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _grid_problems(raw: dict, where: str) -> list[str]:
    """One line per structural problem of a grid file: a key missing, an empty seed list, a K or Q
    below 1, a cell with an unknown key, no method, or a sweep that is not lists of values."""
    problems = [
        f"{where} lacks {key!r} (declare datasets, seeds, shots and cells)" for key in ("datasets", "seeds", "shots", "cells") if key not in raw
    ]
    if "datasets" in raw and (not isinstance(raw["datasets"], list) or not raw["datasets"] or not all(isinstance(d, str) for d in raw["datasets"])):
        problems.append(f"{where}: datasets = {raw['datasets']!r} must be a non-empty list of dataset names")
    if "seeds" in raw and (not isinstance(raw["seeds"], list) or not raw["seeds"] or not all(map(_is_int, raw["seeds"]))):
        problems.append(f"{where}: seeds = {raw['seeds']!r} must be a non-empty list of integers")
    if "shots" in raw:
        shots = raw["shots"] if isinstance(raw["shots"], list) else [None]
        if not shots:
            problems.append(f"{where}: shots is empty (declare e.g. shots = [{{ K = 5, Q = 10 }}])")
        for n, shot in enumerate(shots, 1):
            if not isinstance(shot, dict) or set(shot) != {"K", "Q"}:
                problems.append(f"{where}: shots entry {n} = {shot!r} must be {{ K = ..., Q = ... }}")
                continue
            for key in ("K", "Q"):
                if not _is_int(shot[key]) or shot[key] < 1:
                    problems.append(f"{where}: shots entry {n}: {key} = {shot[key]!r} must be an integer >= 1")
    if "params" in raw and not isinstance(raw["params"], dict):
        problems.append(f"{where}: [params] must be a table of key = value")
    cells = raw.get("cells", [])
    if not isinstance(cells, list) or not cells:
        problems.append(f"{where}: cells must be a non-empty list of [[cells]] tables")
        cells = []
    for n, cell in enumerate(cells, 1):
        if not isinstance(cell, dict):
            problems.append(f"{where} cell {n} is not a table")
            continue
        for key in sorted(set(cell) - set(CELL_KEYS)):
            problems.append(f"{where} cell {n}: unknown key {key!r} (a cell may declare {', '.join(CELL_KEYS)})")
        if "method" not in cell:
            problems.append(f"{where} cell {n} names no method")
        if not isinstance(cell.get("params", {}), dict):
            problems.append(f"{where} cell {n}: params must be a table")
        sweep = cell.get("sweep", {})
        if not isinstance(sweep, dict) or not all(isinstance(values, list) and values for values in sweep.values()):
            problems.append(f"{where} cell {n}: sweep must map each key to a non-empty list of values")
    return problems


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise BenchError(f"grid file {path} is not valid TOML: {err}", "fix the file") from None


def _extend(raw: dict, where: str) -> dict:
    """``extends = "NAME"``: the preset grid NAME's keys (its cells and questions too), each
    replaced by this file's own where it declares it, except ``[params]``, which is merged key by
    key (this file's values win). One level: the base may not itself extend."""
    base_name = raw["extends"]
    base_path = GRID_DIR / f"{base_name}.toml" if isinstance(base_name, str) else None
    if base_path is None or not base_path.is_file():
        raise BenchError(f"{where}: extends = {base_name!r} names no preset grid", f"choose one of {', '.join(available_grids())}")
    base = _read_toml(base_path)
    if "extends" in base:
        raise BenchError(
            f"{where}: extends grid {base_name!r}, which itself extends {base['extends']!r}", "extend a grid that declares its own cells"
        )
    merged = {**{k: v for k, v in base.items() if k not in ("name", "description")}, **{k: v for k, v in raw.items() if k != "extends"}}
    merged["params"] = {**base.get("params", {}), **raw.get("params", {})}
    return merged


def load_grid(name: str) -> Grid:
    """A grid by preset name (bench/plan/grids/NAME.toml) or by path to a TOML file; its structure is
    checked here (every problem one line), its values by ``expand``."""
    path = Path(name)
    if not (path.suffix == ".toml" and path.is_file()):
        path = GRID_DIR / f"{name}.toml"
    if not path.is_file():
        raise BenchError(f"unknown grid {name!r}", f"choose one of {', '.join(available_grids())} or give a .toml path")
    raw = _read_toml(path)
    where = _source(path)
    if "extends" in raw:
        raw = _extend(raw, where)
    problems = _grid_problems(raw, where)
    if problems:
        raise BenchErrors(problems)
    grid = Grid(
        name=raw.get("name", path.stem),
        description=raw.get("description", ""),
        datasets=tuple(raw["datasets"]),
        seeds=tuple(raw["seeds"]),
        shots=tuple((s["K"], s["Q"]) for s in raw["shots"]),
        params=dict(raw.get("params", {})),
        cells=tuple(raw["cells"]),
        source=where,
    )

    return dataclasses.replace(grid, compare=parse_compare(raw.get("compare", []), grid_cell_modes(grid), path))


def parse_value(text: str) -> Any:
    """A --set value: TOML scalar syntax (ints, floats, booleans, quoted strings), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_sets(items: list[str]) -> dict[str, Any]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BenchError(f"--set {item!r} is not key=value", "write e.g. --set meta_iterations=100")
        overrides[key.strip()] = parse_value(value.strip())
    return overrides


def cell_inits(cell: dict, spec) -> list[str | None]:
    """The cell's init(s), each checked by the method's own spec (unknown init, init on a method without)."""
    inits = cell.get("init")
    inits = [inits] if inits is None or isinstance(inits, str) else list(inits)
    return [spec.resolve_init(init) for init in inits]


def cell_label(method: str, init: str | None, swept: dict[str, Any]) -> str:
    label = method if init is None else f"{method}[{init}]"
    if swept:
        label += " " + ",".join(f"{k}={v}" for k, v in sorted(swept.items()))
    return label


def _shots(grid: Grid, overrides: dict[str, Any]) -> tuple[list[tuple[int, int]], list[str]]:
    """The grid's shots, or the one (K, Q) of --set K/Q; problems as lines."""
    shots, problems = list(grid.shots), []
    if "K" not in overrides and "Q" not in overrides:
        return shots, problems
    K, Q = overrides.pop("K", shots[0][0]), overrides.pop("Q", shots[0][1])
    for key, value in (("K", K), ("Q", Q)):
        if not _is_int(value) or value < 1:
            problems.append(f"{key} = {value!r} (from --set): must be an integer >= 1")
    return [(K, Q)], problems


def population_ks(shots) -> dict[int, int]:
    """Q -> the largest K of the shots at that Q: every K at one Q is scored on the learners eligible
    at that K+Q, on the same query pairs, so a curve over K holds the population fixed."""
    population: dict[int, int] = {}
    for K, Q in shots:
        population[Q] = max(population.get(Q, K), K)
    return population


def expand(
    grid: Grid,
    dataset_hashes: dict[str, str],
    seeds: list[int] | None = None,
    overrides: dict[str, Any] | None = None,
    code: str | None = None,
) -> list[RunConfig]:
    """Every run of a grid, for the datasets given (name -> content hash), in a stable order.

    ``overrides`` (from --set) replace parameters in every method that has them; K and Q replace
    the grid's shots. A key no method in the grid knows is refused; every resolved value is parsed
    by its declared type (bench.methods.registry.PARAMS) and checked against its range before any run
    exists: all bad values at once, one line each naming where the value came from. ``code`` is
    the code fingerprint the runs carry (default: this checkout's).
    """

    overrides = dict(overrides or {})
    shots, problems = _shots(grid, overrides)
    if seeds is not None and not seeds:
        problems.append("--seeds lists no seed: give at least one, e.g. --seeds 0")
    specs = [(n, cell, get_method(cell.get("method"))) for n, cell in enumerate(grid.cells, 1)]
    known = set().union(*(spec.defaults for _, _, spec in specs))
    for key in list(grid.params) + list(overrides):
        if key not in known:
            raise BenchError(f"unknown parameter {key!r}", f"parameters of this grid's methods: {', '.join(sorted(known))}")

    population = population_ks(shots)
    resolved_cells = []  # per cell: (spec, [(init, swept, params)])
    for n, cell, spec in specs:
        sweep = dict(cell.get("sweep", {}))
        unknown = sorted((set(cell.get("params", {})) | set(sweep)) - set(spec.defaults))
        if unknown:
            problems.append(
                f"{grid.where} cell {n}: method {spec.name!r} has no param {', '.join(map(repr, unknown))} (its params are "
                f"{', '.join(spec.defaults) or '(none)'})"
            )
            continue
        sweep_keys = sorted(sweep)
        variants = []
        for init in cell_inits(cell, spec):
            for values in itertools.product(*(sweep[k] for k in sweep_keys)):
                swept = dict(zip(sweep_keys, values))
                # each value with where it came from, lowest precedence first
                layers = [
                    (spec.defaults, f"default of method {spec.name}"),
                    ({k: v for k, v in grid.params.items() if k in spec.defaults}, f"{grid.where} [params]"),
                    (cell.get("params", {}), f"{grid.where} cell {n}"),
                    (swept, f"{grid.where} cell {n} sweep"),
                    ({k: v for k, v in overrides.items() if k in spec.defaults}, "--set"),
                ]
                sourced = {key: (value, where) for layer, where in layers for key, value in layer.items()}
                params = {}
                for key, (value, where) in sourced.items():
                    try:
                        params[key] = spec.parse_param(key, value)
                    except ValueError as err:
                        problems.append(f"{key} = {value!r} (from {where}): {err}")
                try:
                    params = spec.run_params(init, params)  # init params only where the init uses them
                except BenchError as err:
                    problems.append(f"{grid.where} cell {n}: {err}")
                    continue
                swept = {k: params.get(k, v) for k, v in swept.items()}
                variants.append((init, swept, params))
        resolved_cells.append((spec, variants))
    if problems:
        raise BenchErrors(list(dict.fromkeys(problems)))  # a value shared by several cells: said once

    runs: list[RunConfig] = []
    for dataset, (K, Q), (spec, variants) in itertools.product(dataset_hashes, shots, resolved_cells):
        for init, swept, params in variants:
            for seed in seeds if seeds is not None else grid.seeds:
                runs.append(
                    RunConfig(
                        dataset=dataset,
                        dataset_hash=dataset_hashes[dataset],
                        method=spec.name,
                        init=init,
                        seed=int(seed),
                        K=K,
                        Q=Q,
                        params=tuple(sorted(params.items())),
                        cell=cell_label(spec.name, init, swept),
                        **({} if code is None else {"code": code}),
                        population_K=population[Q],
                    )
                )
    hashes = [r.hash for r in runs]
    if len(set(hashes)) != len(hashes):
        raise BenchError(f"grid {grid.name!r} declares the same run twice", "remove the duplicate cell")
    return runs


def grid_run_labels(grid: Grid, runs: list[dict], any_code: bool = False) -> dict[str, str]:
    """Hash -> cell label of the runs ``grid`` declares, for every version of its datasets found among
    ``runs`` (run.json records); used to show one grid's runs from a shared store under the grid's own
    labels (a run shared with another grid may have been stored under that grid's label, e.g.
    default's ``anil[gru4rec]`` is full's ``anil[gru4rec] outer_lr=0.001``). Only the current code's
    runs, unless ``any_code``: then those of every code fingerprint found too."""
    versions = {(r["config"]["dataset"], r["config"]["dataset_hash"]) for r in runs}
    codes = {r["config"].get("code", "") for r in runs} if any_code else {code_fingerprint()}
    labels: dict[str, str] = {}
    for (dataset, dataset_hash), code in itertools.product(versions, codes):
        labels.update({run.hash: run.cell for run in expand(grid, {dataset: dataset_hash}, code=code)})
    return labels


def cell_labels(grid):
    """(``[[cells]]`` entry, its method spec, a cell label) for every label each entry expands to
    (inits x sweep values), as ``expand`` labels its runs."""
    for cell in grid.cells:
        spec = get_method(cell.get("method"))
        sweep = dict(cell.get("sweep", {}))
        keys = sorted(sweep)
        for init in cell_inits(cell, spec):
            for values in itertools.product(*(sweep[k] for k in keys)):
                yield cell, spec, cell_label(spec.name, init, dict(zip(keys, values)))


def grid_cell_modes(grid) -> set[str]:
    """Every "CELL:MODE" a grid's runs can produce (cell labels as ``bench.plan.grid.expand`` makes them)."""
    return {f"{label}:{mode}" for _, spec, label in cell_labels(grid) for mode in spec.modes}


def questions_for(grid_name: str) -> tuple[Question, ...]:
    """The declared family of a grid (preset name or .toml path)."""
    return load_grid(grid_name).compare


def cell_fixed_keys(grid: Grid) -> dict[str, set[str]]:
    """Cell label -> the params its ``[[cells]]`` entry fixes (its ``params`` and ``sweep`` keys): they
    define the cell, so tuning (bench/run/tune.py) leaves them as declared."""
    return {label: set(cell.get("params", {})) | set(cell.get("sweep", {})) for cell, _, label in cell_labels(grid)}


def tuned_runs(runs: list[RunConfig], tuned: dict[tuple[str, int, int, str], dict[str, Any]]) -> list[RunConfig]:
    """``run --tuned``: each run with its cell's tuned params, by (dataset, K, Q, cell label) (from
    bench.run.tune.tuned_params; a cell absent from ``tuned`` keeps its own). The params are part of the
    identity, so a tuned run has another hash than its untuned run."""
    out = []
    for run in runs:
        params = tuned.get((run.dataset, run.K, run.Q, run.cell))
        if params is not None:
            spec = get_method(run.method)
            merged = {**run.params_dict, **{key: spec.parse_param(key, value) for key, value in params.items()}}
            run = dataclasses.replace(run, params=tuple(sorted(spec.run_params(run.init, merged).items())))
        out.append(run)
    return out
