"""Episodes as tensors: one `Task` per episode, the unit every inner-loop engine works on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd
import torch

from baselines.batching import pad_prefixes


class Task(NamedTuple):
    """One episode: K support pairs to adapt on, Q query pairs to score (prefixes right-padded with 0)."""

    support_prefixes: torch.Tensor  # [K, T] long
    support_lengths: torch.Tensor  # [K] long
    support_labels: torch.Tensor  # [K] long
    query_prefixes: torch.Tensor  # [Q, T'] long
    query_lengths: torch.Tensor  # [Q] long
    query_labels: torch.Tensor  # [Q] long


def task_from_row(row, device: torch.device | str = "cpu") -> Task:
    support_prefixes, support_lengths = pad_prefixes(list(row["support_prefixes"]), device)
    query_prefixes, query_lengths = pad_prefixes(list(row["query_prefixes"]), device)
    return Task(
        support_prefixes,
        support_lengths,
        torch.as_tensor(list(row["support_labels"]), dtype=torch.long, device=device),
        query_prefixes,
        query_lengths,
        torch.as_tensor(list(row["query_labels"]), dtype=torch.long, device=device),
    )


def tasks_from_episodes(episodes: pd.DataFrame, device: torch.device | str = "cpu") -> list[Task]:
    """One Task per episode row, in row order (columns as `Dataset.episodes` returns them)."""
    return [task_from_row(row, device) for _, row in episodes.iterrows()]


@dataclass(frozen=True)
class TaskPlan:
    """Per task of a batch, what the inner and outer loops do with it (SRS-adaptive MAML, meta/srs_maml.py):
    its inner rate is ``inner_lr * rate_factors[i]``, it takes ``steps[i]`` inner steps (a task past its
    count stops changing), and its query loss enters the outer loss with weight ``weights[i]``
    ((1/n) sum_i w_i L_i). No plan: every task at ``inner_lr``, the run's ``inner_steps``, weight 1."""

    rate_factors: tuple[float, ...]
    steps: tuple[int, ...]
    weights: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.steps)

    def take(self, indices) -> TaskPlan:
        """The plan of the tasks at ``indices``, in that order."""
        return TaskPlan(*(tuple(values[i] for i in indices) for values in (self.rate_factors, self.steps, self.weights)))

    def step_factors(self, step: int) -> list[float]:
        """Each task's rate factor at inner step ``step`` (0-based): its factor while it still steps, else 0."""
        return [factor if step < count else 0.0 for factor, count in zip(self.rate_factors, self.steps)]


def plan_keyword(plan: TaskPlan | None) -> dict:
    """``plan=`` for an engine only when there is one: engines and loops without per-task plans (the
    notebook engine, ANIL, Meta-SGD) take no such keyword, so handing them one fails loudly."""
    return {} if plan is None else {"plan": plan}
