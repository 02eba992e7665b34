"""Task-batched inner loop: every task of a meta-batch adapted at once, proven equal to per-task l2l.

Each task gets its own copy of the GRURecommender's parameters, stacked on a leading task
dimension ([n, ...]); one batched forward and one backward per inner step adapt all n copies, since
the summed loss gives each task's slice exactly its own task's gradient. The update is
learn2learn's ``maml_update`` (p <- p + (-lr * g), the same arithmetic as ``MAML.adapt``), applied
to a small module holding the stacked tensors. First-order only, like the suite's ``MAML(...,
first_order=True)``: gradients are taken without ``create_graph``, so the adapted parameters are the
meta-parameters plus constants and the query loss's gradient flows back to the meta-parameters
through the stacking (expand backward = sum over tasks).

Where the time went, and what this module does about it (profiled with torch.profiler):
- Embedding: one lookup into a flat table of only the rows each task uses (keys
  ``task * vocab + item``, made unique once per meta-batch), gathered from the meta embedding, so
  no dense [tasks, items, E] table or gradient is ever built. A row a task does not use would
  never change in the per-task path either (its gradient is zero), so this is exact.
- GRU: written with batched matrix products; input projections for all time steps in one bmm,
  then one small bmm per step; length masks hold each sequence's state after its end (what a
  packed ``nn.GRU`` does). Padding positions get exactly zero gradient through the mask.
- Output layer: [tasks, V, H] per task (dense; every logit enters the softmax), one baddbmm.
Dropout (meta-training, model in train mode) is applied to the last hidden state as in
``GRURecommender.forward``, with the module's p, but masks are drawn for the whole stacked batch,
so they are not the per-task path's masks bit for bit; with p = 0 or at evaluation (dropout off)
the two engines agree to float rounding (tests/test_batched.py).
Multi-layer GRUs get inter-layer dropout in train mode, as ``nn.GRU`` does.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from learn2learn.algorithms.maml import maml_update
from torch import nn

# Tasks adapted together at evaluation: bounds memory (the stacked output layer is
# tasks x V x H floats, and a few copies live at once).
EVAL_CHUNK = 64


class StackedBatch(NamedTuple):
    """A meta-batch's inputs, stacked over tasks and mapped to flat embedding rows."""

    support_rows: torch.Tensor  # [n, K, Ts] index into the flat row table
    support_mask: torch.Tensor  # [Ts, n, K, 1] bool: position inside the true length
    support_labels: torch.Tensor  # [n, K]
    query_rows: torch.Tensor  # [n, Q, Tq]
    query_mask: torch.Tensor  # [Tq, n, Q, 1]
    query_labels: torch.Tensor  # [n, Q]
    row_items: torch.Tensor  # [R] item id of each flat row (gathered from the meta embedding)


def _pad_stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    width = max(int(t.shape[-1]) for t in tensors)
    return torch.stack([F.pad(t, (0, width - int(t.shape[-1]))) for t in tensors])


def _step_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    steps = torch.arange(width, device=lengths.device)
    return (steps.view(width, 1, 1) < lengths.unsqueeze(0)).unsqueeze(-1)


def stack_tasks(tasks: Sequence, vocab_size: int) -> StackedBatch:
    """Stack tasks (all with the same K and Q) and map (task, item) pairs to flat table rows."""
    if len({int(t.support_labels.shape[0]) for t in tasks}) != 1 or len({int(t.query_labels.shape[0]) for t in tasks}) != 1:
        raise ValueError("task-batched adaptation needs the same K and Q in every task of a batch")
    support = _pad_stack([t.support_prefixes for t in tasks])
    query = _pad_stack([t.query_prefixes for t in tasks])
    support_lengths = torch.stack([t.support_lengths for t in tasks]).to(support.device)
    query_lengths = torch.stack([t.query_lengths for t in tasks]).to(query.device)
    n = support.shape[0]
    offsets = torch.arange(n, device=support.device).view(n, 1, 1) * vocab_size
    keys = torch.cat([(support + offsets).flatten(), (query + offsets).flatten()])
    unique_keys, inverse = torch.unique(keys, return_inverse=True)
    split = support.numel()
    return StackedBatch(
        support_rows=inverse[:split].view_as(support),
        support_mask=_step_mask(support_lengths, support.shape[-1]),
        support_labels=torch.stack([t.support_labels for t in tasks]),
        query_rows=inverse[split:].view_as(query),
        query_mask=_step_mask(query_lengths, query.shape[-1]),
        query_labels=torch.stack([t.query_labels for t in tasks]),
        row_items=unique_keys % vocab_size,
    )


def batched_gru_layer(
    inputs: torch.Tensor,
    mask: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
    keep_outputs: bool = False,
):
    """One GRU layer over [n, B, T, In] with per-task weights [n, 3H, In], [n, 3H, H], [n, 3H].

    Same equations as ``nn.GRU`` (r, z, n gate order; the reset gate scales W_hn h + b_hn).
    ``mask`` [T, n, B, 1] holds each sequence's state once its length is reached, so the result
    is the state at the true end, as with a packed sequence. Returns the last state [n, B, H]
    (and the per-step outputs [n, B, T, H] when ``keep_outputs``).
    """
    n, batch, width, in_dim = inputs.shape
    hidden = weight_hh.shape[-1]
    # All time steps' input projections in one bmm; time-major so each step's slice is contiguous.
    projected = torch.baddbmm(bias_ih.unsqueeze(1), inputs.reshape(n, batch * width, in_dim), weight_ih.transpose(1, 2))
    projected = projected.view(n, batch, width, 3 * hidden).permute(2, 0, 1, 3).contiguous()
    weight_hh_t = weight_hh.transpose(1, 2)
    bias_hh = bias_hh.unsqueeze(1)
    state = inputs.new_zeros(n, batch, hidden)
    outputs = []
    for step in range(width):
        gates_x = projected[step]
        gates_h = torch.baddbmm(bias_hh, state, weight_hh_t)
        reset_update = torch.sigmoid(gates_x[..., : 2 * hidden] + gates_h[..., : 2 * hidden])
        reset, update = reset_update[..., :hidden], reset_update[..., hidden:]
        candidate = torch.tanh(gates_x[..., 2 * hidden :] + reset * gates_h[..., 2 * hidden :])
        new_state = candidate + update * (state - candidate)
        state = torch.where(mask[step], new_state, state)
        if keep_outputs:
            outputs.append(state)
    if keep_outputs:
        return state, torch.stack(outputs, dim=2)
    return state


class StackedParams(nn.Module):
    """Per-task copies of a GRURecommender's parameters, [n, ...] each, as a module for maml_update.

    The tensors are not leaf Parameters (they carry the graph back to the meta-parameters), so they
    are placed in ``_parameters`` directly, the way learn2learn's own ``update_module`` does.
    """

    def __init__(self, tensors: dict[str, torch.Tensor], n_layers: int):
        super().__init__()
        self.n_layers = n_layers
        for name, tensor in tensors.items():
            self._parameters[name] = tensor

    def forward(self, rows: torch.Tensor, mask: torch.Tensor, dropout: float, training: bool) -> torch.Tensor:
        """Logits [n, B, V] for prefixes given as flat embedding rows [n, B, T]."""
        layer_input = F.embedding(rows, self._parameters["embedding_rows"])
        for layer in range(self.n_layers):
            last = layer == self.n_layers - 1
            result = batched_gru_layer(
                layer_input,
                mask,
                self._parameters[f"weight_ih_l{layer}"],
                self._parameters[f"weight_hh_l{layer}"],
                self._parameters[f"bias_ih_l{layer}"],
                self._parameters[f"bias_hh_l{layer}"],
                keep_outputs=not last,
            )
            if last:
                state = result
            else:
                layer_input = F.dropout(result[1], dropout, training)
        state = F.dropout(state, dropout, training)
        weight = self._parameters["output_weight"]
        return torch.baddbmm(self._parameters["output_bias"].unsqueeze(1), state, weight.transpose(1, 2))


def _task_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum over tasks of each task's mean cross-entropy (so each task's slice gets its own gradient)."""
    n, batch, vocab = logits.shape
    return F.cross_entropy(logits.reshape(n * batch, vocab), labels.reshape(-1), reduction="sum") / batch


class BatchedEngine:
    """Task-batched first-order MAML inner loop for GRURecommender (same contract as PerTaskEngine)."""

    name = "batched"

    def _stacked(self, model: nn.Module, batch: StackedBatch, n: int, detach: bool) -> StackedParams:
        """Per-task copies as expanded views of the meta-parameters (no copy until the first update)."""

        def source(tensor: torch.Tensor) -> torch.Tensor:
            if not detach:
                return tensor
            return tensor.detach().requires_grad_(tensor.requires_grad)

        gru = model.gru
        n_layers = gru.num_layers
        if gru.bidirectional or not gru.bias or getattr(gru, "proj_size", 0):
            raise ValueError("the batched engine supports GRURecommender's unidirectional, biased GRU only")
        tensors = {"embedding_rows": source(model.embedding.weight)[batch.row_items]}
        for layer in range(n_layers):
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                meta = source(getattr(gru, f"{kind}_l{layer}"))
                tensors[f"{kind}_l{layer}"] = meta.expand(n, *meta.shape)
        for kind in ("weight", "bias"):
            meta = source(getattr(model.output, kind))
            tensors[f"output_{kind}"] = meta.expand(n, *meta.shape)
        return StackedParams(tensors, n_layers)

    @staticmethod
    def _adapt(stacked: StackedParams, batch: StackedBatch, lr: float, inner_steps: int, dropout: float, training: bool) -> StackedParams:
        """``inner_steps`` first-order steps on the support sets, all tasks at once (l2l's maml_update)."""
        for _ in range(inner_steps):
            loss = _task_loss(stacked(batch.support_rows, batch.support_mask, dropout, training), batch.support_labels)
            params = list(stacked.parameters())
            differentiable = [p for p in params if p.requires_grad]
            grads = iter(torch.autograd.grad(loss, differentiable))
            # Frozen tensors (requires_grad False) get None: left unchanged, as with allow_nograd.
            stacked = maml_update(stacked, lr, [next(grads) if p.requires_grad else None for p in params])
        return stacked

    def meta_gradient(self, maml, tasks: Sequence, inner_steps: int) -> float:
        """Mean query loss over ``tasks``; adds d(mean query loss)/d(meta params) into their .grad."""
        model = maml.module
        batch = stack_tasks(tasks, model.embedding.num_embeddings)
        n = len(tasks)
        dropout = float(model.dropout.p) if model.training else 0.0
        stacked = self._stacked(model, batch, n, detach=False)
        stacked = self._adapt(stacked, batch, maml.lr, inner_steps, dropout, model.training)
        query_loss = _task_loss(stacked(batch.query_rows, batch.query_mask, dropout, model.training), batch.query_labels) / n
        query_loss.backward()
        return float(query_loss.detach())

    def query_scores(self, maml, tasks: Sequence, inner_steps: int) -> torch.Tensor:
        """Query logits [n, Q, n_items + 1] after ``inner_steps`` adaptation steps (0: zero-shot); detached."""
        model = maml.module
        vocab = model.embedding.num_embeddings
        chunks = []
        for start in range(0, len(tasks), EVAL_CHUNK):
            part = tasks[start : start + EVAL_CHUNK]
            batch = stack_tasks(part, vocab)
            with torch.enable_grad():
                stacked = self._stacked(model, batch, len(part), detach=True)
                stacked = self._adapt(stacked, batch, maml.lr, inner_steps, 0.0, False)
            with torch.no_grad():
                chunks.append(stacked(batch.query_rows, batch.query_mask, 0.0, False).detach())
        return torch.cat(chunks)
