"""The grid's remaining time, from what its remaining runs are expected to cost.

A run's expected cost is the mean wall time of complete runs like it (same settings but the seed;
else the same method and settings but the seed and init), from the store and from this grid as
it goes; a running run without such a history is estimated from its per-step rate times its
remaining steps. While any remaining run has no estimate, :meth:`GridEta.remaining` is None and
the display shows no ETA rather than a wrong one.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

_NOT_COST = ("seed", "engine")  # the seed does not change a run's cost; engine is recorded beside the identity


def _keys(config: dict) -> tuple[str, str]:
    """(same settings but the seed, same method and settings but the seed, init and data version)."""
    same = {k: v for k, v in config.items() if k not in _NOT_COST}
    alike = {k: v for k, v in same.items() if k not in ("init", "dataset_hash")}
    return json.dumps(same, sort_keys=True, default=str), json.dumps(alike, sort_keys=True, default=str)


@dataclass
class _Running:
    started: float
    phase: str = ""
    phase_started: float = 0.0
    done: int = 0
    total: int = 0


@dataclass
class GridEta:
    jobs: int = 1
    clock: Callable[[], float] = time.monotonic
    _history: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _queued: dict[str, dict] = field(default_factory=dict)  # run hash -> config identity
    _running: dict[str, _Running] = field(default_factory=dict)

    def learn(self, config: dict, wall_seconds: float) -> None:
        """A complete run's cost (from the store, or one that just finished)."""
        for key in _keys(config):
            self._history[key].append(float(wall_seconds))

    def expected(self, config: dict) -> float | None:
        for key in _keys(config):
            if self._history.get(key):
                return sum(self._history[key]) / len(self._history[key])
        return None

    def queue(self, run_hash: str, config: dict) -> None:
        self._queued[run_hash] = config

    def start(self, run_hash: str) -> None:
        now = self.clock()
        self._running[run_hash] = _Running(started=now, phase_started=now)

    def progress(self, run_hash: str, phase: str, done: int, total: int) -> None:
        state = self._running.get(run_hash)
        if state is None:
            return
        if phase != state.phase:
            state.phase, state.phase_started = phase, self.clock()
        state.done, state.total = done, total

    def finish(self, run_hash: str, wall_seconds: float | None) -> None:
        config = self._queued.pop(run_hash, None)
        self._running.pop(run_hash, None)
        if config is not None and wall_seconds is not None:
            self.learn(config, wall_seconds)

    def _running_left(self, run_hash: str, state: _Running, now: float) -> float | None:
        by_history = self.expected(self._queued[run_hash])
        by_rate = None
        if state.total and state.done:  # seconds per step in this phase times the steps left in it
            by_rate = (now - state.phase_started) / state.done * (state.total - state.done)
        if by_history is not None:
            return max(by_history - (now - state.started), by_rate or 0.0)
        return by_rate

    def remaining(self) -> float | None:
        """Seconds until the grid is done, or None while some remaining run cannot be estimated."""
        now = self.clock()
        total = 0.0
        for run_hash, config in self._queued.items():
            state = self._running.get(run_hash)
            left = self._running_left(run_hash, state, now) if state else self.expected(config)
            if left is None:
                return None
            total += left
        return total / max(1, min(self.jobs, len(self._queued)))
