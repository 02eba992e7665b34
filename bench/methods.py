"""Methods registry: every recommender the suite compares, by name.

Each method produces, for every query prefix of an episode, scores over the whole catalogue;
``evaluate_method`` hands them to the single evaluator (bench/metrics.py). Adding a method is one
entry in ``METHODS``. Params are the method's ``defaults`` overridden by the grid; an unknown param
or init is refused with the valid names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch

from baselines.gru4rec import GRU4REC_DEFAULTS
from baselines.simple import PopularityMethod, RandomMethod
from bench.errors import BenchError
from bench.metrics import evaluate_scores
from meta.algorithms import check_engine
from meta.inits import INIT_PARAMS, INITS, resolve_init_params
from meta.maml import INNER_DEFAULTS, MAML_DEFAULTS, GRU4RecMethod, MAMLMethod

ZERO_SHOT, FEW_SHOT = "zero-shot", "few-shot"


def no_progress(phase: str, done: int, total: int) -> None:
    pass


@dataclass
class RunContext:
    dataset: Any  # bench.data.store.Dataset (n_items, content_hash, pairs(split), episodes(split, K, Q))
    seed: int
    K: int = 5
    Q: int = 10
    params: dict = field(default_factory=dict)  # method defaults overridden by the grid
    init: str | None = None
    cache_dir: Path = Path("results/cache")  # shared prerequisites (GRU4Rec weights)
    device: str = "cpu"
    progress: Callable[[str, int, int], None] = no_progress


class Method(Protocol):
    modes: tuple[str, ...]

    def fit(self, ctx: RunContext) -> dict:
        """Train; returns {"curve": [{iteration, train_loss, val_acc@1, ...}], "train_seconds": ..., ...}."""

    def score(self, episodes: pd.DataFrame, mode: str) -> Iterator[torch.Tensor]:
        """Scores [n, Q, n_items + 1] per chunk of episodes, in episode order."""


@dataclass(frozen=True)
class MethodSpec:
    name: str
    build: Callable[[RunContext], Method]  # params resolved and init checked before the method sees ctx
    uses_init: bool
    modes: tuple[str, ...]
    defaults: dict
    description: str = ""
    default_init: str | None = None
    algorithm: str | None = None  # MAML-family: meta/algorithms.py's entry; its engines are checked

    def resolve_params(self, overrides: dict | None) -> dict:
        """The defaults overridden by ``overrides``; a key the method does not know is refused."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise BenchError(
                f"method {self.name!r} has no param {', '.join(map(repr, unknown))}",
                f"its params are {', '.join(self.defaults) or '(none)'}",
            )
        return {**self.defaults, **overrides}

    def resolve_init(self, init: str | None) -> str | None:
        if not self.uses_init:
            if init is not None:
                raise BenchError(f"method {self.name!r} takes no init (got {init!r})", "leave init empty for it")
            return None
        init = init or self.default_init
        if init not in INITS:
            raise BenchError(f"unknown init {init!r}", f"choose one of {', '.join(INITS)}")
        return init

    def run_params(self, init: str | None, params: dict) -> dict:
        """Resolved ``params`` as a run with ``init`` records them: the init params its init does not
        use left out (they are no part of its identity), its own resolved (a checkpoint's sha256)."""
        if self.algorithm is not None and "engine" in params:
            check_engine(self.algorithm, params["engine"])
        return resolve_init_params(init, params) if self.uses_init else params

    def prepare(self, ctx: RunContext) -> RunContext:
        """ctx with params resolved against the defaults and the init checked (what a run records)."""
        init = self.resolve_init(ctx.init)
        return dataclasses.replace(ctx, params=self.run_params(init, self.resolve_params(ctx.params)), init=init)


def _spec(name, factory, uses_init, modes, defaults, description, default_init=None, algorithm=None) -> MethodSpec:
    """A registry entry whose build(ctx) resolves params and init, then calls ``factory(spec, ctx)``."""

    def build(ctx: RunContext) -> Method:
        return factory(spec, spec.prepare(ctx))

    defaults = {**defaults, **INIT_PARAMS} if uses_init else dict(defaults)  # an init's own params (init_checkpoint)
    spec = MethodSpec(name, build, uses_init, tuple(modes), defaults, description, default_init, algorithm)
    return spec


def _meta(spec: MethodSpec, ctx: RunContext) -> Method:
    """A MAML-family method whose inner loop is meta/algorithms.py's ``spec.algorithm``."""
    return MAMLMethod(ctx, spec.name, ctx.init, spec.modes, ctx.params, spec.algorithm)


def _maml_notebook(spec: MethodSpec, ctx: RunContext) -> Method:
    return MAMLMethod(ctx, spec.name, ctx.init, spec.modes, {**ctx.params, "engine": "notebook"})


def _gru4rec(spec: MethodSpec, ctx: RunContext) -> Method:
    return GRU4RecMethod(ctx, spec.name, spec.modes, ctx.params)


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in [
        _spec("random", lambda spec, ctx: RandomMethod(ctx), False, [ZERO_SHOT], {}, "uniformly random scores (floor)"),
        _spec("popularity", lambda spec, ctx: PopularityMethod(ctx), False, [ZERO_SHOT], {}, "train-split label counts"),
        _spec("gru4rec", _gru4rec, False, [ZERO_SHOT], GRU4REC_DEFAULTS, "global GRU4Rec, no adaptation"),
        _spec(
            "gru4rec-finetune",
            _gru4rec,
            False,
            [FEW_SHOT],
            {**GRU4REC_DEFAULTS, **INNER_DEFAULTS},
            "GRU4Rec fine-tuned on the K support pairs with MAML's inner loop, no meta-training",
        ),
        _spec(
            "maml",
            _meta,
            True,
            [ZERO_SHOT, FEW_SHOT],
            MAML_DEFAULTS,
            "first-order MAML (learn2learn) from the chosen init: random = vanilla, gru4rec = warm start",
            default_init="random",
            algorithm="maml",
        ),
        _spec(
            "anil",
            _meta,
            True,
            [ZERO_SHOT, FEW_SHOT],
            MAML_DEFAULTS,
            "ANIL (learn2learn MAML around the output layer only; embedding and GRU meta-trained by the outer loop)",
            default_init="random",
            algorithm="anil",
        ),
        _spec(
            "metasgd",
            _meta,
            True,
            [ZERO_SHOT, FEW_SHOT],
            MAML_DEFAULTS,
            "first-order Meta-SGD (learn2learn): per-parameter inner rates from inner_lr, learned by the outer loop",
            default_init="random",
            algorithm="metasgd",
        ),
        _spec(
            "maml-notebook",
            _maml_notebook,
            True,
            [ZERO_SHOT, FEW_SHOT],
            {key: value for key, value in MAML_DEFAULTS.items() if key != "engine"},
            "reproduction of notebook 08's defective MAML (engine 'notebook'); not a recommended method",
            default_init="gru4rec",
        ),
    ]
}


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise BenchError(f"unknown method {name!r}", f"choose one of {', '.join(METHODS)}")
    return METHODS[name]


def evaluate_method(method: Method, episodes: pd.DataFrame, mode: str) -> list[dict]:
    """Per-episode metrics (bench.metrics.evaluate_scores) of ``method``'s scores in ``mode``."""
    return evaluate_scores(method.score(episodes, mode), list(episodes["query_labels"]))
