"""Meta-SGD, task-batched: the batched MAML engine (meta/batched.py) with per-entry inner rates.

The same stacked tensors, packed GRU and step loop as MAML's batched path; only the update
differs: learn2learn's ``meta_sgd_update`` arithmetic ``p - rate * g``, with each task's rates the
meta rates expanded over tasks (the embedding's gathered at the rows the batch uses), so the query
loss's gradient reaches the rates (first-order: g is a constant) and sums over tasks. The output
weight's steps can no longer be kept as low-rank factors (an elementwise rate breaks the rank-B
form), so their sum D = sum over steps of G^T h is kept dense per task, [n, V, H], and the adapted
weight is W0 - R * D (R: the output weight's rates).

That dense D is Meta-SGD's extra cost over MAML (25 MB at meta-batch 32, V 1519, H 128): each step's
products read it and, on CPU, every fresh [n, V, H] temporary page-faults (~10 ms). So D is one buffer
updated in place, and the output product runs task by task (``RatedOutputSteps``): a step's G^T h is
added into D_t, R * D_t formed in cache and used at once, and the rates' gradient (query side only:
inner steps are first-order, so the support side's product never reaches R) summed task by task, with
no [n, V, H] temporary. The other tensors' steps are in place after the first (as ``update_in_place``).
A repeat-aware model's head tensors (REPEAT_TENSORS) have their own per-entry rates, as every parameter.
Equal to per-task learn2learn within float tolerance (tests/test_arms.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from baselines.fused import shared_over_tasks
from meta.batched import EVAL_CHUNK, BatchedMAML, StackedBatch, StackedParams, stack_tasks, task_loss, unstack_scores
from meta.batched.params import REPEAT_TENSORS


def apply_pending(steps: torch.Tensor, pending: tuple[torch.Tensor, torch.Tensor] | None, task: int) -> None:
    """D_task += G_task^T h_task for a recorded step not yet added (``pending``: (G^T [n, V, B], h [n, B, H]))."""
    if pending is not None:
        steps[task].addmm_(pending[0][task], pending[1][task])


class RatedOutputSteps(torch.autograd.Function):
    """``bmm(features, (rate * steps)^T)``, task by task with that task's R * D_t [V, H] in cache
    (formed, used, dropped: no [n, V, H] temporary), after adding a pending step into ``steps`` (D,
    constant, updated in place). The features' gradient as autograd's; the rate's [V, H] summed over
    tasks when asked (the query side)."""

    @staticmethod
    def forward(ctx, features, rate, steps, pending):
        n, rows, _ = features.shape
        out = features.new_empty(n, rows, rate.shape[0])
        rated = torch.empty_like(rate)
        for task in range(n):
            apply_pending(steps, pending, task)
            torch.mul(rate, steps[task], out=rated)
            torch.mm(features[task], rated.t(), out=out[task])
        ctx.save_for_backward(features, rate, steps)
        return out

    @staticmethod
    def backward(ctx, grad):
        features, rate, steps = ctx.saved_tensors
        need_features, need_rate = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_features = torch.empty_like(features) if need_features else None
        grad_rate = torch.zeros_like(rate) if need_rate else None
        rated = torch.empty_like(rate)
        for task in range(steps.shape[0]):
            if need_features:
                torch.mul(rate, steps[task], out=rated)
                torch.mm(grad[task], rated, out=grad_features[task])
            if need_rate:
                grad_rate.addcmul_(grad[task].t() @ features[task], steps[task])
        return grad_features, grad_rate, None, None


class RatedStackedParams(StackedParams):
    """StackedParams whose inner steps use per-entry rates; the output weight's steps kept dense."""

    def __init__(self, stacked: StackedParams, rates: dict[str, torch.Tensor], output_rate: torch.Tensor):
        super().__init__(dict(stacked._parameters), stacked.output_weight, stacked.n_layers, 0.0, stacked.layer_dropout)
        self.rates = rates  # name -> [n, ...] (graph back to the meta rates)
        self.__dict__["output_rate"] = output_rate  # [V, H]; kept out of _parameters (a Parameter would register)
        self.output_steps: torch.Tensor | None = None  # D [n, V, H], constant, updated in place
        self.pending: tuple[torch.Tensor, torch.Tensor] | None = None  # the last step's (G^T, h), added at the next forward

    def forward(self, batch: StackedBatch, side: str, dropout: float, training: bool):
        logits, features = super().forward(batch, side, dropout, training)  # W0 and the adapted bias
        if self.output_steps is not None:
            # inner steps are first-order: only the query side's product carries R's graph
            rate = self.output_rate if side == "query" else self.output_rate.detach()
            logits = logits - RatedOutputSteps.apply(features, rate, self.output_steps, self.pending)
            self.pending = None
        return logits, features

    def record_output_step(self, features: torch.Tensor, logit_grads: torch.Tensor) -> None:
        grads_t, features = logit_grads.detach().transpose(1, 2), features.detach()
        if self.output_steps is None:
            self.output_steps = torch.bmm(grads_t, features)
        else:
            self.settle()
            self.pending = (grads_t, features)

    def settle(self) -> None:
        """Add a pending step into D now."""
        if self.pending is not None:
            for task in range(self.output_steps.shape[0]):
                apply_pending(self.output_steps, self.pending, task)
            self.pending = None

    def dense_output_weight(self) -> torch.Tensor:
        n = self._parameters["output_bias"].shape[0]
        if self.output_steps is None:
            return self.output_weight.expand(n, *self.output_weight.shape)
        self.settle()
        return self.output_weight - self.output_rate * self.output_steps


def stacked_with_rates(metasgd, batch: StackedBatch, n: int, detach: bool) -> RatedStackedParams:
    """Per-task copies of the parameters and of their Meta-SGD rates (rates detached with ``detach``)."""
    model = metasgd.module
    stacked = BatchedMAML()._stacked(model, batch, n, detach=detach, lr=0.0)
    by_name = dict(zip((name for name, _ in model.named_parameters()), metasgd.lrs))

    def source(rate: torch.Tensor) -> torch.Tensor:
        return rate.detach() if detach else rate

    rates = {"embedding_rows": source(by_name["embedding.weight"])[batch.row_items]}
    for name in stacked._parameters:
        if name.startswith(("weight_", "bias_")) or name in REPEAT_TENSORS:  # the GRU's and a repeat head's (each its own rates)
            rate = source(by_name[REPEAT_TENSORS.get(name, f"gru.{name}")])
            rates[name] = rate.expand(n, *rate.shape)
    rates["output_bias"] = source(by_name["output.bias"]).expand(n, *by_name["output.bias"].shape)
    return RatedStackedParams(stacked, rates, source(by_name["output.weight"]))


def adapt_with_rates(stacked: RatedStackedParams, batch: StackedBatch, inner_steps: int, dropout: float, training: bool) -> RatedStackedParams:
    """``inner_steps`` first-order steps p <- p - rate * g on the support sets, all tasks at once
    (a frozen tensor, requires_grad False, gets no gradient and keeps its value)."""
    for _ in range(inner_steps):
        logits, features = stacked(batch, "support", dropout, training)
        loss = task_loss(stacked.scores(batch, "support", logits, features), batch.support_labels)
        names = [name for name, p in stacked._parameters.items() if p.requires_grad]
        output_trained = stacked.output_weight.requires_grad
        grads = torch.autograd.grad(loss, [stacked._parameters[name] for name in names] + ([logits] if output_trained else []))
        if output_trained:
            stacked.record_output_step(features, grads[-1])
        for name, grad in zip(names, grads):
            tensor, step = stacked._parameters[name], stacked.rates[name] * grad
            # in place once the task's own copy exists (as update_in_place): no fresh [n, ...] tensor per step
            stacked._parameters[name] = tensor - step if shared_over_tasks(tensor) else tensor.sub_(step)
    return stacked


class BatchedMetaSGD:
    """Meta-SGD's inner loop for the batched engine (same contract as PerTaskEngine's)."""

    def meta_gradient(self, metasgd, tasks: Sequence, inner_steps: int) -> float:
        model = metasgd.module
        batch = stack_tasks(tasks, model.embedding.num_embeddings)
        dropout = float(model.dropout.p) if model.training else 0.0
        stacked = adapt_with_rates(stacked_with_rates(metasgd, batch, len(tasks), detach=False), batch, inner_steps, dropout, model.training)
        logits, features = stacked(batch, "query", dropout, model.training)
        query_loss = task_loss(stacked.scores(batch, "query", logits, features), batch.query_labels) / len(tasks)
        query_loss.backward()
        return float(query_loss.detach())

    def query_scores(self, metasgd, tasks: Sequence, inner_steps: int) -> torch.Tensor:
        model = metasgd.module
        chunks = []
        for start in range(0, len(tasks), EVAL_CHUNK):
            part = tasks[start : start + EVAL_CHUNK]
            batch = stack_tasks(part, model.embedding.num_embeddings)
            with torch.enable_grad():
                stacked = adapt_with_rates(stacked_with_rates(metasgd, batch, len(part), detach=True), batch, inner_steps, 0.0, False)
            with torch.no_grad():
                logits, features = stacked(batch, "query", 0.0, False)
                chunks.append(unstack_scores(batch, stacked.scores(batch, "query", logits, features).detach()))
        return torch.cat(chunks)
