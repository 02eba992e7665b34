"""Methods registry: every recommender the suite compares, by name.

Each method produces, for every query prefix of an episode, scores over the whole catalogue;
``evaluate_method`` hands them to the single evaluator (bench/core/metrics.py). Adding a method is one
entry in ``METHODS``: its ``MethodSpec`` holds everything the suite knows about it (modes, params,
init, algorithm, the pre-trained weights it starts from, its training budget, its search space or why
it has none, its warm source); the other modules ask the spec, none keeps a list of method names.
Params are the method's ``defaults`` overridden by the grid; each param's type and valid range is
declared once in ``PARAMS``; an unknown param or init, or a value out of its declared range, is
refused with what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch

from baselines.gru4rec import GRU4REC_DEFAULTS, REPEAT_DEFAULTS, TRAIN_USERS, TRAIN_USERS_DEFAULTS, no_progress, no_report, pretrained_gru4rec
from baselines.knn import POSITION_WEIGHTS, SCORE_DECAYS, SIMILARITIES, SKNN_DEFAULTS, VSKNN_DEFAULTS, SessionKNNMethod
from baselines.recency import RECENCY_DEFAULTS, RECENCY_MARKOV_DEFAULTS, RecencyMarkovMethod, RecencyMethod
from baselines.rules import MARKOV_DEFAULTS, SR_DEFAULTS, MarkovMethod, SequentialRulesMethod
from baselines.sasrec import SASREC_DEFAULTS, SASRecMethod
from baselines.simple import PopularityMethod, RandomMethod
from bench.core.errors import BenchError
from bench.core.metrics import episode_metrics, evaluate_ranks
from bench.core.params import Param, Space
from meta.algorithms import check_engine
from meta.engines import ENGINES, get_engine
from meta.inits import INIT_PARAMS, INITS, PRETRAIN_KEYS, check_init, resolve_init_params
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
    "repeat": Param.bool(),  # the repeat/explore head (baselines/model.py RepeatHead): gru4rec-repeat
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
    "val_patience": Param.int(ge=0, optional=True),  # validations without a new best val Acc@1 before stopping; None or 0: no stop
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
    # a warm start's pre-training entries (meta/inits.py PRETRAIN_KEYS): the lr and dropout its GRU4Rec is trained with
    "init_lr": Param.float(gt=0),
    "init_dropout": Param.float(ge=0, lt=1),
    # SASRec (baselines/sasrec.py)
    "n_blocks": Param.int(ge=1),
    "n_heads": Param.int(ge=1),
}


# Search spaces for `python -m bench tune` (bench/run/tune.py), shared by the specs that declare them
# (``MethodSpec.space``; each value parses by PARAMS, tests/test_tune.py checks). Budgets (max_epochs,
# meta_iterations) are not tuned: every trial has the grid's. A cell's own params and sweep keys stay
# fixed (they define the cell).
MAML_SPACE = {"inner_lr": Space.float(1e-3, 1e-1, log=True), "outer_lr": Space.float(1e-4, 1e-2, log=True), "inner_steps": Space.int(1, 10)}
TRAINED_SPACE = {"lr": Space.float(1e-4, 1e-2, log=True), "dropout": Space.float(0.0, 0.5)}  # early stopping (patience) within max_epochs
FINETUNE_SPACE = {"inner_lr": Space.float(1e-3, 1e-1, log=True), "inner_steps": Space.int(1, 10)}
KNN_SPACE = {"k": Space.int(10, 500, log=True), "sample_size": Space.int(100, 5000, log=True), "similarity": Space.choice(*SIMILARITIES)}

# A method's training budget (``MethodSpec.budget``), how bench/run/projection.py scales its cost.
EPOCHS = "epochs"  # max_epochs; its curve has one row per epoch
META_ITERATIONS = "meta-iterations"  # meta_iterations, validated every val_every (val_patience may stop it sooner)

# The shared pre-trained weights a run may be, fine-tune or start from (``MethodSpec.pretrains``;
# bench/methods/prerequisites.py trains and caches each): their names there.
GRU4REC, SASREC = "gru4rec", "sasrec"


def param_spec(method: str, key: str) -> Param:
    """The declared type and range of ``method``'s param ``key`` (``PARAMS``)."""
    if key not in PARAMS:
        raise BenchError(
            f"method {method!r} has param {key!r} without a declared type and range",
            f"add a line to PARAMS in bench/methods/registry.py, e.g. {key!r}: Param.int(ge=1),",
        )
    return PARAMS[key]


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


@dataclass(frozen=True, kw_only=True)
class MethodSpec:
    """Everything the suite knows about one method: how to build it, its modes and params, and what the
    planner, the prerequisites, tuning and the projection ask of it. One entry in ``METHODS``."""

    name: str
    factory: Callable[[MethodSpec, RunContext], Method]  # (spec, ctx with params resolved and init checked) -> method
    modes: tuple[str, ...]
    defaults: dict  # its params and their defaults (an init's own params are added where it takes an init)
    description: str
    uses_init: bool = False
    default_init: str | None = None
    algorithm: str | None = None  # MAML-family: meta/algorithms.py's entry; its engines are checked
    needs_srs: bool = False  # needs the dataset's session statistics (refused before any run without them)
    pretrains: str | None = None  # GRU4REC/SASREC: the shared pre-trained weights its runs are or fine-tune
    budget: str | None = None  # EPOCHS or META_ITERATIONS: what scales its cost (None: no training budget)
    space: dict[str, Space] = field(default_factory=dict)  # the params `bench tune` searches, and their ranges
    not_tuned: str = ""  # why it has no search space (every method has a space or this)
    warm_source: str | None = None  # the method whose tuned best params its pre-trained model takes

    def __post_init__(self):
        object.__setattr__(self, "modes", tuple(self.modes))
        if self.uses_init:  # an init's own params (init_checkpoint) are params of every method that takes an init
            object.__setattr__(self, "defaults", {**self.defaults, **INIT_PARAMS})

    def build(self, ctx: RunContext) -> Method:
        """The method, built with ctx's params resolved and its init checked (``prepare``)."""
        return self.factory(self, self.prepare(ctx))

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
        if self.uses_init and INITS[init].pretraining.get("repeat") and (self.algorithm is None or params.get("engine") == "notebook"):
            raise BenchError(
                f"{self.name} from init {init!r}: the notebook engine runs its own forward, without the repeat head",
                "use maml (or anil, metasgd, srs-maml) with engine batched or per-task for a repeat-aware init",
            )
        return resolve_init_params(init, params) if self.uses_init else params

    def prepare(self, ctx: RunContext) -> RunContext:
        """ctx with params resolved against the defaults and the init checked (what a run records)."""
        init = self.resolve_init(ctx.init)
        return dataclasses.replace(ctx, params=self.run_params(init, self.resolve_params(ctx.params)), init=init)


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
BOTH = (ZERO_SHOT, FEW_SHOT)
METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in [
        MethodSpec(
            name="random",
            factory=lambda spec, ctx: RandomMethod(ctx, spec.name),
            modes=(ZERO_SHOT,),
            defaults={},
            description="uniformly random scores (floor)",
            not_tuned="no parameter",
        ),
        MethodSpec(
            name="popularity",
            factory=lambda spec, ctx: PopularityMethod(ctx, spec.name),
            modes=(ZERO_SHOT,),
            defaults={},
            description="train-split label counts",
            not_tuned="no parameter",
        ),
        MethodSpec(
            name="gru4rec",
            factory=_gru4rec,
            modes=(ZERO_SHOT,),
            defaults={**GRU4REC_DEFAULTS, **TRAIN_USERS_DEFAULTS},
            description="global GRU4Rec, no adaptation",
            pretrains=GRU4REC,
            budget=EPOCHS,
            space=TRAINED_SPACE,
        ),
        MethodSpec(
            name="gru4rec-repeat",
            factory=_gru4rec,
            modes=(ZERO_SHOT,),
            defaults={**GRU4REC_DEFAULTS, **TRAIN_USERS_DEFAULTS, **REPEAT_DEFAULTS},
            description="repeat-aware GRU4Rec (RepeatNet's repeat/explore head on the last state), no adaptation",
            pretrains=GRU4REC,  # the weights the gru4rec-repeat init starts from (repeat in the cache key)
            budget=EPOCHS,
            space=TRAINED_SPACE,
        ),
        MethodSpec(
            name="gru4rec-finetune",
            factory=_gru4rec,
            modes=(FEW_SHOT,),
            defaults={**GRU4REC_DEFAULTS, **TRAIN_USERS_DEFAULTS, **INNER_DEFAULTS},
            description="GRU4Rec fine-tuned on the K support pairs with MAML's inner loop, no meta-training",
            pretrains=GRU4REC,
            space=FINETUNE_SPACE,
            warm_source="gru4rec",  # its GRU4Rec: the tuned gru4rec cell's best
        ),
        MethodSpec(
            name="maml",
            factory=_meta,
            modes=BOTH,
            defaults=MAML_DEFAULTS,
            description="first-order MAML (learn2learn) from the chosen init: random = vanilla, gru4rec = warm start",
            uses_init=True,
            default_init="random",
            algorithm="maml",
            budget=META_ITERATIONS,
            space=MAML_SPACE,
        ),
        MethodSpec(
            name="anil",
            factory=_meta,
            modes=BOTH,
            defaults=MAML_DEFAULTS,
            description="ANIL (learn2learn MAML around the output layer only; embedding and GRU meta-trained by the outer loop)",
            uses_init=True,
            default_init="random",
            algorithm="anil",
            budget=META_ITERATIONS,
            space=MAML_SPACE,
        ),
        MethodSpec(
            name="metasgd",
            factory=_meta,
            modes=BOTH,
            defaults=MAML_DEFAULTS,
            description="first-order Meta-SGD (learn2learn): per-parameter inner rates from inner_lr, learned by the outer loop",
            uses_init=True,
            default_init="random",
            algorithm="metasgd",
            budget=META_ITERATIONS,
            space=MAML_SPACE,
        ),
        MethodSpec(
            name="srs-maml",
            factory=_srs_maml,
            modes=BOTH,
            defaults={**MAML_DEFAULTS, **SRS_DEFAULTS},
            description=(
                "SRS-adaptive first-order MAML (seed notebooks 10/11): inner rate x task SRS, 3 steps if SRS >= 0.5 else 7, SRS-weighted outer loss"
            ),
            uses_init=True,
            default_init="random",
            algorithm="maml",
            needs_srs=True,
            budget=META_ITERATIONS,
            space={key: MAML_SPACE[key] for key in ("inner_lr", "outer_lr")},  # its steps are SRS's
        ),
        MethodSpec(
            name="maml-notebook",
            factory=_maml_notebook,
            modes=BOTH,
            defaults={key: value for key, value in MAML_DEFAULTS.items() if key != "engine"},
            description="reproduction of notebook 08's defective MAML (engine 'notebook'); not a recommended method",
            uses_init=True,
            default_init="gru4rec",
            budget=META_ITERATIONS,
            not_tuned="a reproduction of notebook 08's settings, not a recommended method",
        ),
        MethodSpec(
            name="markov",
            factory=_memory(MarkovMethod),
            modes=BOTH,
            defaults=MARKOV_DEFAULTS,
            description="first-order transition counts" + SUPPORT_NOTE,
            not_tuned="its support weight is already chosen on val",
        ),
        MethodSpec(
            name="sr",
            factory=_memory(SequentialRulesMethod),
            modes=BOTH,
            defaults=SR_DEFAULTS,
            description="sequential rules (session-rec)" + SUPPORT_NOTE,
            space={"steps": Space.int(1, 20), "pruning": Space.int(0, 50)},
        ),
        MethodSpec(
            name="sknn",
            factory=_memory(SessionKNNMethod),
            modes=BOTH,
            defaults=SKNN_DEFAULTS,
            description="session-based kNN (session-rec)" + SUPPORT_NOTE,
            space=KNN_SPACE,
        ),
        MethodSpec(
            name="vsknn",
            factory=_memory(SessionKNNMethod),
            modes=BOTH,
            defaults=VSKNN_DEFAULTS,
            description="position-weighted session kNN (session-rec)" + SUPPORT_NOTE,
            space=KNN_SPACE,
        ),
        MethodSpec(
            name="recency",
            factory=_memory(RecencyMethod),
            modes=BOTH,
            defaults=RECENCY_DEFAULTS,
            description="the prefix's earlier courses, most recent first, then popularity (no parameter)" + SUPPORT_NOTE,
            not_tuned="no parameter (its support weight is already chosen on val)",
        ),
        MethodSpec(
            name="recency-markov",
            factory=_memory(RecencyMarkovMethod),
            modes=BOTH,
            defaults=RECENCY_MARKOV_DEFAULTS,
            description="recency plus Markov-1 transitions, their weight chosen on val" + SUPPORT_NOTE,
            not_tuned="its Markov and support weights are already chosen on val",
        ),
        MethodSpec(
            name="sasrec",
            factory=_sasrec,
            modes=(ZERO_SHOT,),
            defaults=SASREC_DEFAULTS,
            description="global SASRec (causal self-attention), no adaptation",
            pretrains=SASREC,
            budget=EPOCHS,
            space=TRAINED_SPACE,
        ),
        MethodSpec(
            name="sasrec-finetune",
            factory=_sasrec,
            modes=(FEW_SHOT,),
            defaults={**SASREC_DEFAULTS, **{key: INNER_DEFAULTS[key] for key in ("inner_lr", "inner_steps")}},
            description="SASRec fine-tuned on the K support pairs with gru4rec-finetune's inner loop (per-task engine)",
            pretrains=SASREC,
            space=FINETUNE_SPACE,
            warm_source="sasrec",  # its SASRec: the tuned sasrec cell's best
        ),
    ]
}


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise BenchError(f"unknown method {name!r}", f"choose one of {', '.join(METHODS)}")
    return METHODS[name]


def pretrained_model(method: str | None, init: str | None) -> str | None:
    """The shared pre-trained weights (GRU4REC, SASREC) a run of ``method`` from ``init`` is, fine-tunes or
    starts from: the method's ``pretrains``, else GRU4REC for an init built from the trained GRU4Rec;
    None for neither (or a method no longer registered, as an old stored run may name)."""
    spec = METHODS.get(method)
    if spec is not None and spec.pretrains is not None:
        return spec.pretrains
    return GRU4REC if init in INITS and INITS[init].build is pretrained_gru4rec else None


def warm_source(method: str, init: str | None) -> str | None:
    """The method whose tuned best params the pre-trained model of a run of ``method`` from ``init`` takes
    (bench/run/tune.py): the spec's ``warm_source``; for an init built from the trained GRU4Rec, gru4rec.
    None for a method that trains its model itself (gru4rec, sasrec) or starts from none."""
    spec = get_method(method)
    if spec.pretrains is not None:
        return spec.warm_source
    return INITS[init].warm_source if pretrained_model(method, init) == GRU4REC else None


def warm_keys(method: str, init: str | None, source_keys) -> dict[str, str]:
    """Own param -> the source cell's param it takes from the tuned source (``warm_source``;
    bench/run/tune.py), of ``source_keys``: a method that is or fine-tunes the pre-trained model takes them
    under their names; a warm start from an init takes them into the init's pre-training entries
    (meta.inits.PRETRAIN_KEYS: init_lr <- lr, init_dropout <- dropout), never into its own params."""
    if get_method(method).pretrains is not None:
        return {key: key for key in source_keys}
    entries = INITS[init].params if init in INITS else {}
    return {own: source for own, source in PRETRAIN_KEYS.items() if own in entries and source in source_keys}


def check_run(method: str, init: str | None, params: dict, dataset) -> None:
    """Refuse, before any run starts, a run its dataset cannot serve: an init that cannot be built for
    it (a checkpoint's vocabulary), a method that needs session statistics the dataset lacks."""
    check_init(init, params, dataset)
    if get_method(method).needs_srs:
        dataset.require_srs(method)


def method_ranks(method: Method, episodes: pd.DataFrame, mode: str) -> list:
    """Per episode, the rank of each query (bench.core.metrics.evaluate_ranks) under ``method``'s scores in ``mode``.

    One protocol for every method: each query's ranking leaves out the item in the episodes'
    ``query_excluded`` column (the dataset's ``excluded_from_ranking``; Dataset.episodes adds it);
    episodes without that column exclude nothing."""
    return evaluate_ranks(method.score(episodes, mode), list(episodes["query_labels"]), episodes.get("query_excluded"))


def evaluate_method(method: Method, episodes: pd.DataFrame, mode: str) -> list[dict]:
    """Per-episode metrics (bench.core.metrics.episode_metrics) of ``method_ranks``'s ranks."""
    return [episode_metrics(ranks) for ranks in method_ranks(method, episodes, mode)]
