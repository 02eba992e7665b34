"""Inner-loop engines: how a meta-batch of tasks is adapted and scored.

Registry from name to "module:Class"; classes are imported on first use so each engine lives in
its own module. "per-task" (learn2learn's MAML.clone()/adapt(), one task at a time) is the
readable reference and the default; "batched" must equal it; "notebook" reproduces notebook 08's
defects and is not a recommended method. Which engines implement which algorithm (MAML, ANIL,
Meta-SGD) is declared in meta/algorithms.py and checked when a run's params are resolved.
"""

from __future__ import annotations

import importlib

from bench.errors import BenchError

ENGINES: dict[str, str] = {
    "per-task": "meta.per_task:PerTaskEngine",
    "batched": "meta.batched:BatchedEngine",
    "notebook": "meta.notebook:NotebookEngine",
}


def get_engine(name: str):
    """A fresh engine instance by registry name."""
    if name not in ENGINES:
        raise BenchError(f"unknown engine {name!r}", f"choose one of {', '.join(ENGINES)}")
    module_name, class_name = ENGINES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)()
