"""GRURecommender: the one sequence model every neural method in the suite uses.

Embedding(n_items + 1, E, padding_idx=0) -> GRU(E, H, layers) over packed sequences (true
lengths respected) -> dropout -> Linear(H, n_items + 1). Item ids are 1..n_items; id 0 is
padding and its logit is never a prediction (``mask_padding``). Parameter names match the
seed's ``gru_global.pth`` (``embedding.weight``, ``gru.weight_ih_l0``, ..., ``output.bias``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bench.core.errors import BenchError


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
        return self.output(self.features(prefixes, lengths))

    def features(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The output layer's input [B, H]: the GRU's last state at each true end, after dropout
        (the body that ANIL shares across tasks; ``forward`` is ``output(features)``)."""
        embedded = self.embedding(prefixes)
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, hidden = self.gru(packed)
        return self.dropout(hidden[-1])


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
