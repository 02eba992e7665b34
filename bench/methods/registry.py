"""Methods registry: every recommender the suite compares, by name.

Each method produces, for every query prefix of an episode, scores over the whole catalogue;
``evaluate_method`` hands them to the single evaluator (bench/core/metrics.py). Adding a method is one
entry in ``METHODS``. Params are the method's ``defaults`` overridden by the grid; each param's type
and valid range is declared once in ``PARAMS``; an unknown param or init, or a value out of its
declared range, is refused with what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch

from baselines.gru4rec import GRU4REC_DEFAULTS, TRAIN_USERS, TRAIN_USERS_DEFAULTS, no_report
from baselines.knn import POSITION_WEIGHTS, SCORE_DECAYS, SIMILARITIES, SKNN_DEFAULTS, VSKNN_DEFAULTS, SessionKNNMethod
from baselines.rules import MARKOV_DEFAULTS, SR_DEFAULTS, MarkovMethod, SequentialRulesMethod
from baselines.recency import RECENCY_DEFAULTS, RECENCY_MARKOV_DEFAULTS, RecencyMarkovMethod, RecencyMethod
from baselines.sasrec import SASREC_DEFAULTS, SASRecMethod
from baselines.simple import PopularityMethod, RandomMethod
from bench.core.errors import BenchError
from bench.core.metrics import evaluate_scores
from bench.core.params import Param, Space
from meta.engines import ENGINES, get_engine
from meta.algorithms import check_engine
from meta.inits import INIT_PARAMS, INITS, check_init, resolve_init_params
from meta.maml import INNER_DEFAULTS, MAML_DEFAULTS, GRU4RecMethod, MAMLMethod
from meta.srs_maml import SRS_DEFAULTS, SRSMAMLMethod
from meta.tasks import tasks_from_episodes

ZERO_SHOT, FEW_SHOT = "zero-shot", "few-shot"


# Every method param's type and range, by name (a name means the same thing in every method). A new
# param is one line here; tests/test_methods.py checks every registered method's defaults have one.
PARAMS: dict[str, Param] = {
    # GRU4Rec (baselines/gru4rec.py)
    "embed_dim": Param.int(ge=1),
    "hidden_dim": Param.int(ge=1),
    "n_layers": Param.int(ge=1),
    "dropout": Param.float(ge=0, lt=1),
    "lr": Param.float(gt=0),
    "batch_size": Param.int(ge=1),
    "max_epochs": Param.int(ge=1),
    "patience": Param.int(ge=1),
    "max_prefix": Param.int(ge=1),
    "train_users": Param.choice(*TRAIN_USERS),  # all train pairs, or those of the users meta-training sees
    # inner loop and meta-training (meta/maml.py)
    "inner_lr": Param.float(gt=0),
    "inner_steps": Param.int(ge=0),
    "engine": Param.choice(*ENGINES),
    "meta_batch": Param.int(ge=1),
    "outer_lr": Param.float(gt=0),
    "meta_iterations": Param.int(ge=0),
    "val_every": Param.int(ge=1),
    "val_episodes": Param.int(ge=0, optional=True),
    "grad_clip": Param.float(gt=0),
    "select_init": Param.bool(),
    # SRS-adaptive MAML (meta/srs_maml.py; notebook 10's TAU, K_MIN, K_MAX and its three parts, each switchable)
    "srs_tau": Param.float(ge=0, le=1),
    "srs_steps_high": Param.int(ge=0),
    "srs_steps_low": Param.int(ge=0),
    "srs_adaptive_steps": Param.bool(),
    "srs_scale_rate": Param.bool(),
    "srs_weight_outer": Param.bool(),
    # non-neural baselines (baselines/rules.py, baselines/knn.py; session-rec's names and defaults)
    "support_weights": Param.floats(ge=0),
    "steps": Param.int(ge=1),
    "pruning": Param.int(ge=0),
    "k": Param.int(ge=1),
    "sample_size": Param.int(ge=1),
    "similarity": Param.choice(*SIMILARITIES),
    "weighting": Param.choice(*POSITION_WEIGHTS),
    "weighting_score": Param.choice(*SCORE_DECAYS),
    "remind": Param.bool(),
    # repeat-aware rules (baselines/recency.py): candidates for recency-markov's Markov weight, chosen on val
    "markov_weights": Param.floats(ge=0),
    # the checkpoint init (meta/inits.py): a GRURecommender file, and its sha256 recorded by expansion
    "init_checkpoint": Param.path(exists=True, optional=True),
    "init_checkpoint_sha256": Param("str", optional=True),
    # SASRec (baselines/sasrec.py)
    "n_blocks": Param.int(ge=1),
    "n_heads": Param.int(ge=1),
}


# Search spaces for `python -m bench tune` (bench/run/tune.py): per method, the params tuned on val and
# their ranges (each value parses by PARAMS; tests/test_tune.py checks). Budgets (max_epochs,
# meta_iterations) are not tuned: every trial has the grid's. A method without an entry is not tuned;
# NOT_TUNED says why. A cell's own params and sweep keys stay fixed (they define the cell).
_MAML_SPACE = {"inner_lr": Space.float(1e-3, 1e-1, log=True), "outer_lr": Space.float(1e-4, 1e-2, log=True), "inner_steps": Space.int(1, 10)}
_TRAINED_SPACE = {"lr": Space.float(1e-4, 1e-2, log=True), "dropout": Space.float(0.0, 0.5)}  # early stopping (patience) within max_epochs
_FINETUNE_SPACE = {"inner_lr": Space.float(1e-3, 1e-1, log=True), "inner_steps": Space.int(1, 10)}
_KNN_SPACE = {"k": Space.int(10, 500, log=True), "sample_size": Space.int(100, 5000, log=True), "similarity": Space.choice(*SIMILARITIES)}
SPACES: dict[str, dict[str, Space]] = {
    "maml": _MAML_SPACE,
    "anil": _MAML_SPACE,
    "metasgd": _MAML_SPACE,
    "srs-maml": {key: _MAML_SPACE[key] for key in ("inner_lr", "outer_lr")},  # its steps are SRS's
    "gru4rec": _TRAINED_SPACE,
    "sasrec": _TRAINED_SPACE,
    "gru4rec-finetune": _FINETUNE_SPACE,  # its GRU4Rec: the tuned gru4rec cell's best (bench/run/tune.py)
    "sasrec-finetune": _FINETUNE_SPACE,  # its SASRec: the tuned sasrec cell's best
    "sknn": _KNN_SPACE,
    "vsknn": _KNN_SPACE,
    "sr": {"steps": Space.int(1, 20), "pruning": Space.int(0, 50)},
}
NOT_TUNED: dict[str, str] = {
    "random": "no parameter",
    "popularity": "no parameter",
    "recency": "no parameter (its support weight is already chosen on val)",
    "markov": "its support weight is already chosen on val",
    "recency-markov": "its Markov and support weights are already chosen on val",
    "maml-notebook": "a reproduction of notebook 08's settings, not a recommended method",
}
# Methods whose weights start from another method's trained model: that method's tuned best params
# (its space's keys) are used for it, e.g. maml[gru4rec] starts from the tuned gru4rec's GRU4Rec.
WARM_SOURCES: dict[str, str] = {"gru4rec-finetune": "gru4rec", "sasrec-finetune": "sasrec"}


def param_spec(method: str, key: str) -> Param:
    """The declared type and range of ``method``'s param ``key`` (``PARAMS``)."""
    if key not in PARAMS:
        raise BenchError(
            f"method {method!r} has param {key!r} without a declared type and range",
            f"add a line to PARAMS in bench/methods/registry.py, e.g. {key!r}: Param.int(ge=1),",
        )
    return PARAMS[key]


def no_progress(phase: str, done: int, total: int) -> None:
    pass


@dataclass
class RunContext:
    dataset: Any  # bench.data.dataset.Dataset (n_items, content_hash, pairs(split), episodes(split, K, Q, population_K))
    seed: int
    K: int = 5
    Q: int = 10
    population_K: int | None = None  # val/test: the learners eligible at population_K+Q (None: K); see Dataset.episodes
    params: dict = field(default_factory=dict)  # method defaults overridden by the grid
    init: str | None = None
    cache_dir: Path = Path("results/cache")  # shared prerequisites (GRU4Rec weights)
    device: str = "cpu"
    progress: Callable[[str, int, int], None] = no_progress
    # (step, val objective so far) after each validation of the run's own training; a tuning trial's
    # pruner (bench/run/pruning.py) raises there to stop it; a no-op for every other run
    report: Callable[[int, float], None] = no_report


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
    needs_srs: bool = False  # needs the dataset's session statistics (refused before any run without them)

    def resolve_params(self, overrides: dict | None) -> dict:
        """The defaults overridden by ``overrides``, each parsed by its declared type; a key the
        method does not know, or a value outside its declared range, is refused."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise BenchError(
                f"method {self.name!r} has no param {', '.join(map(repr, unknown))}",
                f"its params are {', '.join(self.defaults) or '(none)'}",
            )
        resolved = {}
        for key, value in {**self.defaults, **overrides}.items():
            try:
                resolved[key] = self.parse_param(key, value)
            except ValueError as err:
                raise BenchError(f"{self.name} param {key} = {value!r}: {err}") from None
        return resolved

    def parse_param(self, key: str, value: Any) -> Any:
        """``value`` parsed by param ``key``'s declared type; ValueError saying what is allowed."""
        return param_spec(self.name, key).parse(value)

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


def _spec(name, factory, uses_init, modes, defaults, description, default_init=None, algorithm=None, needs_srs=False) -> MethodSpec:
    """A registry entry whose build(ctx) resolves params and init, then calls ``factory(spec, ctx)``."""

    def build(ctx: RunContext) -> Method:
        return factory(spec, spec.prepare(ctx))

    defaults = {**defaults, **INIT_PARAMS} if uses_init else dict(defaults)  # an init's own params (init_checkpoint)
    spec = MethodSpec(name, build, uses_init, tuple(modes), defaults, description, default_init, algorithm, needs_srs)
    return spec


def _meta(spec: MethodSpec, ctx: RunContext) -> Method:
    """A MAML-family method whose inner loop is meta/algorithms.py's ``spec.algorithm``."""
    return MAMLMethod(ctx, spec.name, ctx.init, spec.modes, ctx.params, spec.algorithm)


def _srs_maml(spec: MethodSpec, ctx: RunContext) -> Method:
    return SRSMAMLMethod(ctx, spec.name, ctx.init, spec.modes, ctx.params)


def _maml_notebook(spec: MethodSpec, ctx: RunContext) -> Method:
    return MAMLMethod(ctx, spec.name, ctx.init, spec.modes, {**ctx.params, "engine": "notebook"})


def _gru4rec(spec: MethodSpec, ctx: RunContext) -> Method:
    return GRU4RecMethod(ctx, spec.name, spec.modes, ctx.params)


def _memory(method_class):
    """A factory for a non-neural baseline (baselines/memory.py): both modes, support weight chosen on val."""
    return lambda spec, ctx: method_class(ctx, spec.name, ctx.params)


def _sasrec(spec: MethodSpec, ctx: RunContext) -> Method:
    return SASRecMethod(ctx, spec.name, spec.modes, ctx.params, engine=get_engine("per-task"), to_tasks=tasks_from_episodes)


SUPPORT_NOTE = "; few-shot adds the K support pairs with a weight chosen on val"
METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in [
        _spec("random", lambda spec, ctx: RandomMethod(ctx), False, [ZERO_SHOT], {}, "uniformly random scores (floor)"),
        _spec("popularity", lambda spec, ctx: PopularityMethod(ctx), False, [ZERO_SHOT], {}, "train-split label counts"),
        _spec("gru4rec", _gru4rec, False, [ZERO_SHOT], {**GRU4REC_DEFAULTS, **TRAIN_USERS_DEFAULTS}, "global GRU4Rec, no adaptation"),
        _spec(
            "gru4rec-finetune",
            _gru4rec,
            False,
            [FEW_SHOT],
            {**GRU4REC_DEFAULTS, **TRAIN_USERS_DEFAULTS, **INNER_DEFAULTS},
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
            "srs-maml",
            _srs_maml,
            True,
            [ZERO_SHOT, FEW_SHOT],
            {**MAML_DEFAULTS, **SRS_DEFAULTS},
            "SRS-adaptive first-order MAML (seed notebooks 10/11): inner rate x task SRS, 3 steps if SRS >= 0.5 else 7, SRS-weighted outer loss",
            default_init="random",
            algorithm="maml",
            needs_srs=True,
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
        _spec(
            "recency",
            _memory(RecencyMethod),
            False,
            [ZERO_SHOT, FEW_SHOT],
            RECENCY_DEFAULTS,
            "the prefix's earlier courses, most recent first, then popularity (no parameter)" + SUPPORT_NOTE,
        ),
        _spec(
            "recency-markov",
            _memory(RecencyMarkovMethod),
            False,
            [ZERO_SHOT, FEW_SHOT],
            RECENCY_MARKOV_DEFAULTS,
            "recency plus Markov-1 transitions, their weight chosen on val" + SUPPORT_NOTE,
        ),
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


def check_run(method: str, init: str | None, params: dict, dataset) -> None:
    """Refuse, before any run starts, a run its dataset cannot serve: an init that cannot be built for
    it (a checkpoint's vocabulary), a method that needs session statistics the dataset lacks."""
    check_init(init, params, dataset)
    if get_method(method).needs_srs:
        dataset.require_srs(method)


def evaluate_method(method: Method, episodes: pd.DataFrame, mode: str) -> list[dict]:
    """Per-episode metrics (bench.core.metrics.evaluate_scores) of ``method``'s scores in ``mode``.

    One protocol for every method: each query's ranking leaves out the item in the episodes'
    ``query_excluded`` column (the dataset's ``excluded_from_ranking``; Dataset.episodes adds it);
    episodes without that column exclude nothing."""
    return evaluate_scores(method.score(episodes, mode), list(episodes["query_labels"]), episodes.get("query_excluded"))
