"""The MAML-family method: learn2learn's first-order MAML (or ANIL, Meta-SGD) around the GRURecommender.

One class serves every variant: the algorithm (meta/algorithms.py: ``maml``, ``anil``, ``metasgd``)
says what the inner loop adapts; the init (``random``: vanilla, ``gru4rec``: warm start,
``gru4rec-frozen-embed``, ``checkpoint``) picks the starting weights; ``meta_iterations=0`` gives
plain fine-tuning (``gru4rec-finetune``) or, scored zero-shot, the global GRU4Rec itself.

Meta-training: Adam on the meta parameters (those that require grad), gradient clipping, meta-batches
sampled from a generator seeded with the run's seed, dropout active. Validation every ``val_every``
iterations (and before the first, for the curve) by few-shot Acc@1 on val episodes; the best-by-val
meta-trained checkpoint is kept, as in the seed's protocol. With ``val_patience`` P (RecBole's
``stopping_step``), meta-training stops after P validations in a row without a new best val Acc@1;
unset (None or 0), it runs the whole ``meta_iterations`` budget. The initial weights are a candidate only
with ``select_init=True``: otherwise warm-start MAML could return GRU4Rec unchanged, and the row
would no longer measure meta-training. Scoring is deterministic (see meta/per_task.py).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from baselines.gru4rec import GRU4REC_DEFAULTS, load_or_train_gru4rec, no_report, seeded_rng
from baselines.model import GRURecommender, mask_padding
from baselines.simple import CHUNK, check_mode
from bench.core.metrics import evaluate_scores
from meta.algorithms import check_engine, wrap
from meta.engines import get_engine
from meta.inits import build_init, get_init
from meta.tasks import TaskPlan, plan_keyword, tasks_from_episodes

INNER_DEFAULTS: dict = {"inner_lr": 0.01, "inner_steps": 5, "engine": "per-task"}
MAML_DEFAULTS: dict = {
    **GRU4REC_DEFAULTS,  # the architecture (and, for the gru4rec inits, how its weights were trained)
    **INNER_DEFAULTS,
    "meta_batch": 32,
    "outer_lr": 1e-3,
    "meta_iterations": 3000,
    "val_every": 100,
    "val_episodes": None,  # cap on val episodes used for validation; None or 0: all
    "grad_clip": 10.0,
    "select_init": False,  # may best-by-val return the un-meta-trained initial weights?
    # validations without a new best val Acc@1 before meta-training stops; None or 0: the whole budget.
    # Not "patience": that name is already GRU4Rec's (epochs without a better val loss), which these
    # methods carry from GRU4REC_DEFAULTS for the warm start's weights
    "val_patience": None,
}

STOPPED_BY_PATIENCE, STOPPED_BY_BUDGET = "patience", "budget"  # fit info "stopped": why meta-training ended


class ValPatience:
    """The early-stopping rule on val Acc@1: ``update(acc)`` after each validation says whether it is a
    new best and whether training stops (``patience`` validations in a row without a new best; never
    with patience None or 0). ``best`` starts at the initial validation's Acc@1 with ``select_init``,
    else at -inf (the first validation after training is always a new best)."""

    def __init__(self, patience: int | None, best: float = float("-inf")):
        self.patience, self.best, self.stale = int(patience or 0), best, 0

    def update(self, acc: float) -> tuple[bool, bool]:
        """(new best, stop now) after a validation scoring ``acc``."""
        improved = acc > self.best
        self.best, self.stale = (acc, 0) if improved else (self.best, self.stale + 1)
        return improved, self.patience > 0 and self.stale >= self.patience


def stop_iteration(curve: list[tuple[int, float]], patience: int | None, select_init: bool = False) -> int | None:
    """The iteration at which a run with ``val_patience`` = ``patience`` stops, read from a measured
    validation curve [(iteration, val Acc@1)], the initial validation (iteration 0) first, of a run
    that is the same up to there (same seed and params; its budget and patience may differ); None when
    it does not stop within the curve."""
    if not curve:
        return None
    rule = ValPatience(patience, curve[0][1] if select_init else float("-inf"))
    for iteration, acc in curve[1:]:
        if rule.update(acc)[1]:
            return iteration
    return None


def mean_acc1(score_chunks, episodes: pd.DataFrame) -> float:
    rows = evaluate_scores(score_chunks, list(episodes["query_labels"]), episodes.get("query_excluded"))  # the one protocol, as on test
    return float(np.mean([row["acc@1"] for row in rows]))


class MAMLMethod:
    """fit(ctx) builds the init, meta-trains it (if ``meta_iterations`` > 0); score() adapts and scores."""

    def __init__(self, ctx, name: str, init: str, modes: tuple[str, ...], params: dict, algorithm: str = "maml"):
        self.name, self.init, self.modes, self.algorithm = name, init, modes, algorithm
        self.params = params
        self.seed = ctx.seed
        self.device = torch.device(ctx.device)
        engine = params.get("engine", "per-task")
        check_engine(algorithm, engine)
        self.engine = get_engine(engine)
        self.maml = None

    def build_model(self, ctx) -> GRURecommender:
        return build_init(self.init, ctx)

    def fit(self, ctx) -> dict:
        ctx = dataclasses.replace(ctx, params=self.params, init=self.init)  # the resolved ones, whatever ctx says
        p = self.params
        start = time.perf_counter()
        model = self.build_model(ctx)
        init_seconds = time.perf_counter() - start
        self.maml = wrap(self.algorithm, model, float(p["inner_lr"]), get_init(self.init).frozen_embedding)
        info = {"curve": [], "init_seconds": init_seconds, "train_seconds": 0.0}
        if int(p.get("meta_iterations", 0)) > 0:
            info.update(self.meta_train(ctx))
        info["train_seconds"] = time.perf_counter() - start
        return info

    def meta_train(self, ctx) -> dict:
        p, maml, engine = self.params, self.maml, self.engine
        train = ctx.dataset.episodes("train", ctx.K, ctx.Q)
        val = ctx.dataset.episodes("val", ctx.K, ctx.Q, ctx.population_K)
        if p["val_episodes"]:  # None or 0: all
            val = val.iloc[: int(p["val_episodes"])]
        trainable = [param for param in maml.parameters() if param.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=float(p["outer_lr"]))
        rng = np.random.default_rng(self.seed)
        iterations, inner_steps = int(p["meta_iterations"]), int(p["inner_steps"])
        meta_batch = min(int(p["meta_batch"]), len(train))

        val_seconds = 0.0

        def validate() -> float:
            nonlocal val_seconds
            val_start = time.perf_counter()
            acc = mean_acc1(self.score(val, "few-shot", check=False), val)
            val_seconds += time.perf_counter() - val_start
            return acc

        train_start = time.perf_counter()
        initial_acc = validate()
        rule = ValPatience(p.get("val_patience"), initial_acc if p["select_init"] else float("-inf"))
        best_iteration = 0 if p["select_init"] else None
        best_state = copy.deepcopy(maml.state_dict())
        curve = [{"iteration": 0, "train_loss": None, "val_acc@1": initial_acc}]
        losses: list[float] = []
        stopped, trained = STOPPED_BY_BUDGET, iterations
        maml.train()
        with seeded_rng(self.seed, self.device):  # dropout draws
            for iteration in range(1, iterations + 1):
                batch = train.iloc[rng.choice(len(train), size=meta_batch, replace=False)]
                tasks = tasks_from_episodes(batch, self.device)
                optimizer.zero_grad()
                losses.append(engine.meta_gradient(maml, tasks, inner_steps, **plan_keyword(self.plan(batch, "few-shot"))))
                torch.nn.utils.clip_grad_norm_(trainable, float(p["grad_clip"]))
                optimizer.step()
                ctx.progress("meta-train", iteration, iterations)
                if iteration % int(p["val_every"]) == 0 or iteration == iterations:
                    acc = validate()
                    curve.append({"iteration": iteration, "train_loss": float(np.mean(losses)), "val_acc@1": acc})
                    losses = []
                    improved, stop = rule.update(acc)
                    if improved:
                        best_iteration = iteration
                        best_state = copy.deepcopy(maml.state_dict())
                    ctx.report(iteration, rule.best)  # what the kept weights score on val so far
                    if stop:
                        stopped, trained = STOPPED_BY_PATIENCE, iteration
                        break
        meta_seconds = time.perf_counter() - train_start
        maml.load_state_dict(best_state)  # the wrapper's state: Meta-SGD's inner rates too
        info = {
            "curve": curve,
            "best_iteration": best_iteration,
            # best-by-val is the last validation and the budget, not patience, ended training
            "still_improving": best_iteration == curve[-1]["iteration"] and stopped == STOPPED_BY_BUDGET,
            "best_val_acc@1": rule.best,
            "stopped": stopped,
            "stopped_at": trained,  # the last meta-iteration trained
            "meta_seconds": meta_seconds,
            "val_seconds": val_seconds,
            "seconds_per_iteration": (meta_seconds - val_seconds) / trained,
            "n_train_episodes": len(train),
            "n_val_episodes": len(val),
        }
        if hasattr(maml, "lrs"):  # Meta-SGD: what its learned inner rates became
            rates = torch.cat([rate.detach().flatten() for rate in maml.lrs])
            info["inner_rates"] = {"mean": float(rates.mean()), "min": float(rates.min()), "max": float(rates.max())}
        return info

    def plan(self, episodes: pd.DataFrame, mode: str) -> TaskPlan | None:
        """Per-task inner rates, step counts and loss weights for these episodes (meta/tasks.py
        TaskPlan); None: every task at the run's inner rate and steps (MAML; SRS-adaptive MAML overrides)."""
        return None

    def score(self, episodes: pd.DataFrame, mode: str, check: bool = True) -> Iterator[torch.Tensor]:
        """Scores [n, Q, n_items + 1] per chunk of episodes; few-shot adapts on each support set first."""
        if check:
            check_mode(mode, self.modes, self.name)
        if self.maml is None:
            raise RuntimeError(f"{self.name} scored before fit()")
        inner_steps = int(self.params["inner_steps"]) if mode == "few-shot" else 0
        for start in range(0, len(episodes), CHUNK):
            chunk = episodes.iloc[start : start + CHUNK]
            tasks = tasks_from_episodes(chunk, self.device)
            yield mask_padding(self.engine.query_scores(self.maml, tasks, inner_steps, **plan_keyword(self.plan(chunk, mode)))).cpu()


class GRU4RecMethod(MAMLMethod):
    """The global GRU4Rec (zero-shot) or GRU4Rec fine-tuned on each support set (few-shot), no
    meta-training: the same model and adaptation code as MAML with ``meta_iterations=0``."""

    def __init__(self, ctx, name: str, modes: tuple[str, ...], params: dict):
        super().__init__(ctx, name, "gru4rec", modes, {**INNER_DEFAULTS, **params, "meta_iterations": 0})
        self.gru4rec_info: dict = {}

    def build_model(self, ctx) -> GRURecommender:
        own = "few-shot" not in self.modes  # the gru4rec cell tunes the model itself; gru4rec-finetune its inner loop
        model, self.gru4rec_info = load_or_train_gru4rec(ctx, ctx.report if own else no_report)
        return model

    def fit(self, ctx) -> dict:
        info = super().fit(ctx)
        return {**info, "curve": self.gru4rec_info["curve"], "gru4rec": self.gru4rec_info}
