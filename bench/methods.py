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
from baselines.knn import SKNN_DEFAULTS, VSKNN_DEFAULTS, SessionKNNMethod
from baselines.rules import MARKOV_DEFAULTS, SR_DEFAULTS, MarkovMethod, SequentialRulesMethod
from baselines.sasrec import SASREC_DEFAULTS, SASRecMethod
from baselines.simple import PopularityMethod, RandomMethod
from bench.errors import BenchError
from bench.metrics import evaluate_scores
from meta.inits import INITS
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

    def prepare(self, ctx: RunContext) -> RunContext:
        """ctx with params resolved against the defaults and the init checked (what a run records)."""
        return dataclasses.replace(ctx, params=self.resolve_params(ctx.params), init=self.resolve_init(ctx.init))


def _spec(name, factory, uses_init, modes, defaults, description, default_init=None) -> MethodSpec:
    """A registry entry whose build(ctx) resolves params and init, then calls ``factory(spec, ctx)``."""

    def build(ctx: RunContext) -> Method:
        return factory(spec, spec.prepare(ctx))

    spec = MethodSpec(name, build, uses_init, tuple(modes), dict(defaults), description, default_init)
    return spec


def _maml(spec: MethodSpec, ctx: RunContext) -> Method:
    return MAMLMethod(ctx, spec.name, ctx.init, spec.modes, ctx.params)


def _maml_notebook(spec: MethodSpec, ctx: RunContext) -> Method:
    return MAMLMethod(ctx, spec.name, ctx.init, spec.modes, {**ctx.params, "engine": "notebook"})


def _gru4rec(spec: MethodSpec, ctx: RunContext) -> Method:
    return GRU4RecMethod(ctx, spec.name, spec.modes, ctx.params)


def _memory(method_class):
    """A factory for a non-neural baseline (baselines/memory.py): both modes, support weight chosen on val."""
    return lambda spec, ctx: method_class(ctx, spec.name, ctx.params)


def _sasrec(spec: MethodSpec, ctx: RunContext) -> Method:
    return SASRecMethod(ctx, spec.name, spec.modes, ctx.params)


SUPPORT_NOTE = "; few-shot adds the K support pairs with a weight chosen on val"
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
            _maml,
            True,
            [ZERO_SHOT, FEW_SHOT],
            MAML_DEFAULTS,
            "first-order MAML (learn2learn) from the chosen init: random = vanilla, gru4rec = warm start",
            default_init="random",
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
        _spec("markov", _memory(MarkovMethod), False, [ZERO_SHOT, FEW_SHOT], MARKOV_DEFAULTS, "first-order transition counts" + SUPPORT_NOTE),
        _spec("sr", _memory(SequentialRulesMethod), False, [ZERO_SHOT, FEW_SHOT], SR_DEFAULTS, "sequential rules (session-rec)" + SUPPORT_NOTE),
        _spec("sknn", _memory(SessionKNNMethod), False, [ZERO_SHOT, FEW_SHOT], SKNN_DEFAULTS, "session-based kNN (session-rec)" + SUPPORT_NOTE),
        _spec("vsknn", _memory(SessionKNNMethod), False, [ZERO_SHOT, FEW_SHOT], VSKNN_DEFAULTS, "position-weighted session kNN (session-rec)" + SUPPORT_NOTE),
        _spec("sasrec", _sasrec, False, [ZERO_SHOT], SASREC_DEFAULTS, "global SASRec (causal self-attention), no adaptation"),
        _spec(
            "sasrec-finetune",
            _sasrec,
            False,
            [FEW_SHOT],
            {**SASREC_DEFAULTS, **{key: INNER_DEFAULTS[key] for key in ("inner_lr", "inner_steps")}},
            "SASRec fine-tuned on the K support pairs with gru4rec-finetune's inner loop (per-task engine)",
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
