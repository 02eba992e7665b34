"""Prerequisites: the shared trained weights some runs start from (GRU4Rec, SASRec).

Which runs need which weights, under which cache key, and how to build them; the Ray executor
trains each as a task of its own, and the statistics pair the seeds of two runs that start from
the very same GRU4Rec weights. Configs are read by attribute (``method``, ``init``, ``seed``,
``dataset_hash``, ``params_dict``, ``K``, ``Q``) or, for stored runs, as run.json's ``config`` dict.

The GRU4Rec a run is or starts from is trained with the run's params and its init's pre-training
params (meta.inits.pretraining_params: ``gru4rec-episode-users`` sets ``train_users``); with
``train_users = "episode-users"`` its weights also depend on K+Q (baselines.gru4rec.train_selection).
``training_budget`` says how many pairs a run's gradient steps saw, pre-training included.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass


def pretrained_model(method: str | None, init: str | None) -> str | None:
    """The prerequisite (a ``PREREQUISITES`` name) a run of ``method`` from ``init`` is, fine-tunes or
    starts from, as its MethodSpec (``pretrains``) and init say; None for none."""
    from bench.methods import registry  # the registry imports torch and learn2learn: only when asked

    return registry.pretrained_model(method, init)


def uses_gru4rec(method: str | None, init: str | None) -> bool:
    """Whether a run of ``method`` from ``init`` is, fine-tunes or starts from its seed's trained GRU4Rec
    (the statistics pair seeds on it; the Ray executor trains it first, as a prerequisite task)."""
    return pretrained_model(method, init) == "gru4rec"


def gru4rec_training(init: str | None, params: dict, K, Q) -> tuple[dict, dict | None]:
    """(params, train-pair selection) of the GRU4Rec a run with ``init`` and ``params`` at (K, Q) is or
    starts from: the init's pre-training params applied (meta.inits.pretraining_params), and
    baselines.gru4rec.train_selection (None: every train pair)."""
    from baselines.gru4rec import train_selection
    from meta.inits import pretraining_params

    params = pretraining_params(init, params)
    return params, train_selection(params, K, Q)


def shared_prerequisite(config: dict) -> str | None:
    """The GRU4Rec weights a run starts from, as (dataset version, GRU4Rec params, seed[, train-pair
    selection]), or None.

    Two runs with the same key used the very same trained GRU4Rec, so their seeds are paired: a
    GRU4Rec trained on the episode users only (train_users) shares weights only with runs trained so."""
    from baselines.gru4rec import gru4rec_params

    if not uses_gru4rec(config.get("method"), config.get("init")):
        return None
    params, selection = gru4rec_training(config.get("init"), config.get("params") or {}, config.get("K"), config.get("Q"))
    key = [config.get("dataset_hash"), gru4rec_params(params), config.get("seed")] + ([selection] if selection else [])
    return json.dumps(key, sort_keys=True, default=str)


@dataclass(frozen=True)
class Prerequisite:
    """Shared weights some runs start from (the runs whose ``pretrained_model`` names them): their
    cache key and how to build them."""

    key: Callable[[object], str]
    build: Callable[[object], object]  # build(ctx): trains into ctx.cache_dir, or finds it there


def _gru4rec_key(config: object) -> str:
    from baselines.gru4rec import cache_key

    params, selection = gru4rec_training(config.init, config.params_dict, config.K, config.Q)
    return "gru4rec/" + cache_key(config.dataset_hash, params, config.seed, selection=selection)


def _gru4rec_build(ctx) -> None:
    import dataclasses

    from baselines.gru4rec import load_or_train_gru4rec
    from meta.inits import pretraining_params

    load_or_train_gru4rec(dataclasses.replace(ctx, params=pretraining_params(ctx.init, ctx.params)))


def _sasrec_key(config: object) -> str:
    from baselines.gru4rec import cache_key
    from baselines.sasrec import sasrec_params

    return "sasrec/" + cache_key(config.dataset_hash, config.params_dict, config.seed, select=sasrec_params)


def _sasrec_build(ctx) -> None:
    from baselines.sasrec import load_or_train_sasrec

    load_or_train_sasrec(ctx)


PREREQUISITES: dict[str, Prerequisite] = {
    "gru4rec": Prerequisite(key=_gru4rec_key, build=_gru4rec_build),
    "sasrec": Prerequisite(key=_sasrec_key, build=_sasrec_build),
}


def prerequisites_of(config: object) -> list[tuple[str, str]]:
    """(prerequisite name, cache key) pairs this run needs before it can start."""
    name = pretrained_model(config.method, config.init)
    return [] if name is None else [(name, PREREQUISITES[name].key(config))]


# ----------------------------------------------------------------------------------------------
# Training budget: pairs seen by gradient steps, pre-training included


def pretraining_summary(info: dict, model: str) -> dict:
    """What a run's record says of the GRU4Rec/SASRec training it is or starts from (its cached info)."""
    epochs = int(info.get("epochs_trained", len(info.get("curve", []))))
    pairs = int(info.get("n_train_pairs", 0))
    return {
        "model": model,
        "train_users": info.get("train_users", "all"),
        "n_train_pairs": pairs,
        "n_train_users": info.get("n_train_users"),
        "best_epoch": info.get("best_epoch"),
        "epochs_trained": epochs,
        "stopped": info.get("stopped"),
        "still_improving": info.get("still_improving"),
        "budget_pairs": int(info.get("budget_pairs", epochs * pairs)),
    }


def training_budget(method: str, ctx, fit: dict) -> dict:
    """Fit-info keys every run records: the pairs its gradient steps saw, pre-training included.

    ``budget_pairs_pretraining``: GRU4Rec/SASRec epochs trained x train pairs, for the runs that are,
    fine-tune or start from them (0 for a random init or a method without gradient training; None
    for a checkpoint init: not trained here, unknown). ``budget_pairs_meta``: meta-iterations x
    meta-batch x (K+Q), the iterations trained (``stopped_at``) where patience stopped it.
    ``budget_pairs``: their sum (None when a part is unknown). ``pretraining``: the pre-training's
    summary (``pretraining_summary``) or None. ``still_improving``: the flag of the run's last training
    stage (meta-training where it ran, its own if the method recorded one; else the pre-training's;
    None without training). ``ctx``: the run's RunContext, params resolved."""
    from baselines.gru4rec import cached_info, gru4rec_folder

    init = ctx.init
    pretraining = None
    if isinstance(fit.get("gru4rec"), dict):
        pretraining = pretraining_summary(fit["gru4rec"], "gru4rec")
    elif isinstance(fit.get("sasrec"), dict):
        pretraining = pretraining_summary(fit["sasrec"], "sasrec")
    elif uses_gru4rec(method, init):
        import dataclasses

        params, _ = gru4rec_training(init, ctx.params, ctx.K, ctx.Q)
        info = cached_info(gru4rec_folder(dataclasses.replace(ctx, params=params)))
        pretraining = pretraining_summary(info, "gru4rec") if info is not None else None
    if pretraining is not None:
        pre_pairs = pretraining["budget_pairs"]
    elif init not in (None, "random"):
        pre_pairs = None  # trained elsewhere (a checkpoint file), or its cached info is missing
    else:
        pre_pairs = 0
    meta_pairs = 0
    if "n_train_episodes" in fit and int(ctx.params.get("meta_iterations", 0)) > 0:
        meta_batch = min(int(ctx.params["meta_batch"]), int(fit["n_train_episodes"]))
        iterations = int(fit.get("stopped_at", ctx.params["meta_iterations"]))  # val_patience may have stopped it sooner
        meta_pairs = iterations * meta_batch * (int(ctx.K) + int(ctx.Q))
    still_improving = fit.get("still_improving") if meta_pairs else (pretraining or {}).get("still_improving")
    return {
        "budget_pairs": None if pre_pairs is None else pre_pairs + meta_pairs,
        "budget_pairs_pretraining": pre_pairs,
        "budget_pairs_meta": meta_pairs,
        "pretraining": pretraining,
        "still_improving": still_improving,
    }
