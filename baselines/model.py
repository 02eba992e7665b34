"""GRURecommender: the one sequence model every neural method in the suite uses.

Embedding(n_items + 1, E, padding_idx=0) -> GRU(E, H, layers) over packed sequences (true
lengths respected) -> dropout -> Linear(H, n_items + 1). Item ids are 1..n_items; id 0 is
padding and its logit is never a prediction (``mask_padding``). Parameter names match the
seed's ``gru_global.pth`` (``embedding.weight``, ``gru.weight_ih_l0``, ..., ``output.bias``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from bench.errors import BenchError


@dataclass(frozen=True)
class ModelConfig:
    n_items: int  # real items; the vocabulary is ids 0 (padding) .. n_items
    embed_dim: int = 64
    hidden_dim: int = 128
    n_layers: int = 1
    dropout: float = 0.2

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

    def forward(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_items + 1] for the next item after each prefix.

        ``prefixes`` is [B, T] right-padded with 0; ``lengths`` [B] holds the true lengths (>= 1).
        The last hidden state is taken at each sequence's true end (packed sequence).
        """
        embedded = self.embedding(prefixes)
        packed = nn.utils.rnn.pack_padded_sequence(
            embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, hidden = self.gru(packed)
        return self.output(self.dropout(hidden[-1]))


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
    config = ModelConfig(n_items, int(embed_dim), int(hidden_dim), n_layers, dropout)
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


def load_checkpoint(path: str | Path, n_items: int, dropout: float = 0.2) -> GRURecommender:
    """A GRURecommender with weights from ``path`` (a state_dict, or a dict holding one)."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"checkpoint {path} not found", "check the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt or non-torch file
        raise BenchError(f"cannot read checkpoint {path}: {type(err).__name__}", "give a torch state_dict file") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if isinstance(state, dict) and "model_state_dict" in state:
        state = state["model_state_dict"]
    config = config_from_state_dict(state, n_items, dropout)
    model = GRURecommender(config)
    model.load_state_dict(state)
    return model


def config_dict(config: ModelConfig) -> dict:
    return asdict(config)
