"""No label leaks into a score: test query labels never change a score, training reads no test
split, and val labels (model selection only) never change what is trained."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bench.methods.registry import METHODS, RunContext
from tests.conftest import SMALL_GRU4REC

K, Q = 5, 10
SHORT = {**SMALL_GRU4REC, "max_epochs": 2, "meta_iterations": 4, "meta_batch": 4, "val_every": 2, "val_episodes": 8, "inner_steps": 2}


class RecordingDataset:
    """A dataset that records which (reader, split) a fit reads, and can shuffle the labels of some
    splits (pairs' labels across pairs, episodes' query labels within each episode)."""

    def __init__(self, dataset, shuffled: tuple[str, ...] = ()):
        self._dataset, self.shuffled, self.reads = dataset, shuffled, set()

    def __getattr__(self, name):
        return getattr(self._dataset, name)

    def pairs(self, split: str) -> pd.DataFrame:
        self.reads.add(("pairs", split))
        frame = self._dataset.pairs(split)
        if split in self.shuffled:
            frame = frame.assign(label=np.random.default_rng(1).permutation(frame["label"].to_numpy()))
        return frame

    def episodes(self, split: str, K: int, Q: int, population_K: int | None = None) -> pd.DataFrame:
        self.reads.add(("episodes", split))
        frame = self._dataset.episodes(split, K, Q, population_K)
        return shuffle_query_labels(frame) if split in self.shuffled else frame


def shuffle_query_labels(episodes: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    shuffled = [list(rng.permutation(list(labels))) for labels in episodes["query_labels"]]
    assert any(list(a) != list(b) for a, b in zip(shuffled, episodes["query_labels"]))
    # a shuffled label may be its query's last prefix course: such data has no ranking protocol
    return episodes.assign(query_labels=shuffled).drop(columns=["query_excluded"], errors="ignore")


def fit(name, dataset, cache_dir, init=None, **params):
    spec = METHODS[name]
    ctx = spec.prepare(RunContext(dataset, seed=0, K=K, Q=Q, params={**params}, init=init, cache_dir=cache_dir))
    method = spec.build(ctx)
    return method, method.fit(ctx)


def params_for(name: str) -> dict:
    return {k: v for k, v in SHORT.items() if k in METHODS[name].defaults}


CASES = [("random", None), ("popularity", None), ("gru4rec", None), ("gru4rec-finetune", None), ("maml", "random"), ("maml", "gru4rec")]


@pytest.mark.parametrize("name, init", CASES)
def test_fit_never_reads_the_test_split_and_test_query_labels_never_change_a_score(tiny_dataset, tmp_path, name, init):
    recording = RecordingDataset(tiny_dataset)
    method, _ = fit(name, recording, tmp_path, init, **params_for(name))  # a fresh cache: GRU4Rec really trains here
    assert not {read for read in recording.reads if read[1] == "test"}, recording.reads
    test = tiny_dataset.episodes("test", K, Q)
    for mode in METHODS[name].modes:
        scores = torch.cat(list(method.score(test, mode)))
        assert torch.equal(scores, torch.cat(list(method.score(shuffle_query_labels(test), mode)))), mode


def test_popularity_reads_train_labels_only(tiny_dataset, tmp_path):
    recording = RecordingDataset(tiny_dataset)
    fit("popularity", recording, tmp_path)
    assert recording.reads == {("pairs", "train")}


@pytest.mark.parametrize("name, init", [("gru4rec", None), ("maml", "random")])
def test_val_labels_select_a_checkpoint_but_never_train(tiny_dataset, tmp_path, name, init):
    """Shuffled val labels give the same training losses, step by step: val only picks a checkpoint."""
    params = {**params_for(name), "patience": SHORT["max_epochs"]}  # no early stop: the same number of epochs
    curves = {}
    for shuffled in ((), ("val",)):
        recording = RecordingDataset(tiny_dataset, shuffled)
        _, info = fit(name, recording, tmp_path / "-".join(shuffled or ("plain",)), init, **params)
        assert {split for _, split in recording.reads} <= {"train", "val"}
        curves[shuffled] = [row["train_loss"] for row in info["curve"]]
    assert curves[()] == curves[("val",)]
    assert any(loss is not None for loss in curves[()])
