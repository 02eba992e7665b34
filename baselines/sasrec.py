"""SASRec (Kang & McAuley 2018): a self-attentive next-item model, trained like GRU4Rec, cached like it.

Item embedding (x sqrt(H)) plus a learned position embedding -> ``n_blocks`` pre-LayerNorm blocks
(causal multi-head self-attention, point-wise feed-forward, residuals, dropout) -> LayerNorm -> the
state at each prefix's true last position -> Linear(H, n_items + 1), cross-entropy over the full
catalogue. Inputs are right-padded with 0 (as every method in the suite), positions count from
the prefix's first item, and the causal mask keeps each real position blind to the padding after
it. A prefix longer than the position table keeps its last ``max_prefix`` items. The output layer
is its own Linear (not tied to the item embedding) so learn2learn clones it like GRU4Rec's.

Trained on every train pair with GRU4Rec's schedule (baselines.gru4rec.train_on_pairs: batches of
256 prefixes bucketed by length, Adam 1e-3, up to 10 epochs, early stopping on the val pairs' loss),
cached once per (dataset hash, SASRec params, seed) with GRU4Rec's cache key and lock; its per-epoch
val Acc@1 is GRU4Rec's too: zero-shot on the run's val episodes under the protocol.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import learn2learn as l2l
import torch
from torch import nn

from baselines.gru4rec import (
    GRU4REC_DEFAULTS,
    Progress,
    Report,
    ValEpisodes,
    cache_key,
    cached_training,
    no_progress,
    no_report,
    train_on_pairs,
    val_episodes,
)
from baselines.model import mask_padding
from baselines.simple import CHUNK, check_mode
from bench.core.errors import BenchError

SASREC_DEFAULTS: dict = {
    "hidden_dim": 64,
    "n_blocks": 2,
    "n_heads": 2,
    "dropout": 0.2,
    **{key: GRU4REC_DEFAULTS[key] for key in ("lr", "batch_size", "max_epochs", "patience", "max_prefix")},
}


def sasrec_params(params: dict) -> dict:
    """The SASRec training config out of a method's params (defaults filled in, other keys dropped)."""
    return {"model": "sasrec", **{key: params.get(key, default) for key, default in SASREC_DEFAULTS.items()}}


@dataclass(frozen=True)
class SASRecConfig:
    n_items: int
    hidden_dim: int = 64
    n_blocks: int = 2
    n_heads: int = 2
    dropout: float = 0.2
    max_prefix: int = 50  # position table size

    @property
    def vocab_size(self) -> int:
        return self.n_items + 1


def sasrec_config(n_items: int, params: dict) -> SASRecConfig:
    p = sasrec_params(params)
    config = SASRecConfig(n_items, int(p["hidden_dim"]), int(p["n_blocks"]), int(p["n_heads"]), float(p["dropout"]), int(p["max_prefix"]))
    if config.hidden_dim % config.n_heads or min(config.hidden_dim, config.n_blocks, config.n_heads, config.max_prefix) < 1:
        raise BenchError(
            f"SASRec hidden_dim {config.hidden_dim}, n_blocks {config.n_blocks}, n_heads {config.n_heads}, max_prefix {config.max_prefix}",
            "use positive values with hidden_dim divisible by n_heads (defaults 64, 2, 2, 50)",
        )
    return config


class CausalSelfAttention(nn.Module):
    def __init__(self, hidden_dim: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(hidden_dim, 3 * hidden_dim)
        self.out = nn.Linear(hidden_dim, hidden_dim)
        self.attention_dropout = nn.Dropout(dropout)  # a module, so evaluation's Dropout-off switch reaches it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, H = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, H // self.n_heads).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2) / math.sqrt(H // self.n_heads)
        future = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=1)
        weights = self.attention_dropout(logits.masked_fill(future, float("-inf")).softmax(dim=-1))
        return self.out((weights @ v).transpose(1, 2).reshape(B, T, H))


class Block(nn.Module):
    def __init__(self, hidden_dim: int, n_heads: int, dropout: float):
        super().__init__()
        self.attention_norm = nn.LayerNorm(hidden_dim)
        self.attention = CausalSelfAttention(hidden_dim, n_heads, dropout)
        self.feed_forward_norm = nn.LayerNorm(hidden_dim)
        self.feed_forward = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_dim, hidden_dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x)))
        return x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))


class SASRec(nn.Module):
    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.config = config
        self.item_embedding = nn.Embedding(config.vocab_size, config.hidden_dim, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_prefix, config.hidden_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config.hidden_dim, config.n_heads, config.dropout) for _ in range(config.n_blocks))
        self.final_norm = nn.LayerNorm(config.hidden_dim)
        self.output = nn.Linear(config.hidden_dim, config.vocab_size)

    def hidden_states(self, prefixes: torch.Tensor) -> torch.Tensor:
        """States [B, T, H] at every position of right-padded ``prefixes`` [B, T] (T <= max_prefix)."""
        T = prefixes.shape[1]
        positions = torch.arange(T, device=prefixes.device)
        x = self.item_embedding(prefixes) * math.sqrt(self.config.hidden_dim) + self.position_embedding(positions)
        x = self.dropout(x) * (prefixes != 0).unsqueeze(-1)  # padding enters as zeros
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x)

    def forward(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_items + 1] for the next item after each prefix (GRURecommender's signature)."""
        lengths = lengths.to(prefixes.device)
        if prefixes.shape[1] > self.config.max_prefix:  # keep each prefix's last max_prefix items
            window = torch.arange(self.config.max_prefix, device=prefixes.device)
            start = (lengths - self.config.max_prefix).clamp(min=0)
            prefixes = prefixes.gather(1, start.unsqueeze(1) + window)
            lengths = lengths.clamp(max=self.config.max_prefix)
            prefixes = prefixes * (window < lengths.unsqueeze(1))
        states = self.hidden_states(prefixes)
        return self.output(states[torch.arange(len(lengths), device=prefixes.device), lengths - 1])


def train_sasrec(
    dataset, params: dict, seed: int, progress: Progress = no_progress, device="cpu", report: Report = no_report, val: ValEpisodes | None = None
) -> tuple[dict, dict]:
    """Train SASRec on ``dataset.pairs("train")``; return (best-by-val state_dict on CPU, info); per-epoch
    val Acc@1 on ``val`` (baselines.gru4rec.train_on_pairs)."""
    config = sasrec_config(dataset.n_items, params)
    return train_on_pairs(lambda: SASRec(config), dataset, sasrec_params(params), seed, progress, device, "sasrec", report=report, val_episodes=val)


def load_or_train_sasrec(ctx, report: Report = no_report) -> tuple[SASRec, dict]:
    """SASRec for (ctx.dataset, ctx.params, ctx.seed): from ``cache_dir/sasrec/<sha256>/`` or trained once and
    cached; ``report``: the training's val curve (on ``val_episodes(ctx)``), for the run whose own model this is (the sasrec cell)."""
    folder = Path(ctx.cache_dir) / "sasrec" / cache_key(ctx.dataset.content_hash, ctx.params, ctx.seed, select=sasrec_params)
    train = lambda: train_sasrec(ctx.dataset, ctx.params, ctx.seed, ctx.progress, ctx.device, report, val_episodes(ctx))  # noqa: E731
    state, info = cached_training(folder, train)
    model = SASRec(sasrec_config(ctx.dataset.n_items, ctx.params))
    model.load_state_dict(state)
    return model.to(ctx.device), info


class SASRecMethod:
    """The trained SASRec (zero-shot), or SASRec fine-tuned on each support set (few-shot) with the
    inner loop of ``gru4rec-finetune`` (learn2learn MAML clone/adapt, first order, ``inner_lr``,
    ``inner_steps``, dropout off). The inner-loop ``engine`` and ``to_tasks`` (episodes -> tasks) are
    handed in by the method registry (meta/'s per-task engine: the batched one is GRU-specific), so
    this baseline does not import meta/."""

    def __init__(self, ctx, name: str, modes: tuple[str, ...], params: dict, engine, to_tasks):
        self.name, self.modes, self.params = name, modes, params
        self.device = torch.device(ctx.device)
        self.engine, self.to_tasks = engine, to_tasks
        self.maml = None

    def fit(self, ctx) -> dict:
        start = time.perf_counter()
        own = "few-shot" not in self.modes  # the sasrec cell tunes the model itself; sasrec-finetune its inner loop
        model, info = load_or_train_sasrec(dataclasses.replace(ctx, params=self.params), ctx.report if own else no_report)
        self.maml = l2l.algorithms.MAML(model, lr=float(self.params.get("inner_lr", 0.0)), first_order=True)
        return {"curve": info["curve"], "train_seconds": time.perf_counter() - start, "sasrec": info}

    def score(self, episodes, mode: str):
        check_mode(mode, self.modes, self.name)
        if self.maml is None:
            raise BenchError(f"{self.name} scored before fit()", "call fit(ctx) first")
        inner_steps = int(self.params["inner_steps"]) if mode == "few-shot" else 0
        for start in range(0, len(episodes), CHUNK):
            tasks = self.to_tasks(episodes.iloc[start : start + CHUNK], self.device)
            yield mask_padding(self.engine.query_scores(self.maml, tasks, inner_steps)).cpu()
