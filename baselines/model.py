"""GRURecommender: the one sequence model every neural method in the suite uses.

Embedding(n_items + 1, E, padding_idx=0) -> GRU(E, H, layers) over packed sequences (true
lengths respected) -> dropout -> Linear(H, n_items + 1). Item ids are 1..n_items; id 0 is
padding and its logit is never a prediction (``mask_padding``). Parameter names match the
seed's ``gru_global.pth`` (``embedding.weight``, ``gru.weight_ih_l0``, ..., ``output.bias``).

With ``ModelConfig.repeat`` the model is repeat-aware: RepeatNet's repeat/explore mixture (Ren et al.,
AAAI 2019) on the last state h (``RepeatHead``, ``repeat_mixture``), its scores normalised
log-probabilities. The one deviation from RepeatNet: the repeat attention over the prefix is computed
from each position's recency and its item's explore logit, not from per-position encoder states,
because every engine (the compiled kernel and the batched engine included) keeps only the last state;
the head is then a function of (h, the base logits, the prefix items) and every engine can apply it.
Without ``repeat`` nothing is added (same RNG draws, same state_dict keys as before the option).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.errors import BenchError


@dataclass(frozen=True)
class ModelConfig:
    n_items: int  # real items; the vocabulary is ids 0 (padding) .. n_items
    embed_dim: int = 64
    hidden_dim: int = 128
    n_layers: int = 1
    dropout: float = 0.2
    repeat: bool = False  # the repeat/explore head (RepeatHead) on top of the output layer

    @property
    def vocab_size(self) -> int:
        return self.n_items + 1


class GRURecommender(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=0)
        self.gru = nn.GRU(
            input_size=config.embed_dim,
            hidden_size=config.hidden_dim,
            num_layers=config.n_layers,
            batch_first=True,
            dropout=config.dropout if config.n_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.hidden_dim, config.vocab_size)
        # drawn after every other tensor, so a model without it draws exactly what it always drew
        self.repeat = RepeatHead(config.hidden_dim) if config.repeat else None

    def forward(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_items + 1] for the next item after each prefix (with ``config.repeat``: the
        repeat/explore mixture's log-probabilities, ``RepeatHead``).

        ``prefixes`` is [B, T] right-padded with 0; ``lengths`` [B] holds the true lengths (>= 1).
        The last hidden state is taken at each sequence's true end (packed sequence).
        """
        return self.scores(self.features(prefixes, lengths), prefixes, lengths)

    def scores(self, features: torch.Tensor, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """What ``forward`` returns for the output layer's input ``features`` [B, H]: ``output(features)``,
        through the repeat head when the model has one (which reads the prefixes)."""
        logits = self.output(features)
        return logits if self.repeat is None else self.repeat(logits, features, prefixes, lengths)

    def features(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The output layer's input [B, H]: the GRU's last state at each true end, after dropout
        (the body that ANIL shares across tasks; ``forward`` is ``output(features)``)."""
        embedded = self.embedding(prefixes)
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, hidden = self.gru(packed)
        return self.dropout(hidden[-1])


# Recency buckets of the repeat attention: ages 0 (the last position) .. REPEAT_AGES - 1 (and older).
REPEAT_AGES = 20
# A finite stand-in for -inf where a value is masked inside the gradient path (exp of it is exactly 0).
MASKED = -1e9


class RepeatHead(nn.Module):
    """RepeatNet's repeat/explore mixture over the base logits z = output(h) (``repeat_mixture``).

    Parameters (state_dict names ``repeat.*``): ``gate`` (Linear(H, 1): P(repeat | h) =
    sigmoid(gate(h))), ``recency`` [REPEAT_AGES] (the repeat score of each age bucket, init 0) and
    ``logit_scale`` [1] (beta, the weight of a position's item logit in its repeat score, init 1)."""

    def __init__(self, hidden_dim: int, ages: int = REPEAT_AGES):
        super().__init__()
        self.gate = nn.Linear(hidden_dim, 1)
        self.recency = nn.Parameter(torch.zeros(ages))
        self.logit_scale = nn.Parameter(torch.ones(1))

    def forward(self, logits: torch.Tensor, features: torch.Tensor, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Log-probabilities [B, V] (padding column -inf) for base logits [B, V], features [B, H]."""
        return repeat_mixture(logits, features, prefixes, lengths, self.gate.weight, self.gate.bias, self.recency, self.logit_scale)


def repeat_ages(lengths: torch.Tensor, width: int, buckets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(age bucket [..., T], inside [..., T] bool) of each prefix position: age = positions from the
    true end (0 = last), ages >= buckets - 1 sharing the last bucket; padding positions are outside."""
    positions = torch.arange(width, device=lengths.device)
    age = lengths.unsqueeze(-1) - 1 - positions
    return age.clamp(0, buckets - 1), age >= 0


def repeat_mixture(
    logits: torch.Tensor,
    features: torch.Tensor,
    prefixes: torch.Tensor,
    lengths: torch.Tensor,
    gate_weight: torch.Tensor,
    gate_bias: torch.Tensor,
    recency: torch.Tensor,
    logit_scale: torch.Tensor,
) -> torch.Tensor:
    """log((1 - p) P_e(i) + p P_r(i)) per item: RepeatNet's mixture, for one batch or stacked tasks.

    Shapes: logits z [..., B, V], features h [..., B, H], prefixes [..., B, T] (0 = padding), lengths
    [..., B]; the head's tensors gate_weight [..., 1, H], gate_bias [..., 1], recency [..., A],
    logit_scale [..., 1] (one model: no leading dims; the batched engine: a task dim).
    - p = sigmoid(gate_weight . h + gate_bias), P(repeat | h);
    - explore: P_e = softmax of z over the items NOT in the prefix (prefix items, padding masked);
    - repeat: position t (age bucket a_t, ``repeat_ages``) scores s_t = recency[a_t] + beta z[x_t];
      P_r(i) = sum over the positions holding i of softmax_t(s) (padding positions masked).
    A prefix item scores log p + log P_r(i), any other real item log(1 - p) + log P_e(i), the padding
    column -inf; every branch is computed on safe (finite) values and chosen by a 0/1 mask, so the
    gradient never meets -inf or a log of 0 (e.g. when every position holds one item). Normalised: the scores'
    exp sums to 1 over the real items (while some real item is outside the prefix).
    """
    gate = (features * gate_weight).sum(-1) + gate_bias  # [..., B]
    log_repeat, log_explore = F.logsigmoid(gate).unsqueeze(-1), F.logsigmoid(-gate).unsqueeze(-1)
    # Masks as 0/1 floats and the branches chosen by products (on CPU a bool-masked where costs ~10 adds).
    in_prefix = torch.zeros_like(logits).scatter_(-1, prefixes, 1.0)
    in_prefix[..., 0] = 0.0  # padding positions scatter into column 0: never a prefix item
    outside = 1.0 - in_prefix
    not_explored = in_prefix.clone()
    not_explored[..., 0] = 1.0  # the explore softmax leaves out the prefix items and padding
    log_p_explore = torch.log_softmax(logits + not_explored * MASKED, dim=-1)
    ages, inside = repeat_ages(lengths, prefixes.shape[-1], recency.shape[-1])
    recency_scores = torch.gather(recency.unsqueeze(-2).expand(*ages.shape[:-1], recency.shape[-1]), -1, ages)
    position_scores = recency_scores + logit_scale.unsqueeze(-1) * torch.gather(logits, -1, prefixes)
    attention = torch.softmax(torch.where(inside, position_scores, MASKED), dim=-1)
    p_repeat = torch.zeros_like(logits).scatter_add(-1, prefixes, attention)
    # log P_r on prefix items; log 1 = 0 elsewhere (clamped: an attention sum that underflows is never log 0)
    log_p_repeat = (p_repeat * in_prefix + outside).clamp_min(torch.finfo(logits.dtype).tiny).log()
    # each item's own branch exactly (the other branch times 0: no cancellation against MASKED)
    scores = in_prefix * (log_repeat + log_p_repeat) + outside * (log_explore + log_p_explore)
    scores[..., 0] = float("-inf")  # padding, as mask_padding
    return scores


def mask_padding(scores: torch.Tensor) -> torch.Tensor:
    """Scores with the padding column set to -inf, so id 0 can never rank above a real item."""
    scores = scores.clone()
    scores[..., 0] = float("-inf")
    return scores


def config_from_state_dict(state: dict, n_items: int, dropout: float = 0.2) -> ModelConfig:
    """Read E, H and layers from a checkpoint's tensor shapes; refuse one that does not fit."""
    try:
        vocab, embed_dim = state["embedding.weight"].shape
        hidden_dim = state["gru.weight_hh_l0"].shape[1]
    except KeyError as err:
        raise BenchError(
            f"checkpoint has no tensor {err.args[0]!r}; found {sorted(state)[:6]}",
            "give a GRURecommender state_dict (embedding.weight, gru.*, output.*)",
        ) from None
    n_layers = sum(1 for key in state if key.startswith("gru.weight_ih_l"))
    repeat = any(key.startswith("repeat.") for key in state)  # a repeat-aware model (RepeatHead)
    config = ModelConfig(n_items, int(embed_dim), int(hidden_dim), n_layers, dropout, repeat)
    expected = GRURecommender(config).state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise BenchError(f"checkpoint lacks tensor {key!r}", "give a complete GRURecommender state_dict")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise BenchError(
                f"checkpoint tensor {key!r} has shape {tuple(state[key].shape)} but this dataset "
                f"needs {tuple(tensor.shape)} ({n_items} items + padding)",
                "use a checkpoint trained on this dataset's vocabulary",
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise BenchError(f"checkpoint has unexpected tensors {extra[:4]}", "give a GRURecommender state_dict")
    return config


def read_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """(state_dict, the file's top-level dict) from ``path``: a state_dict, or a dict holding one
    under ``state_dict`` or ``model_state_dict`` (beside it, e.g., a vocabulary)."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"checkpoint {path} not found", "check the path")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt or non-torch file
        raise BenchError(f"cannot read checkpoint {path}: {type(err).__name__}", "give a torch state_dict file") from None
    if not isinstance(loaded, dict):
        raise BenchError(f"checkpoint {path} holds a {type(loaded).__name__}, not a state_dict", "save model.state_dict()")
    state = loaded
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if "model_state_dict" in state:
        state = state["model_state_dict"]
    return state, loaded


@contextmanager
def deterministic(module: nn.Module) -> Iterator[None]:
    """Train mode with every dropout off (Dropout modules in eval, RNN inter-layer dropout 0)."""
    was_training = module.training
    rnn_dropout = {rnn: rnn.dropout for rnn in module.modules() if isinstance(rnn, nn.RNNBase)}
    module.train()
    for child in module.modules():
        if isinstance(child, nn.modules.dropout._DropoutNd):
            child.eval()
    for rnn in rnn_dropout:
        rnn.dropout = 0.0
    try:
        yield
    finally:
        for rnn, p in rnn_dropout.items():
            rnn.dropout = p
        module.train(was_training)
