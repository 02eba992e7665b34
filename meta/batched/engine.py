"""The batched MAML engine (BatchedMAML: meta_gradient, query_scores; a TaskPlan's per-task rates,
step counts and loss weights) and the same without the compiled kernel (SegmentedBatchedMAML)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from meta.batched.layout import StackedBatch, stack_tasks, unstack_scores
from meta.batched.params import REPEAT_TENSORS, StackedParams, task_loss, update_in_place
from meta.tasks import TaskPlan

# Tasks adapted together at evaluation: bounds memory (logit gradients are tasks x steps*K x V);
# 32 measured about 10% faster per episode than 64 at the `full` grid's sizes (cache-sized buffers).
EVAL_CHUNK = 32


class BatchedMAML:
    """Task-batched first-order MAML inner loop for GRURecommender (same contract as PerTaskEngine)."""

    name = "batched"
    fused = True  # one-layer GRUs on the compiled kernel (baselines/fused.py) where it loads
    eval_chunk = EVAL_CHUNK  # tasks adapted together by query_scores

    def _stacked(self, model: nn.Module, batch: StackedBatch, n: int, detach: bool, lr: float) -> StackedParams:
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
        bias = source(model.output.bias)
        tensors["output_bias"] = bias.expand(n, *bias.shape)
        if getattr(model, "repeat", None) is not None:  # the repeat head's tensors, per task like the rest
            named = dict(model.named_parameters())
            for name, parameter in REPEAT_TENSORS.items():
                meta = source(named[parameter])
                tensors[name] = meta.expand(n, *meta.shape)
        stacked = StackedParams(tensors, source(model.output.weight), n_layers, lr, float(gru.dropout))
        stacked.fused = self.fused
        return stacked

    def _adapt(
        self, stacked: StackedParams, batch: StackedBatch, lr: float, inner_steps: int, dropout: float, training: bool, plan: TaskPlan | None = None
    ) -> StackedParams:
        """``inner_steps`` first-order steps on the support sets, all tasks at once.

        Gradients without create_graph (first-order, as l2l's adapt with first_order=True), then
        l2l's update p <- p + (-lr * g) on the stacked tensors (``update_in_place``); the output weight's step is recorded as
        factors (see StackedParams). A ``plan`` (in stacked task order) gives task i the rate
        ``lr * rate_factors[i]`` for its first ``steps[i]`` steps and 0 after them (the batch runs
        the longest count; a finished task's weights no longer change).
        """
        for step in range(inner_steps if plan is None else max(plan.steps, default=0)):
            logits, features = stacked(batch, "support", dropout, training)
            loss = task_loss(stacked.scores(batch, "support", logits, features), batch.support_labels)
            params = list(stacked.parameters())
            differentiable = [p for p in params if p.requires_grad]
            output_trained = stacked.output_weight.requires_grad
            grads = torch.autograd.grad(loss, differentiable + ([logits] if output_trained else []))
            rates = {}
            if plan is not None:
                factors = torch.tensor(plan.step_factors(step), dtype=logits.dtype, device=logits.device)
                task_rates = factors * lr
                rates = {"task_rates": task_rates, "row_rates": task_rates[batch.row_tasks]}
            if output_trained:
                logit_grads = grads[-1] if plan is None else grads[-1] * factors.view(-1, 1, 1)
                stacked.record_output_step(features, logit_grads)
            grads = iter(grads)
            # Frozen tensors (requires_grad False) get None: left unchanged, as with allow_nograd.
            stacked = update_in_place(stacked, lr, [next(grads) if p.requires_grad else None for p in params], **rates)
        return stacked

    def meta_gradient(self, maml, tasks: Sequence, inner_steps: int, plan: TaskPlan | None = None) -> float:
        """Mean query loss over ``tasks``; adds d(mean query loss)/d(meta params) into their .grad.
        A ``plan``: each task's own rate and step count, and the loss (1/n) sum_i w_i L_i."""
        model = maml.module
        batch = stack_tasks(tasks, model.embedding.num_embeddings)
        n = len(tasks)
        dropout = float(model.dropout.p) if model.training else 0.0
        stacked_plan = None if plan is None else plan.take(batch.task_order.tolist())
        stacked = self._stacked(model, batch, n, detach=False, lr=maml.lr)
        stacked = self._adapt(stacked, batch, maml.lr, inner_steps, dropout, model.training, stacked_plan)
        weights = None if plan is None else torch.tensor(stacked_plan.weights, dtype=torch.float32, device=batch.query_labels.device)
        logits, features = stacked(batch, "query", dropout, model.training)
        query_loss = task_loss(stacked.scores(batch, "query", logits, features), batch.query_labels, weights) / n
        query_loss.backward()
        return float(query_loss.detach())

    def query_scores(self, maml, tasks: Sequence, inner_steps: int, plan: TaskPlan | None = None) -> torch.Tensor:
        """Query logits [n, Q, n_items + 1] after ``inner_steps`` adaptation steps (0: zero-shot; a
        ``plan``: each task's own rate and step count); detached."""
        model = maml.module
        vocab = model.embedding.num_embeddings
        # Chunks of tasks of similar length: a chunk runs as many steps as its longest prefix,
        # so the short tasks' chunks end early instead of every chunk running to the cap.
        order = sorted(range(len(tasks)), key=lambda i: (-int(tasks[i].support_lengths.max()), -int(tasks[i].query_lengths.max())))
        chunks = []
        for start in range(0, len(tasks), self.eval_chunk):
            indices = order[start : start + self.eval_chunk]
            part = [tasks[i] for i in indices]
            batch = stack_tasks(part, vocab)
            part_plan = None if plan is None else plan.take([indices[i] for i in batch.task_order.tolist()])
            with torch.enable_grad():
                stacked = self._stacked(model, batch, len(part), detach=True, lr=maml.lr)
                stacked = self._adapt(stacked, batch, maml.lr, inner_steps, 0.0, False, part_plan)
            with torch.no_grad():
                logits, features = stacked(batch, "query", 0.0, False)
                chunks.append(unstack_scores(batch, stacked.scores(batch, "query", logits, features).detach()))
        scores = torch.cat(chunks)
        if order == sorted(order):
            return scores
        restored = torch.empty_like(scores)
        restored[torch.tensor(order, device=scores.device)] = scores
        return restored


class SegmentedBatchedMAML(BatchedMAML):
    """The batched engine without the compiled kernel (SegmentedGRU for every one-layer GRU): the
    engine before baselines/fused.py, and the fallback where the kernel cannot be built; kept so
    `bench perf full` times the two in one process."""

    name = "batched-segmented"
    fused = False
