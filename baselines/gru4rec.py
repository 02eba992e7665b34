"""GRU4Rec: the global GRURecommender trained on every train-split pair, cached per (dataset, config, seed).

Adam, cross-entropy over the whole catalogue, batches of prefixes bucketed by length, early stopping
on the val-split pairs' loss: evaluated after every epoch, the best epoch's weights kept, training
stopped after ``patience`` epochs without a better val loss, at most ``max_epochs``. Each epoch's
``val_acc@1`` (curve, tuning's report) is the tuning objective's number: zero-shot Acc@1 on the val
episodes of the run's K, Q, population_K under the protocol (``episode_acc1``); the cache is shared
across K and Q, so a cached curve holds those of the run that trained it (info ``val_episodes``). The info says
which epoch was kept and whether training was still improving when the budget ran out
(``still_improving``: the kept epoch is the last and ``max_epochs``, not patience, stopped it).
Defaults are the seed's baseline.

``train_users`` (param of the gru4rec methods, set by the ``gru4rec-episode-users`` init): "all"
trains on every train pair; "episode-users" only on the train pairs of the users meta-training sees
at the run's K, Q (those with at least K+Q train pairs), its own cache entry (``train_selection``).

``repeat`` (param of the gru4rec-repeat method, set by the ``gru4rec-repeat`` init): the repeat-aware
GRURecommender (baselines/model.py RepeatHead), trained the same way on the same pairs. Part of the
trained model's params (and so of the cache key) only when true, so every other key is unchanged.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from baselines.batching import pad_prefixes
from baselines.fused_forward import training_forward
from baselines.model import GRURecommender, ModelConfig, deterministic, mask_padding
from baselines.simple import CHUNK
from bench.core.atomic import atomic_write
from bench.core.errors import BenchError
from bench.core.metrics import evaluate_scores, ranks_from_scores
from bench.core.provenance import code_fingerprint

GRU4REC_DEFAULTS: dict = {
    "embed_dim": 64,
    "hidden_dim": 128,
    "n_layers": 1,
    "dropout": 0.2,
    "lr": 1e-3,
    "batch_size": 256,
    "max_epochs": 10,
    "patience": 2,  # epochs without a better val loss before stopping
    "max_prefix": 50,  # keep the last max_prefix items of each prefix
}

# Which train users' pairs GRU4Rec trains on (param ``train_users`` of the gru4rec methods).
TRAIN_USERS = ("all", "episode-users")
TRAIN_USERS_DEFAULTS: dict = {"train_users": "all"}
# The repeat-aware GRU4Rec's own default (method gru4rec-repeat); absent or false: the plain model.
REPEAT_DEFAULTS: dict = {"repeat": True}

Progress = Callable[[str, int, int], None]


Report = Callable[[int, float], None]  # (step, value so far): a tuning trial's pruning hook; may raise to stop


def no_report(step: int, value: float) -> None:
    """Report nothing (every run outside a tuning study)."""


def no_progress(phase: str, done: int, total: int) -> None:
    pass


@contextmanager
def seeded_rng(seed: int, device="cpu") -> Iterator[None]:
    """Torch's global RNG (weight init, dropout) seeded with ``seed`` inside, restored after."""
    device = torch.device(device)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def gru4rec_params(params: dict) -> dict:
    """The GRU4Rec training config out of a method's params (defaults filled in, other keys dropped;
    ``repeat`` kept only when true, so a plain GRU4Rec's config, and cache key, is what it always was)."""
    config = {key: params.get(key, default) for key, default in GRU4REC_DEFAULTS.items()}
    if params.get("repeat"):
        config["repeat"] = True
    return config


def train_selection(params: dict, K: int, Q: int) -> dict | None:
    """Which train pairs GRU4Rec trains on: None = every train pair; for ``train_users`` =
    "episode-users", ``{"train_users": "episode-users", "min_pairs": K + Q}``: the pairs of the train
    users with at least K+Q train pairs, the users meta-training's episodes come from at (K, Q)."""
    users = params.get("train_users", "all")
    if users == "all":
        return None
    if users == "episode-users":
        return {"train_users": users, "min_pairs": int(K) + int(Q)}
    raise BenchError(f"train_users = {users!r}", f"choose one of {', '.join(TRAIN_USERS)}")


def select_train_pairs(pairs: pd.DataFrame, selection: dict | None) -> pd.DataFrame:
    """``pairs`` of the users ``selection`` keeps (``train_selection``): all of them for None."""
    if selection is None:
        return pairs
    counts = pairs["user_id"].value_counts()
    eligible = counts.index[counts >= int(selection["min_pairs"])]
    return pairs[pairs["user_id"].isin(eligible)].reset_index(drop=True)


def model_config(n_items: int, params: dict) -> ModelConfig:
    p = gru4rec_params(params)
    return ModelConfig(n_items, int(p["embed_dim"]), int(p["hidden_dim"]), int(p["n_layers"]), float(p["dropout"]), bool(p.get("repeat", False)))


def length_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    """Index batches of similar-length prefixes; shuffled within lengths and in batch order if ``generator``."""
    order = torch.randperm(len(lengths), generator=generator) if generator is not None else torch.arange(len(lengths))
    order = order[torch.argsort(lengths[order], stable=True)]
    batches = list(torch.split(order, batch_size))
    if generator is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


class PairTensors:
    """All pairs of one split, padded once: prefixes [N, T], lengths [N], labels [N]."""

    def __init__(self, pairs: pd.DataFrame, max_prefix: int):
        prefixes = [list(p)[-max_prefix:] for p in pairs["prefix"]]
        self.prefixes, self.lengths = pad_prefixes(prefixes)
        self.labels = torch.tensor(pairs["label"].to_numpy(), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lengths = self.lengths[index]
        prefixes = self.prefixes[index, : int(lengths.max())]
        return prefixes.to(device), lengths.to(device), self.labels[index].to(device)


@torch.no_grad()
def evaluate_pairs(model: GRURecommender, pairs: PairTensors, batch_size: int, device) -> tuple[float, float]:
    """(mean cross-entropy, Acc@1 by bench.core.metrics' ranking: padding excluded, ties against the model) over all pairs, dropout off."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for index in length_batches(pairs.lengths, batch_size, None):
        prefixes, lengths, labels = pairs.batch(index, device)
        logits = model(prefixes, lengths)
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        correct += int((ranks_from_scores(logits, labels) == 1).sum())  # the suite's one ranking rule
    return loss_sum / len(pairs), correct / len(pairs)


class ValEpisodes(NamedTuple):
    """The val episodes a training's per-epoch Acc@1 is measured on, and which (K, Q, population_K) they are."""

    episodes: pd.DataFrame
    K: int
    Q: int
    population_K: int | None

    def describe(self) -> dict:
        return {"split": "val", "K": int(self.K), "Q": int(self.Q), "population_K": self.population_K, "n": len(self.episodes)}


def val_episodes(ctx) -> ValEpisodes:
    """``ctx.dataset.episodes("val", K, Q, population_K)`` of the run: the episodes tuning's objective reads."""
    return ValEpisodes(ctx.dataset.episodes("val", ctx.K, ctx.Q, ctx.population_K), ctx.K, ctx.Q, ctx.population_K)


@torch.no_grad()
def episode_acc1(model, episodes: pd.DataFrame, device) -> float:
    """Mean zero-shot Acc@1 of ``model`` over ``episodes`` by bench.core.metrics.evaluate_scores, each query's
    ``query_excluded`` item left out: what a val-split run of the method scores for these weights (each
    episode's queries padded and scored on their own, padding masked, in the engines' ``deterministic`` mode)."""

    def chunks():
        for start in range(0, len(episodes), CHUNK):
            scores = []
            for prefixes in episodes["query_prefixes"].iloc[start : start + CHUNK]:
                padded, lengths = pad_prefixes(list(prefixes), device)
                scores.append(model(padded, lengths))
            yield mask_padding(torch.stack(scores)).cpu()

    with deterministic(model):  # train mode, every dropout off: the per-task engine's zero-shot scores
        rows = evaluate_scores(chunks(), list(episodes["query_labels"]), episodes.get("query_excluded"))
    return float(np.mean([row["acc@1"] for row in rows]))


def train_gru4rec(
    dataset,
    params: dict,
    seed: int,
    progress: Progress = no_progress,
    device="cpu",
    selection: dict | None = None,
    report: Report = no_report,
    val: ValEpisodes | None = None,
) -> tuple[dict, dict]:
    """Train GRU4Rec on ``dataset.pairs("train")`` (those ``selection`` keeps); return (best-by-val state_dict on CPU, info)."""
    p = gru4rec_params(params)
    build = lambda: GRURecommender(model_config(dataset.n_items, p))  # noqa: E731
    return train_on_pairs(build, dataset, p, seed, progress, device, "gru4rec", selection, report, val)


def train_on_pairs(
    build_model,
    dataset,
    p: dict,
    seed: int,
    progress: Progress,
    device,
    phase: str,
    selection: dict | None = None,
    report: Report = no_report,
    val_episodes: ValEpisodes | None = None,
) -> tuple[dict, dict]:
    """Train ``build_model()`` (forward(prefixes, lengths) -> logits) on every train pair (or those of
    the users ``selection`` keeps, ``train_selection``) with GRU4Rec's schedule (``p``: lr, batch_size,
    max_epochs, patience, max_prefix); return (best-by-val state_dict on CPU, info).

    Early stopping: val loss after every epoch; the best epoch's weights are kept; training stops
    after ``patience`` epochs without a lower val loss, or after ``max_epochs``. Info: ``best_epoch``,
    ``epochs_trained``, ``stopped`` ("patience" or "max_epochs"), ``still_improving`` (the best epoch
    is the last one and max_epochs stopped training: more epochs might have helped), ``n_train_pairs``,
    ``n_train_users``, ``train_users``, ``budget_pairs`` (epochs_trained x n_train_pairs: pairs seen
    by gradient steps).

    Each epoch's ``val_acc@1``: ``episode_acc1`` on ``val_episodes`` (zero-shot Acc@1 on the val episodes
    under the protocol, the tuning objective's number; None without them: a model outside any run).
    ``report(epoch, val_acc@1 of the best epoch so far)`` after every epoch with val episodes: a tuning
    trial's pruner (bench/run/pruning.py) may raise there to stop the training; nothing is cached then.

    Deterministic for a given seed and device: weight init and dropout draw from a forked RNG
    seeded with ``seed``, and batch order from a generator seeded with ``seed``.
    """
    start = time.perf_counter()
    train_pairs = select_train_pairs(dataset.pairs("train"), selection)
    if len(train_pairs) == 0:
        raise BenchError(f"no train pairs to train {phase} on ({selection})", 'pick a smaller K+Q or train_users = "all"')
    train = PairTensors(train_pairs, int(p["max_prefix"]))
    val = PairTensors(dataset.pairs("val"), int(p["max_prefix"]))  # the loss that picks the kept epoch
    batch_size = int(p["batch_size"])
    generator = torch.Generator().manual_seed(seed)
    epochs: list[dict] = []
    with seeded_rng(seed, device):
        model = build_model().to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=float(p["lr"]))
        best_loss, best_state, best_epoch, best_acc = math.inf, copy.deepcopy(model.state_dict()), 0, 0.0
        total_steps = int(p["max_epochs"]) * math.ceil(len(train) / batch_size)
        steps, stopped = 0, "max_epochs"
        forward = training_forward(model)  # GRU4Rec's one-layer GRU on the compiled kernel (baselines/fused_forward.py)
        for epoch in range(1, int(p["max_epochs"]) + 1):
            model.train()
            loss_sum = 0.0
            for index in length_batches(train.lengths, batch_size, generator):
                prefixes, lengths, labels = train.batch(index, device)
                optimizer.zero_grad()
                loss = F.cross_entropy(forward(prefixes, lengths), labels)
                loss.backward()
                optimizer.step()
                loss_sum += float(loss.detach()) * len(index)
                steps += 1
                progress(phase, steps, total_steps)
            val_loss, _ = evaluate_pairs(model, val, batch_size, device)
            val_acc = None if val_episodes is None else episode_acc1(model, val_episodes.episodes, device)
            epochs.append({"iteration": epoch, "train_loss": loss_sum / len(train), "val_loss": val_loss, "val_acc@1": val_acc})
            improved = val_loss < best_loss
            if improved:
                best_loss, best_state, best_epoch, best_acc = val_loss, copy.deepcopy(model.state_dict()), epoch, val_acc
            if val_episodes is not None:
                report(epoch, best_acc)  # what the kept weights score on the objective's val episodes so far
            if not improved and epoch - best_epoch >= int(p["patience"]):
                stopped = "patience"
                break
    state = {key: tensor.detach().cpu() for key, tensor in best_state.items()}
    epochs_trained = len(epochs)
    info = {
        "curve": epochs,
        "best_epoch": best_epoch,
        "best_val_loss": best_loss,
        "epochs_trained": epochs_trained,
        "stopped": stopped,
        "still_improving": best_epoch == epochs_trained and stopped == "max_epochs",
        "budget_pairs": epochs_trained * len(train),
        "train_seconds": time.perf_counter() - start,
        "n_train_pairs": len(train),
        "n_train_users": int(train_pairs["user_id"].nunique()),
        "train_users": (selection or {}).get("train_users", "all"),
        **({"min_user_pairs": int(selection["min_pairs"])} if selection else {}),
        "n_val_pairs": len(val),
        "val_episodes": None if val_episodes is None else val_episodes.describe(),  # where the curve's val_acc@1 was measured
        "params": p,
        "seed": seed,
        "device": str(device),
    }
    return state, info


def cache_key(content_hash: str, params: dict, seed: int, select=gru4rec_params, selection: dict | None = None) -> str:
    """Names the cached weights: dataset version, the trained model's params (as ``select`` picks them),
    seed, the train pairs' ``selection`` (``train_selection``; only when not all) and the code
    fingerprint, so weights trained by code since changed are never reused."""
    identity = {"dataset": content_hash, "params": select(params), "seed": seed, "code": code_fingerprint()}
    if selection is not None:
        identity["train_pairs"] = selection
    blob = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_training(folder: Path, train: Callable[[], tuple[dict, dict]]) -> tuple[dict, dict]:
    """(state_dict, info) from ``folder`` or from ``train()``, then cached there. A file lock makes
    parallel processes wait for one training instead of repeating it."""
    folder.mkdir(parents=True, exist_ok=True)
    model_path, info_path = folder / "model.pt", folder / "info.json"
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if model_path.is_file() and info_path.is_file():
                info = json.loads(info_path.read_text())
                info["cached"] = True
                state = torch.load(model_path, map_location="cpu", weights_only=True)
            else:
                state, info = train()
                # info first: model.pt's presence marks a complete entry
                atomic_write(info_path, lambda tmp: tmp.write_text(json.dumps(info, indent=1)))
                atomic_write(model_path, lambda tmp: torch.save(state, tmp))
                info = {**info, "cached": False}
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return state, info


def gru4rec_folder(ctx) -> Path:
    """``cache_dir/gru4rec/<cache_key>``: where the GRU4Rec of (ctx.dataset, ctx.params, ctx.seed and,
    for ``train_users`` = "episode-users", ctx.K + ctx.Q) is cached."""
    selection = train_selection(ctx.params, ctx.K, ctx.Q)
    return Path(ctx.cache_dir) / "gru4rec" / cache_key(ctx.dataset.content_hash, ctx.params, ctx.seed, selection=selection)


def cached_info(folder: Path) -> dict | None:
    """The info of the training cached in ``folder`` (``cached_training``), or None if there is none."""
    path = Path(folder) / "info.json"
    return json.loads(path.read_text()) if path.is_file() and (Path(folder) / "model.pt").is_file() else None


def load_or_train_gru4rec(ctx, report: Report = no_report) -> tuple[GRURecommender, dict]:
    """GRU4Rec for (ctx.dataset, ctx.params, ctx.seed): from ``gru4rec_folder(ctx)`` or trained once
    and cached (``cached_training``); ctx.params' ``train_users`` picks the train pairs. ``report``: the
    training's val curve, for the run whose own model this is (the gru4rec cell's tuning trials); the
    curve is measured on ``val_episodes(ctx)`` of the run that trains it (cached with the weights)."""
    selection = train_selection(ctx.params, ctx.K, ctx.Q)
    state, info = cached_training(
        gru4rec_folder(ctx),
        lambda: train_gru4rec(ctx.dataset, ctx.params, ctx.seed, ctx.progress, ctx.device, selection, report, val_episodes(ctx)),
    )
    model = GRURecommender(model_config(ctx.dataset.n_items, ctx.params))
    model.load_state_dict(state)
    return model.to(ctx.device), info


def pretrained_gru4rec(ctx) -> GRURecommender:
    """The trained (cached) GRU4Rec for this run's dataset, GRU4Rec params and seed."""
    return load_or_train_gru4rec(ctx)[0]
