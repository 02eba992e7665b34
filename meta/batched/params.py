"""The stacked per-task parameters (StackedParams: its forward dispatches one-layer GRUs to the
compiled kernel or SegmentedGRU, more layers to the packed path; the output weight kept as the
meta weight plus low-rank steps), the in-place update and the summed per-task loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from baselines.fused import FusedGRU
from baselines.fused import load as load_fused
from baselines.fused import shared_over_tasks as _shared
from baselines.model import repeat_mixture
from meta.batched.layout import StackedBatch
from meta.batched.packed import batched_gru_layer
from meta.batched.segmented import SegmentedGRU

# A repeat-aware model's head tensors (baselines/model.py RepeatHead): stacked name -> the model's parameter name.
REPEAT_TENSORS = {
    "repeat_gate_weight": "repeat.gate.weight",
    "repeat_gate_bias": "repeat.gate.bias",
    "repeat_recency": "repeat.recency",
    "repeat_logit_scale": "repeat.logit_scale",
}


class StackedParams(nn.Module):
    """Per-task copies of a GRURecommender's parameters, [n, ...] each, as a module (updated by update_in_place).

    The tensors are not leaf Parameters (they carry the graph back to the meta-parameters), so they
    are placed in ``_parameters`` directly, the way learn2learn's own ``update_module`` does.

    The output weight is the exception: per task it would be a dense [n, V, H] tensor, and
    ``maml_update``'s ``p + (-lr * g)`` allocates two fresh ones per step (on CPU those large
    allocations page-fault: ~10 ms each at V=1519, the largest cost in the first profile). A
    first-order step changes it by ``-lr * G^T h`` (G: the task's logit gradients [B, V], h: its
    final states [B, H]), a rank-B update, so it is kept as the shared meta weight W0 [V, H] plus
    the steps' factors: ``h W_t^T = h W0^T - lr * (h Hs^T) Gs``. The same numbers up to rounding,
    and the meta weight's gradient (first-order: the factors are constants) is the usual one.
    """

    def __init__(self, tensors: dict[str, torch.Tensor], output_weight: torch.Tensor, n_layers: int, lr: float, layer_dropout: float = 0.0):
        super().__init__()
        self.n_layers = n_layers
        self.layer_dropout = layer_dropout  # nn.GRU's inter-layer dropout p (n_layers > 1)
        self.lr = lr
        # [V, H] shared meta weight; kept out of _parameters (assigning an nn.Parameter would
        # register it, and update_in_place would then update it densely as well).
        self.__dict__["output_weight"] = output_weight
        self.step_states: torch.Tensor | None = None  # [n, steps * B, H] final states of past steps
        self.step_logit_grads: torch.Tensor | None = None  # [n, steps * B, V] their logit gradients
        self.fused = True  # the compiled kernel (baselines/fused.py) where it loads, else SegmentedGRU
        for name, tensor in tensors.items():
            self._parameters[name] = tensor

    def forward(self, batch: StackedBatch, side: str, dropout: float, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [n, B, V], the output layer's input [n, B, H]) for one side ("support" or
        "query") of the stacked batch. One layer: the compiled kernel or SegmentedGRU over the side's
        SideLayout; more layers: the packed [n, M] path (batched_gru_layer)."""
        layout = getattr(batch, f"{side}_layout")
        if self.n_layers == 1 and layout is not None:
            parameters = self._parameters
            tensors = [parameters[name] for name in ("embedding_rows", "weight_ih_l0", "bias_ih_l0", "weight_hh_l0", "bias_hh_l0")]
            needs_backward = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
            kernel_side = getattr(batch, f"{side}_kernel")
            if (
                self.fused
                and kernel_side is not None
                and tensors[0].device.type == "cpu"
                and all(t.dtype == torch.float32 for t in tensors)
                and load_fused() is not None
            ):
                state = FusedGRU.apply(kernel_side, layout.row_table, layout.row_slot, needs_backward, *tensors)
            else:
                state = SegmentedGRU.apply(layout, needs_backward, *tensors)
        else:
            state = self._packed_state(getattr(batch, f"{side}_rows"), getattr(batch, f"{side}_mask"), getattr(batch, f"{side}_steps"), training)
        return self._output(state, dropout, training)

    def scores(self, batch: StackedBatch, side: str, logits: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """What the loss and the ranking read for one side: the base ``logits`` [n, B, V], or, with a
        repeat head's tensors stacked (``REPEAT_TENSORS``), the repeat/explore mixture over them
        (baselines/model.py repeat_mixture, each task's own head on its rows' prefixes). The base
        logits stay what the output weight's low-rank steps are formed from (their gradient)."""
        if "repeat_gate_weight" not in self._parameters:
            return logits
        parameters = self._parameters
        return repeat_mixture(
            logits,
            features,
            getattr(batch, f"{side}_prefixes"),
            getattr(batch, f"{side}_lengths"),
            *(parameters[name] for name in REPEAT_TENSORS),
        )

    def _packed_state(self, rows: torch.Tensor, mask: torch.Tensor, steps: tuple, training: bool) -> torch.Tensor:
        """The last layer's state [n, B, H] over the packed [n, M] layout (every layer count)."""
        layer_input = F.embedding(rows, self._parameters["embedding_rows"])
        for layer in range(self.n_layers):
            last = layer == self.n_layers - 1
            result = batched_gru_layer(
                layer_input,
                mask,
                steps,
                self._parameters[f"weight_ih_l{layer}"],
                self._parameters[f"weight_hh_l{layer}"],
                self._parameters[f"bias_ih_l{layer}"],
                self._parameters[f"bias_hh_l{layer}"],
                keep_outputs=not last,
            )
            if last:
                return result
            layer_input = F.dropout(result[1], self.layer_dropout, training)

    def _output(self, state: torch.Tensor, dropout: float, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
        features = F.dropout(state, dropout, training)
        n, batch, hidden = features.shape
        logits = (features.reshape(n * batch, hidden) @ self.output_weight.t()).view(n, batch, -1)
        logits = logits + self._parameters["output_bias"].unsqueeze(1)
        if self.step_states is not None:
            logits = torch.baddbmm(logits, torch.bmm(features, self.step_states.transpose(1, 2)), self.step_logit_grads, alpha=-self.lr)
        return logits, features

    def record_output_step(self, features: torch.Tensor, logit_grads: torch.Tensor) -> None:
        """Add one step's output-weight update -lr * logit_grads^T features (per task), as factors."""
        features, logit_grads = features.detach(), logit_grads.detach()
        if self.step_states is None:
            self.step_states, self.step_logit_grads = features, logit_grads
        else:
            self.step_states = torch.cat([self.step_states, features], dim=1)
            self.step_logit_grads = torch.cat([self.step_logit_grads, logit_grads], dim=1)

    def dense_output_weight(self) -> torch.Tensor:
        """The per-task output weights [n, V, H] (for tests and inspection)."""
        n = self._parameters["output_bias"].shape[0]
        weight = self.output_weight.expand(n, *self.output_weight.shape)
        if self.step_states is None:
            return weight
        return weight - self.lr * torch.bmm(self.step_logit_grads.transpose(1, 2), self.step_states)


def update_in_place(
    stacked: StackedParams,
    lr: float,
    grads: Sequence[torch.Tensor | None],
    row_rates: torch.Tensor | None = None,
    task_rates: torch.Tensor | None = None,
) -> StackedParams:
    """learn2learn's ``maml_update`` arithmetic, p + (-lr * g), without fresh per-task copies.

    ``maml_update`` allocates two new [n, ...] tensors per parameter and step (-lr * g, then the
    sum); on CPU fresh large allocations page-fault. Here the gradient (a fresh tensor autograd
    returned, used nowhere else) is scaled in place and added in place into the stacked tensor,
    which autograd records as one more add on the path to the meta-parameters (first-order: the
    step is a constant, so the query loss's gradient still reaches them unchanged). Only the first
    step of a tensor that is still the expanded meta-weight (``_shared``) makes the per-task copy.
    A None gradient (frozen tensor) leaves the tensor unchanged, as ``maml_update`` does.
    Per-task rates (a TaskPlan): ``task_rates`` [n] scale each task's slice of an [n, ...] tensor and
    ``row_rates`` [R] each flat embedding row (its task's rate) instead of the one ``lr``.
    """
    for (name, tensor), grad in zip(list(stacked._parameters.items()), grads):
        if grad is None:
            continue
        if task_rates is None:
            step = grad.mul_(-lr)
        else:
            rates = row_rates if name == "embedding_rows" else task_rates
            step = grad.mul_(rates.view(-1, *([1] * (grad.dim() - 1))).neg())
        stacked._parameters[name] = tensor + step if _shared(tensor) else tensor.add_(step)
    return stacked


def task_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over tasks of each task's mean cross-entropy (so each task's slice gets its own gradient),
    each times its weight when ``weights`` [n] are given."""
    n, batch, vocab = logits.shape
    losses = F.cross_entropy(logits.reshape(n * batch, vocab), labels.reshape(-1), reduction="none").view(n, batch).mean(1)
    return (losses if weights is None else losses * weights).sum()
