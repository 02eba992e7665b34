"""GRURecommender's training forward on the compiled GRU kernel (baselines/fused.py), for GRU4Rec's global training.

The whole batch is one task of the kernel's shared-weights path: its rows sorted longest first, the
input projections formed once per distinct item of the batch (one matrix product), each row's
recurrence run with W_hh hot in cache and the gate work fused. Torch's packed ``nn.GRU`` on CPU
spends most of a batch zero-filling and in per-step small products (measured: ``bench perf
baselines``, gru4rec vs gru4rec-fused). The same function as ``GRURecommender.forward`` within
float tolerance (tests/test_fused_forward.py): dropout draws the same masks, so training follows
the same path. First-order only (no double backward), so it is used for GRU4Rec's own training and
nowhere else; a model it cannot run (more layers, not CPU float32, the kernel switched off by
BENCH_FUSED_GRU=0 or not built) trains on torch's path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from baselines.fused import FusedGRU, KernelSide
from baselines.fused import load as load_fused
from baselines.model import GRURecommender

Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def kernel_fits(model: nn.Module) -> bool:
    """Can ``fused_logits`` run this model: a one-layer GRURecommender, float32 on CPU, the kernel built?"""
    if not isinstance(model, GRURecommender) or model.config.n_layers != 1:
        return False
    weight = model.gru.weight_hh_l0
    return weight.device.type == "cpu" and weight.dtype == torch.float32 and load_fused() is not None


def fused_features(model: GRURecommender, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``model.features(prefixes, lengths)`` on the kernel: the GRU's last state at each true end, after dropout [B, H]."""
    sorted_lengths, order = torch.sort(lengths.cpu(), descending=True, stable=True)
    items, slots = torch.unique(prefixes[order], return_inverse=True)  # padding 0 is read by no step
    side = KernelSide(slots.unsqueeze(0).contiguous(), sorted_lengths.unsqueeze(0).contiguous())
    distinct = torch.arange(len(items))
    gru = model.gru
    weights = (gru.weight_ih_l0, gru.bias_ih_l0, gru.weight_hh_l0, gru.bias_hh_l0)
    needs_backward = torch.is_grad_enabled() and any(w.requires_grad for w in (model.embedding.weight, *weights))
    rows = model.embedding.weight[items]
    state = FusedGRU.apply(side, distinct.unsqueeze(0), distinct, needs_backward, rows, *(w.unsqueeze(0) for w in weights))[0]
    unsorted = torch.empty_like(state).index_copy(0, order, state)  # differentiable: back to the batch's order
    return model.dropout(unsorted)


def fused_logits(model: GRURecommender, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``model(prefixes, lengths)`` on the kernel: logits [B, n_items + 1] (a repeat-aware model's
    head applied after the features, as ``GRURecommender.scores``)."""
    return model.scores(fused_features(model, prefixes, lengths), prefixes, lengths)


def training_forward(model: nn.Module) -> Forward:
    """The forward a training step calls: ``fused_logits`` where the kernel fits the model, else the model itself."""
    if kernel_fits(model):
        return lambda prefixes, lengths: fused_logits(model, prefixes, lengths)
    return model
