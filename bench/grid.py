"""Grids are data: TOML files under bench/grids/ expand into frozen, hashable run configs.

A grid file declares ``datasets``, ``seeds``, ``shots`` (a list of {K, Q}), global ``[params]``
(applied to every method that has the parameter) and ``[[cells]]``: a method, its init(s), and
optional ``params`` (fixed) and ``sweep`` (key -> list of values, one cell per value). A run is one
(dataset, cell, seed, K, Q) with every parameter resolved; its content hash names its folder.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError

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

    @property
    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def identity(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "dataset_hash": self.dataset_hash,
            "method": self.method,
            "init": self.init,
            "seed": self.seed,
            "K": self.K,
            "Q": self.Q,
            "params": self.params_dict,
        }

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


def available_grids() -> list[str]:
    return sorted(p.stem for p in GRID_DIR.glob("*.toml"))


def load_grid(name: str) -> Grid:
    """A grid by preset name (bench/grids/NAME.toml) or by path to a TOML file."""
    path = Path(name)
    if not (path.suffix == ".toml" and path.is_file()):
        path = GRID_DIR / f"{name}.toml"
    if not path.is_file():
        raise BenchError(f"unknown grid {name!r}", f"choose one of {', '.join(available_grids())} or give a .toml path")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise BenchError(f"grid file {path} is not valid TOML: {err}", "fix the file") from None
    try:
        return Grid(
            name=raw.get("name", path.stem),
            description=raw.get("description", ""),
            datasets=tuple(raw["datasets"]),
            seeds=tuple(int(s) for s in raw["seeds"]),
            shots=tuple((int(s["K"]), int(s["Q"])) for s in raw["shots"]),
            params=dict(raw.get("params", {})),
            cells=tuple(raw["cells"]),
        )
    except KeyError as err:
        raise BenchError(f"grid file {path} lacks {err.args[0]!r}", "declare datasets, seeds, shots and cells") from None


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


def _inits(cell: dict, spec) -> list[str | None]:
    """The cell's init(s), each checked by the method's own spec (unknown init, init on a method without)."""
    inits = cell.get("init")
    inits = [inits] if inits is None or isinstance(inits, str) else list(inits)
    return [spec.resolve_init(init) for init in inits]


def cell_label(method: str, init: str | None, swept: dict[str, Any]) -> str:
    label = method if init is None else f"{method}[{init}]"
    if swept:
        label += " " + ",".join(f"{k}={v}" for k, v in sorted(swept.items()))
    return label


def expand(
    grid: Grid,
    dataset_hashes: dict[str, str],
    seeds: list[int] | None = None,
    overrides: dict[str, Any] | None = None,
) -> list[RunConfig]:
    """Every run of a grid, for the datasets given (name -> content hash), in a stable order.

    ``overrides`` (from --set) replace parameters in every method that has them; K and Q replace
    the grid's shots. A key no method in the grid knows is refused.
    """
    from bench.methods import get_method

    overrides = dict(overrides or {})
    shots = list(grid.shots)
    if "K" in overrides or "Q" in overrides:
        K = int(overrides.pop("K", shots[0][0]))
        Q = int(overrides.pop("Q", shots[0][1]))
        shots = [(K, Q)]
    specs = [(cell, get_method(cell.get("method"))) for cell in grid.cells]
    known = set().union(*(spec.defaults for _, spec in specs))
    for key in list(grid.params) + list(overrides):
        if key not in known:
            raise BenchError(f"unknown parameter {key!r}", f"parameters of this grid's methods: {', '.join(sorted(known))}")

    runs: list[RunConfig] = []
    for dataset, (K, Q), (cell, spec) in itertools.product(dataset_hashes, shots, specs):
        sweep = dict(cell.get("sweep", {}))
        spec.resolve_params({**cell.get("params", {}), **sweep})  # refuses a key the method does not have
        sweep_keys = sorted(sweep)
        for init in _inits(cell, spec):
            for values in itertools.product(*(sweep[k] for k in sweep_keys)):
                swept = dict(zip(sweep_keys, values))
                params = dict(spec.defaults)
                params.update({k: v for k, v in grid.params.items() if k in params})
                params.update(cell.get("params", {}))
                params.update(swept)
                params.update({k: v for k, v in overrides.items() if k in params})
                params = spec.run_params(init, params)  # init params only where the init uses them
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
                        )
                    )
    hashes = [r.hash for r in runs]
    if len(set(hashes)) != len(hashes):
        raise BenchError(f"grid {grid.name!r} declares the same run twice", "remove the duplicate cell")
    return runs


def grid_run_hashes(grid: Grid, runs: list[dict]) -> set[str]:
    """Hashes of the runs ``grid`` declares, for every version of its datasets found among ``runs``
    (run.json records); used to show one grid's runs from a shared store."""
    versions = {(r["config"]["dataset"], r["config"]["dataset_hash"]) for r in runs}
    hashes: set[str] = set()
    for dataset, dataset_hash in versions:
        hashes |= {run.hash for run in expand(grid, {dataset: dataset_hash})}
    return hashes
