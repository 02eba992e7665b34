"""The per-task engine: learn2learn's MAML.clone()/adapt(), one task at a time (the reference).

Meta-training (`meta_gradient`) runs the model as it is (train mode, dropout active). Evaluation
(`query_scores`) is deterministic: adaptation runs with the model in train mode (cuDNN RNN backward
refuses eval mode) but every Dropout module in eval mode and the GRU's inter-layer dropout set to 0,
so the same weights and support set always give the same scores.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from baselines.model import deterministic  # the scoring mode, shared with GRU4Rec's per-epoch validation
from meta.tasks import Task, TaskPlan

# learn2learn re-flattens nn.GRU weights on clone()/adapt(), touching .grad of non-leaf tensors: harmless.
GRAD_WARNING = "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed"


def adapt(maml, task: Task, inner_steps: int, rate_factor: float = 1.0):
    """A clone of ``maml`` after ``inner_steps`` gradient steps on the task's support loss, at
    ``rate_factor`` times its inner rate (learn2learn's ``lr`` on the clone)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=GRAD_WARNING)
        learner = maml.clone()
        if rate_factor != 1.0:
            learner.lr = maml.lr * rate_factor
        for _ in range(inner_steps):
            support_logits = learner(task.support_prefixes, task.support_lengths)
            learner.adapt(F.cross_entropy(support_logits, task.support_labels))
    return learner


class PerTaskEngine:
    name = "per-task"

    def meta_gradient(self, maml, tasks: Sequence[Task], inner_steps: int, plan: TaskPlan | None = None) -> float:
        """Add d(mean query loss after adaptation)/d(meta parameters) into .grad; return the mean query loss.

        With ``first_order=True`` this is the query-loss gradient at the adapted weights. A ``plan``
        gives each task its own inner rate, step count and loss weight: the loss is then
        (1/n) sum_i w_i L_i, and ``inner_steps`` is unused.
        """
        total = 0.0
        for index, task in enumerate(tasks):
            steps, factor, weight = (inner_steps, 1.0, 1.0) if plan is None else (plan.steps[index], plan.rate_factors[index], plan.weights[index])
            learner = adapt(maml, task, steps, factor)
            query_logits = learner(task.query_prefixes, task.query_lengths)
            query_loss = weight * F.cross_entropy(query_logits, task.query_labels)
            (query_loss / len(tasks)).backward()  # per task, so each task's graph is freed at once
            total += float(query_loss.detach())
        return total / len(tasks)

    def query_scores(self, maml, tasks: Sequence[Task], inner_steps: int, plan: TaskPlan | None = None) -> torch.Tensor:
        """Detached logits [n, Q, n_items + 1] for each task's queries after ``inner_steps`` adaptation
        steps on its support set (0: zero-shot; a ``plan``: each task's own rate and step count).
        Dropout off; ``maml``'s own weights are untouched."""
        scores = []
        with deterministic(maml.module):
            for index, task in enumerate(tasks):
                steps, factor = (inner_steps, 1.0) if plan is None else (plan.steps[index], plan.rate_factors[index])
                learner = adapt(maml, task, steps, factor) if steps > 0 else maml
                with torch.no_grad():
                    scores.append(learner(task.query_prefixes, task.query_lengths))
        return torch.stack(scores)
