"""Episodes as tensors: one `Task` per episode, the unit every inner-loop engine works on."""

from __future__ import annotations

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
