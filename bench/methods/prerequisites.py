"""Prerequisites: the shared trained weights some runs start from (GRU4Rec, SASRec).

Which runs need which weights, under which cache key, and how to build them; the Ray executor
trains each as a task of its own, and the statistics pair the seeds of two runs that start from
the very same GRU4Rec weights. Configs are read by attribute (``method``, ``init``, ``seed``,
``dataset_hash``, ``params_dict``) or, for stored runs, as run.json's ``config`` dict.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

# Methods whose runs are, or fine-tune, the GRU4Rec of their seed; inits are read from meta/inits.py.
GRU4REC_METHODS = frozenset({"gru4rec", "gru4rec-finetune"})


def uses_gru4rec(method: str | None, init: str | None) -> bool:
    """Whether a run of ``method`` from ``init`` is, fine-tunes or starts from its seed's trained GRU4Rec
    (the statistics pair seeds on it; the Ray executor trains it first, as a prerequisite task)."""
    from baselines.gru4rec import pretrained_gru4rec
    from meta.inits import INITS

    return method in GRU4REC_METHODS or (init in INITS and INITS[init].build is pretrained_gru4rec)


def shared_prerequisite(config: dict) -> str | None:
    """The GRU4Rec weights a run starts from, as (dataset version, GRU4Rec params, seed), or None.

    Two runs with the same key used the very same trained GRU4Rec, so their seeds are paired."""
    from baselines.gru4rec import gru4rec_params

    if not uses_gru4rec(config.get("method"), config.get("init")):
        return None
    params = gru4rec_params(config.get("params") or {})
    return json.dumps([config.get("dataset_hash"), params, config.get("seed")], sort_keys=True, default=str)


@dataclass(frozen=True)
class Prerequisite:
    """Shared weights some runs start from: which runs need them, their cache key, how to build them."""

    needs: Callable[[object], bool]
    key: Callable[[object], str]
    build: Callable[[object], object]  # build(ctx): trains into ctx.cache_dir, or finds it there


def _gru4rec_key(config: object) -> str:
    from baselines.gru4rec import cache_key

    return "gru4rec/" + cache_key(config.dataset_hash, config.params_dict, config.seed)


def _gru4rec_build(ctx) -> None:
    from baselines.gru4rec import load_or_train_gru4rec

    load_or_train_gru4rec(ctx)


def _sasrec_key(config: object) -> str:
    from baselines.gru4rec import cache_key
    from baselines.sasrec import sasrec_params

    return "sasrec/" + cache_key(config.dataset_hash, config.params_dict, config.seed, select=sasrec_params)


def _sasrec_build(ctx) -> None:
    from baselines.sasrec import load_or_train_sasrec

    load_or_train_sasrec(ctx)


PREREQUISITES: dict[str, Prerequisite] = {
    "gru4rec": Prerequisite(
        needs=lambda config: uses_gru4rec(config.method, config.init),
        key=_gru4rec_key,
        build=_gru4rec_build,
    ),
    "sasrec": Prerequisite(
        needs=lambda config: config.method in {"sasrec", "sasrec-finetune"},
        key=_sasrec_key,
        build=_sasrec_build,
    ),
}


def prerequisites_of(config: object) -> list[tuple[str, str]]:
    """(prerequisite name, cache key) pairs this run needs before it can start."""
    return [
        (name, prereq.key(config))
        for name, prereq in PREREQUISITES.items()
        if prereq.needs(config)
    ]
