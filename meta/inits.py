"""Initialisations registry: where a MAML-family model's starting weights come from.

Adding an init is one entry in ``INITS``. Every init builds the same architecture (the GRU4Rec
params ``embed_dim``, ``hidden_dim``, ``n_layers``, ``dropout``), so inits are comparable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from baselines.gru4rec import model_config, pretrained_gru4rec, seeded_rng
from baselines.model import GRURecommender
from bench.errors import BenchError


@dataclass(frozen=True)
class InitSpec:
    name: str
    build: Callable[..., GRURecommender]  # build(ctx) -> GRURecommender on ctx.device
    frozen_embedding: bool = False  # embedding.weight.requires_grad=False: untouched by both loops
    description: str = ""


def random_init(ctx) -> GRURecommender:
    """PyTorch's default initialisation, drawn from ``ctx.seed``."""
    with seeded_rng(ctx.seed):
        model = GRURecommender(model_config(ctx.dataset.n_items, ctx.params))
    return model.to(ctx.device)


INITS: dict[str, InitSpec] = {
    "random": InitSpec("random", random_init, False, "PyTorch default init (vanilla MAML)"),
    "gru4rec": InitSpec("gru4rec", pretrained_gru4rec, False, "the trained GRU4Rec weights (warm start)"),
    "gru4rec-frozen-embed": InitSpec(
        "gru4rec-frozen-embed", pretrained_gru4rec, True, "GRU4Rec weights, embedding frozen in both loops"
    ),
}


def get_init(name: str) -> InitSpec:
    if name not in INITS:
        raise BenchError(f"unknown init {name!r}", f"choose one of {', '.join(INITS)}")
    return INITS[name]


def build_init(name: str, ctx) -> GRURecommender:
    """The init's model, with the embedding frozen (requires_grad=False) where the init says so."""
    spec = get_init(name)
    model = spec.build(ctx)
    if spec.frozen_embedding:
        model.embedding.weight.requires_grad_(False)
    return model
