"""Initialisations registry: where a MAML-family model's starting weights come from.

Adding an init is one entry in ``INITS``. Every built-in init builds the same architecture (the
GRU4Rec params ``embed_dim``, ``hidden_dim``, ``n_layers``, ``dropout``), so inits are comparable;
``checkpoint`` takes its architecture from the file's tensor shapes.

An init may have params of its own (``InitSpec.params``, e.g. ``init_checkpoint``): they are
params of every method that takes an init, set like any other (grid params, ``--set``), and
``resolve_init_params`` keeps them only in the runs whose init uses them (so they do not change
other runs' identity) and adds what the identity needs (the checkpoint file's sha256).

An init built from a pre-trained GRU4Rec has its pre-training entries apart from the method's own
params (``PRETRAIN_KEYS``: ``init_lr``, ``init_dropout`` are the GRU4Rec's ``lr`` and ``dropout``; the
method's ``dropout`` is meta-training's), so a warm start's regularisation and its initialisation are
set and tuned separately (bench/run/tune.py fills the init entries from the tuned gru4rec cell). It may
also set how that GRU4Rec is trained (``InitSpec.pretraining``, e.g. ``gru4rec-episode-users``:
``train_users = "episode-users"``, GRU4Rec trained only on the train pairs of the users meta-training
sees). ``pretraining_params`` applies both, for the build, the cache key and seed pairing alike
(bench/methods/prerequisites.py), so the init is the gru4rec method's own code path.
``gru4rec-repeat`` sets ``repeat = true``: the repeat-aware GRU4Rec (baselines/model.py RepeatHead),
the very weights the gru4rec-repeat method is (one training per dataset, config and seed), tuned
with that method's cell (``InitSpec.warm_source``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from baselines.gru4rec import GRU4REC_DEFAULTS, model_config, pretrained_gru4rec, seeded_rng
from baselines.model import GRURecommender, config_from_state_dict, read_checkpoint
from bench.core.errors import BenchError


@dataclass(frozen=True)
class InitSpec:
    name: str
    build: Callable[..., GRURecommender]  # build(ctx) -> GRURecommender on ctx.device
    frozen_embedding: bool = False  # embedding.weight.requires_grad=False: untouched by both loops
    description: str = ""
    params: dict = field(default_factory=dict)  # the init's own params and their defaults
    resolve: Callable[[dict], dict] | None = None  # params -> params with what the run identity needs
    check: Callable[[dict, object], None] | None = None  # (params, dataset): refuse before any run starts
    pretraining: dict = field(default_factory=dict)  # GRU4Rec params its pre-trained weights are trained with (train_users, repeat)
    warm_source: str = "gru4rec"  # a pre-trained init's: the method whose tuned best its GRU4Rec's training takes (bench/run/tune.py)


def random_init(ctx) -> GRURecommender:
    """PyTorch's default initialisation, drawn from ``ctx.seed``."""
    with seeded_rng(ctx.seed):
        model = GRURecommender(model_config(ctx.dataset.n_items, ctx.params))
    return model.to(ctx.device)


# ----------------------------------------------------------------------------------------------
# A GRURecommender checkpoint file


def checkpoint_params(params: dict) -> dict:
    """``init_checkpoint`` checked, and its file's sha256 recorded in ``init_checkpoint_sha256``
    (part of the run identity: a changed file is a different run). A recorded hash that the file
    no longer has is refused."""
    path = params.get("init_checkpoint")
    if not path:
        raise BenchError("init 'checkpoint' needs a checkpoint file", "add --set init_checkpoint=PATH (a GRURecommender state_dict)")
    if not Path(path).is_file():
        raise BenchError(f"checkpoint {path} not found", "check init_checkpoint")
    from bench.data.pipeline import sha256_file

    digest = sha256_file(Path(path))
    recorded = params.get("init_checkpoint_sha256")
    if recorded not in (None, digest):
        raise BenchError(
            f"checkpoint {path} changed since its runs were declared (sha256 {digest[:12]}, recorded {str(recorded)[:12]})", "run the grid again"
        )
    return {**params, "init_checkpoint": str(path), "init_checkpoint_sha256": digest}


def seed_layout_shift(state: dict) -> dict:
    """The seed's layout (row i = course id i, a real course on row 0, no padding row) -> ours: every
    row moves to i + 1, the +1 repair of the seed-episodes importer (bench/data/importers/seed_episodes.py), and
    row 0 becomes padding (zero embedding; zero output weight and the lowest output bias, so padding
    starts as the least likely item)."""
    shifted = dict(state)
    embedding = state["embedding.weight"]
    shifted["embedding.weight"] = torch.cat([embedding.new_zeros(1, embedding.shape[1]), embedding])
    weight, bias = state["output.weight"], state["output.bias"]
    shifted["output.weight"] = torch.cat([weight.new_zeros(1, weight.shape[1]), weight])
    shifted["output.bias"] = torch.cat([bias.min().reshape(1), bias])
    return shifted


def checkpoint_vocab_shift(loaded: dict, dataset) -> int | None:
    """Where the file carries its vocabulary (``course2id``: course -> id), the shift that maps it onto
    the dataset's, computed as the seed-episodes importer does; a mismatch is refused. None: no vocabulary."""
    vocab = loaded.get("course2id")
    if vocab is None:
        return None
    from bench.data.importers import check_vocab

    shift = check_vocab(vocab)
    mapped = {str(course): int(i) + shift for course, i in vocab.items()}
    if mapped != dict(dataset.vocab):
        differing = sorted(set(mapped.items()) ^ set((str(c), int(i)) for c, i in dataset.vocab.items()))
        raise BenchError(
            f"checkpoint vocabulary does not match dataset {dataset.name!r} ({len(mapped)} vs {len(dataset.vocab)} courses; first "
            f"difference {differing[0]})",
            "use a checkpoint trained on this dataset's courses",
        )
    return shift


def checkpoint_state(params: dict, dataset) -> tuple[dict, object]:
    """(state_dict in this suite's layout, ModelConfig from its shapes) for ``params['init_checkpoint']``.

    Rows: n_items + 1 is this suite's layout (0 = padding); n_items is the seed's (``gru_global.pth``:
    a real course on id 0), shifted by +1; anything else is a vocabulary mismatch, refused. A tensor
    whose shape does not fit is refused by name (baselines.model.config_from_state_dict)."""
    path = params.get("init_checkpoint")
    if not path:
        raise BenchError("init 'checkpoint' needs a checkpoint file", "add --set init_checkpoint=PATH (a GRURecommender state_dict)")
    state, loaded = read_checkpoint(path)
    n_items = dataset.n_items
    embedding = state.get("embedding.weight")
    if embedding is None or embedding.dim() != 2:
        raise BenchError(f"checkpoint {path} has no 2-d tensor 'embedding.weight'", "give a GRURecommender state_dict")
    rows = int(embedding.shape[0])
    shift = checkpoint_vocab_shift(loaded, dataset)
    if rows == n_items and shift in (None, 1):
        state = seed_layout_shift(state)
    elif rows != n_items + 1 or shift == 1:
        raise BenchError(
            f"checkpoint {path} has {rows} item rows but dataset {dataset.name!r} has {n_items} items "
            f"({n_items + 1} rows with padding, or {n_items} in the seed's layout)",
            "use a checkpoint trained on this dataset's vocabulary",
        )
    return state, config_from_state_dict(state, n_items, float(params.get("dropout", 0.2)))


def checkpoint_init(ctx) -> GRURecommender:
    """The checkpoint's weights; the architecture is the file's (embed_dim, hidden_dim, n_layers params unused)."""
    params = checkpoint_params(ctx.params)  # refuses a file changed since the run was declared
    state, config = checkpoint_state(params, ctx.dataset)
    model = GRURecommender(config)
    model.load_state_dict(state)
    return model.to(ctx.device)


def check_checkpoint(params: dict, dataset) -> None:
    """Refuse a checkpoint that does not fit ``dataset`` (vocabulary, shapes) before any run starts."""
    checkpoint_state(params, dataset)


CHECKPOINT_PARAMS = {"init_checkpoint": None, "init_checkpoint_sha256": None}

# A warm start's pre-training entries: init param -> the GRU4Rec param it trains the init's GRU4Rec with.
# The method's own ``lr``/``dropout`` never reach that GRU4Rec (its ``dropout`` is meta-training's).
PRETRAIN_KEYS = {"init_lr": "lr", "init_dropout": "dropout"}
PRETRAIN_PARAMS = {key: GRU4REC_DEFAULTS[source] for key, source in PRETRAIN_KEYS.items()}

INITS: dict[str, InitSpec] = {
    "random": InitSpec("random", random_init, False, "PyTorch default init (vanilla MAML)"),
    "gru4rec": InitSpec("gru4rec", pretrained_gru4rec, False, "the trained GRU4Rec weights (warm start)", params=PRETRAIN_PARAMS),
    "gru4rec-frozen-embed": InitSpec(
        "gru4rec-frozen-embed", pretrained_gru4rec, True, "GRU4Rec weights, embedding frozen in both loops", params=PRETRAIN_PARAMS
    ),
    "gru4rec-episode-users": InitSpec(
        "gru4rec-episode-users",
        pretrained_gru4rec,
        False,
        "GRU4Rec weights trained only on the train pairs of the users meta-training sees (>= K+Q pairs)",
        params=PRETRAIN_PARAMS,
        pretraining={"train_users": "episode-users"},
    ),
    "gru4rec-repeat": InitSpec(
        "gru4rec-repeat",
        pretrained_gru4rec,
        False,
        "the trained repeat-aware GRU4Rec (RepeatNet's repeat/explore head; the gru4rec-repeat method's weights)",
        params=PRETRAIN_PARAMS,
        pretraining={"repeat": True},
        warm_source="gru4rec-repeat",
    ),
    "checkpoint": InitSpec(
        "checkpoint",
        checkpoint_init,
        False,
        "a GRURecommender checkpoint file (--set init_checkpoint=PATH; the seed's layout is shifted +1)",
        params=CHECKPOINT_PARAMS,
        resolve=checkpoint_params,
        check=check_checkpoint,
    ),
}

# Every init's own params: params of each method that takes an init.
INIT_PARAMS: dict = {key: value for spec in INITS.values() for key, value in spec.params.items()}


def get_init(name: str) -> InitSpec:
    if name not in INITS:
        raise BenchError(f"unknown init {name!r}", f"choose one of {', '.join(INITS)}")
    return INITS[name]


def pretraining_params(name: str | None, params: dict) -> dict:
    """``params`` as the GRU4Rec init ``name`` starts from is trained, cached and paired by: its
    pre-training entries (``PRETRAIN_KEYS``: init_lr -> lr, init_dropout -> dropout) and its
    ``InitSpec.pretraining`` applied. Unchanged for no init or an unknown one; an entry a stored run's
    params lack (recorded before the entries existed) leaves the run's own value, as it was trained then."""
    spec = INITS.get(name) if name is not None else None
    if spec is None:
        return params
    entries = {source: params[key] for key, source in PRETRAIN_KEYS.items() if key in spec.params and key in params}
    return {**params, **entries, **spec.pretraining} if entries or spec.pretraining else params


def build_init(name: str, ctx) -> GRURecommender:
    """The init's model, with the embedding frozen (requires_grad=False) where the init says so. A
    pre-trained GRU4Rec's weights are trained with the init's entries, then carried into a model of the
    run's own config (its ``dropout``: meta-training's, whatever the GRU4Rec was trained with)."""
    spec = get_init(name)
    pretrained = spec.pretraining or any(key in spec.params for key in PRETRAIN_KEYS)
    model = spec.build(dataclasses.replace(ctx, params=pretraining_params(name, ctx.params)) if pretrained else ctx)
    if pretrained:
        # the run's own config (its dropout), the architecture the init's pre-training gave it (repeat)
        own = GRURecommender(model_config(ctx.dataset.n_items, {**ctx.params, **spec.pretraining}))
        own.load_state_dict(model.state_dict())
        model = own.to(ctx.device)
    if spec.frozen_embedding:
        model.embedding.weight.requires_grad_(False)
    return model


def resolve_init_params(name: str, params: dict) -> dict:
    """``params`` with the init params that init ``name`` does not use removed, and its own resolved
    (e.g. the checkpoint's sha256 added): what a run with this init records and hashes."""
    spec = get_init(name)
    kept = {key: value for key, value in params.items() if key not in INIT_PARAMS or key in spec.params}
    return spec.resolve(kept) if spec.resolve else kept


def check_init(name: str | None, params: dict, dataset) -> None:
    """Refuse, before any run starts, an init that cannot be built for ``dataset`` (e.g. a checkpoint
    with another vocabulary)."""
    spec = get_init(name) if name is not None else None
    if spec is not None and spec.check is not None:
        spec.check(params, dataset)
