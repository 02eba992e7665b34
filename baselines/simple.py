"""The seed's floor baselines: uniformly random scores and train-split popularity.

Neither uses the support set, so each declares the zero-shot mode only.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from baselines.model import mask_padding
from bench.core.errors import BenchError

CHUNK = 64  # episodes per scored chunk


def check_mode(mode: str, modes: tuple[str, ...], name: str) -> None:
    if mode not in modes:
        raise BenchError(f"method {name!r} has no mode {mode!r}", f"its modes are {', '.join(modes)}")


def query_counts(episodes: pd.DataFrame) -> list[int]:
    return [len(labels) for labels in episodes["query_labels"]]


class RandomMethod:
    """Scores drawn uniformly from a generator seeded with the run's seed (same seed, same scores)."""

    modes = ("zero-shot",)

    def __init__(self, ctx, name: str):
        self.name = name  # the registry's
        self.seed = ctx.seed
        self.vocab_size = ctx.dataset.n_items + 1

    def fit(self, ctx) -> dict:
        return {"curve": [], "train_seconds": 0.0}

    def score(self, episodes: pd.DataFrame, mode: str) -> Iterator[torch.Tensor]:
        check_mode(mode, self.modes, self.name)
        generator = torch.Generator().manual_seed(self.seed)
        counts = query_counts(episodes)
        for start in range(0, len(counts), CHUNK):
            chunk = counts[start : start + CHUNK]
            yield mask_padding(torch.rand(len(chunk), chunk[0], self.vocab_size, generator=generator))


class PopularityMethod:
    """Every query scored by how often each item is a label among the train-split pairs."""

    modes = ("zero-shot",)

    def __init__(self, ctx, name: str):
        self.name = name  # the registry's
        self.vocab_size = ctx.dataset.n_items + 1
        self.counts: torch.Tensor | None = None

    def fit(self, ctx) -> dict:
        labels = ctx.dataset.pairs("train")["label"].to_numpy()
        counts = np.bincount(labels, minlength=self.vocab_size)[: self.vocab_size]
        self.counts = mask_padding(torch.as_tensor(counts, dtype=torch.float32))
        return {"curve": [], "train_seconds": 0.0, "n_train_pairs": int(len(labels))}

    def score(self, episodes: pd.DataFrame, mode: str) -> Iterator[torch.Tensor]:
        check_mode(mode, self.modes, self.name)
        if self.counts is None:
            raise BenchError(f"{self.name} scored before fit()", "call fit(ctx) first")
        counts = query_counts(episodes)
        for start in range(0, len(counts), CHUNK):
            chunk = counts[start : start + CHUNK]
            yield self.counts.expand(len(chunk), chunk[0], self.vocab_size)
