"""Notebook 08's inner loop, reproduced with its defects: a reference to measure, NOT a method to use.

This is a faithful re-implementation of cells 08-07/08-08 of the seed notebook
(../shared/seed/notebook-08-warmstart-maml-xuetangx.txt), kept so the paper can show what the
notebook's defects cost (engine "notebook" for speed in ``bench perf``; method "maml-notebook" for
accuracy). Its defects, reproduced on purpose (see ../shared/notes/seed-protocol.md):
1. The functional GRU computes the reset gate and never uses it:
   ``n = tanh(W_in x + b_in + W_hn h + b_hn)`` instead of ``tanh(W_in x + b_in + r * (W_hn h + b_hn))``,
   so weights trained in ``nn.GRU`` (a GRU4Rec warm start) behave differently in the inner loop.
2. No length masking: the sequences are packed and unpacked again, then the recurrence runs over
   the zero-filled padding, so a short prefix's final state is not its state at its true end.
3. ``create_graph=not use_second_order`` with ``use_second_order=False``: the run labelled
   first-order builds the second-order graph (slow; not what the paper says).
4. No dropout anywhere in the functional forward (the model's Dropout is bypassed).
Where the notebook cannot run at all we do the least that makes it run, and say so:
- its validation and test adaptation sit inside ``torch.no_grad()``, where ``torch.autograd.grad``
  raises (the cloned parameters do not require grad); we adapt with grad enabled and, as the
  notebook's code intends there, without ``create_graph``;
- a frozen embedding (``requires_grad=False``) makes its ``torch.autograd.grad`` over all
  parameters raise; we differentiate only parameters that require grad and keep the rest fixed.
The meta-loss is back-propagated per task (``query_loss / n``) rather than summed over the batch
and back-propagated once: the same gradient, without holding 32 second-order graphs at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.errors import BenchError


def notebook_forward(params: dict[str, torch.Tensor], prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Logits [B, V], exactly as the notebook's ``functional_forward`` computes them (defects included)."""
    embedded = F.embedding(prefixes, params["embedding.weight"], padding_idx=0)
    packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
    weight_ih = params["gru.weight_ih_l0"]
    weight_hh = params["gru.weight_hh_l0"]
    bias_ih = params["gru.bias_ih_l0"]
    bias_hh = params["gru.bias_hh_l0"]
    # Unpacking zero-fills every position past a sequence's length, and the loop below runs over them.
    unpacked, _ = nn.utils.rnn.pad_packed_sequence(packed, batch_first=True)
    h = torch.zeros(prefixes.size(0), weight_hh.size(1), device=prefixes.device)
    for t in range(unpacked.size(1)):
        inp = unpacked[:, t, :]
        gates = inp @ weight_ih.t() + bias_ih + h @ weight_hh.t() + bias_hh
        r, z, n = gates.chunk(3, dim=1)
        r = torch.sigmoid(r)  # computed, never used (defect 1)
        z = torch.sigmoid(z)
        n = torch.tanh(n)
        h = (1 - z) * n + z * h
    return h @ params["output.weight"].t() + params["output.bias"]


def _check(model: nn.Module) -> None:
    if model.gru.num_layers != 1:
        raise BenchError(
            "the notebook's functional GRU reads only layer 0 (gru.*_l0)",
            "use n_layers=1 with the notebook engine / maml-notebook",
        )
    if getattr(model, "repeat", None) is not None:  # its forward has no repeat head: never ignore one silently
        raise BenchError(
            "the notebook's functional forward has no repeat head (a repeat-aware model, e.g. init gru4rec-repeat)",
            "use maml with engine batched or per-task for a repeat-aware model",
        )


def _adapt(params: dict[str, torch.Tensor], task, lr: float, inner_steps: int, create_graph: bool) -> dict[str, torch.Tensor]:
    """The notebook's inner loop: plain SGD steps on the support loss through ``notebook_forward``."""
    names = [name for name, p in params.items() if p.requires_grad]
    for _ in range(inner_steps):
        support_logits = notebook_forward(params, task.support_prefixes, task.support_lengths)
        support_loss = F.cross_entropy(support_logits, task.support_labels)
        grads = dict(zip(names, torch.autograd.grad(support_loss, [params[n] for n in names], create_graph=create_graph)))
        params = {name: (p - lr * grads[name] if name in grads else p) for name, p in params.items()}
    return params


class NotebookEngine:
    """Notebook 08's loop (defects reproduced; second-order graph in meta-training)."""

    name = "notebook"

    def meta_gradient(self, maml, tasks: Sequence, inner_steps: int) -> float:
        """Mean query loss; adds the notebook's (second-order) meta-gradient into .grad."""
        model = maml.module
        _check(model)
        total = 0.0
        for task in tasks:
            params = {name: p.clone() for name, p in model.named_parameters()}
            params = _adapt(params, task, maml.lr, inner_steps, create_graph=True)  # defect 3
            query_loss = F.cross_entropy(notebook_forward(params, task.query_prefixes, task.query_lengths), task.query_labels)
            (query_loss / len(tasks)).backward()
            total += float(query_loss.detach())
        return total / len(tasks)

    def query_scores(self, maml, tasks: Sequence, inner_steps: int) -> torch.Tensor:
        """Detached query logits [n, Q, V] after the notebook's evaluation adaptation (no create_graph)."""
        model = maml.module
        _check(model)
        scores = []
        for task in tasks:
            with torch.enable_grad():
                params = {name: p.detach().clone().requires_grad_(p.requires_grad) for name, p in model.named_parameters()}
                params = _adapt(params, task, maml.lr, inner_steps, create_graph=False)
            with torch.no_grad():
                scores.append(notebook_forward(params, task.query_prefixes, task.query_lengths))
        return torch.stack(scores)
