"""The grid ETA counts what the remaining runs are expected to cost, or says nothing."""

from __future__ import annotations

import pytest

from bench.run.eta import GridEta


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _config(method: str, init: str | None = None, seed: int = 0, iterations: int = 500) -> dict:
    return {
        "dataset": "d",
        "dataset_hash": "h",
        "method": method,
        "init": init,
        "seed": seed,
        "K": 5,
        "Q": 10,
        "params": {"meta_iterations": iterations},
    }


def test_instant_runs_do_not_make_the_grid_look_done():
    """Issue 14: after two instant baselines the old ETA said 3 s while MAML had minutes to go."""
    clock = Clock()
    eta = GridEta(clock=clock)
    eta.learn(_config("maml", "random", seed=1), 600.0)  # an earlier seed of the same cell, in the store
    for name, config in (("r", _config("random")), ("p", _config("popularity")), ("m", _config("maml", "random"))):
        eta.queue(name, config)
    assert eta.remaining() is None  # the baselines have never run: no estimate rather than a wrong one
    for name in ("r", "p"):
        eta.start(name)
        clock.now += 1.0
        eta.finish(name, 1.0)
    assert eta.remaining() == pytest.approx(600.0)
    eta.start("m")
    clock.now += 200.0
    assert eta.remaining() == pytest.approx(400.0)


def test_a_running_run_without_history_is_estimated_from_its_rate():
    clock = Clock()
    eta = GridEta(clock=clock)
    eta.queue("m", _config("maml", "gru4rec"))
    eta.start("m")
    assert eta.remaining() is None
    eta.progress("m", "meta-train", 0, 500)
    clock.now += 10.0
    eta.progress("m", "meta-train", 50, 500)  # 0.2 s per iteration, 450 to go
    assert eta.remaining() == pytest.approx(90.0)


def test_history_of_a_similar_run_and_parallel_jobs():
    clock = Clock()
    eta = GridEta(jobs=2, clock=clock)
    eta.learn(_config("maml", "random"), 300.0)  # another init, same method and settings: same cost expected
    eta.queue("a", _config("maml", "gru4rec"))
    eta.queue("b", _config("maml", "gru4rec-frozen-embed"))
    assert eta.remaining() == pytest.approx(300.0)  # two 300 s runs on two workers
    eta.learn(_config("maml", "random", iterations=4), 1.0)  # other settings teach nothing about these runs
    assert eta.remaining() == pytest.approx(300.0)
