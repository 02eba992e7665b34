"""Inner-loop engines: how a meta-batch of tasks is adapted and scored.

Registry from name to engine class, by reference: each engine lives in its own module, imported
here, so the import contract sees what the registry loads. "per-task" (learn2learn's
MAML.clone()/adapt(), one task at a time) is the readable reference and the default; "batched" must equal it; "notebook" reproduces notebook 08's
defects and is not a recommended method. Which engines implement which algorithm (MAML, ANIL,
Meta-SGD) is declared in meta/algorithms.py and checked when a run's params are resolved. Those that
also take a per-task plan (``plan=``, meta/tasks.py TaskPlan: SRS-adaptive MAML's own rates, step
counts and loss weights) are listed in PLAN_ENGINES.
"""

from __future__ import annotations

from bench.core.errors import BenchError
from meta.algorithms import algorithm_of
from meta.notebook import NotebookEngine
from meta.per_task import PerTaskEngine
from meta.tasks import plan_keyword


class BatchedEngine:
    """The task-batched engine: hands each call to the batched inner loop its algorithm declares
    (``Algorithm.batched`` in meta/algorithms.py), so no batched loop knows about another."""

    name = "batched"

    def __init__(self):
        self._loops: dict[type, object] = {}

    def _loop(self, maml):
        loop = algorithm_of(maml).batched
        if loop not in self._loops:
            self._loops[loop] = loop()
        return self._loops[loop]

    def meta_gradient(self, maml, tasks, inner_steps: int, plan=None) -> float:
        return self._loop(maml).meta_gradient(maml, tasks, inner_steps, **plan_keyword(plan))

    def query_scores(self, maml, tasks, inner_steps: int, plan=None):
        return self._loop(maml).query_scores(maml, tasks, inner_steps, **plan_keyword(plan))


ENGINES: dict[str, type] = {"per-task": PerTaskEngine, "batched": BatchedEngine, "notebook": NotebookEngine}

PLAN_ENGINES: tuple[str, ...] = ("per-task", "batched")  # MAML only: BatchedMAML and the l2l reference


def get_engine(name: str):
    """A fresh engine instance by registry name."""
    if name not in ENGINES:
        raise BenchError(f"unknown engine {name!r}", f"choose one of {', '.join(ENGINES)}")
    return ENGINES[name]()
