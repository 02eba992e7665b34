"""ANIL, task-batched: every task's head adapted at once, proven equal to per-task learn2learn.

ANIL's body is not adapted, so it runs once per meta-batch as one GRURecommender batch (all tasks'
support prefixes, then all query prefixes), through the model's own packed ``nn.GRU``. Only the
head adapts. A first-order step on the head changes it by the task's logit gradients G [K, V]
(d mean cross-entropy / d logits: (softmax - onehot) / K) times the support features S [K, H]:
W <- W - lr G^T S, b <- b - lr 1^T G (learn2learn's ``p + (-lr * g)``). With C the sum of a task's
steps' G so far, the adapted head scores features X as
    X W^T + b = X W0^T + b0 - lr (X S^T) C - lr 1^T C,
so no per-task [V, H] weight is ever built: C [n, K, V] and the small [n, ., K] products suffice.
First-order: S and C are constants; the query loss's gradient reaches W0, b0 and, through the
query features, the body, exactly as learn2learn's first-order MAML around the head does.

A repeat-aware model's head (baselines/model.py RepeatHead) is part of what ANIL adapts, with the
output layer: its loss is no longer a plain cross-entropy of the logits, so each step's logit
gradients G (still all the output layer's step needs: W <- W - lr G^T S) and the head tensors'
gradients come from autograd on the mixture (``adapt_repeat_heads``); the head tensors' steps are
kept per task as sums of -lr g ([n, ...], small), added to the meta tensors at the query.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from baselines.model import deterministic, repeat_mixture
from meta.batched.params import REPEAT_TENSORS

# Tasks adapted together at evaluation (bounds memory: C is tasks x K x V).
EVAL_CHUNK = 64


def _cat_prefixes(tasks: Sequence, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """All tasks' prefixes of one side, [n * B, T] right-padded to the longest, and their lengths."""
    prefixes = [getattr(task, f"{side}_prefixes") for task in tasks]
    width = max(p.shape[1] for p in prefixes)
    padded = torch.cat([F.pad(p, (0, width - p.shape[1])) for p in prefixes])
    return padded, torch.cat([getattr(task, f"{side}_lengths") for task in tasks])


def _features(model, tasks: Sequence, side: str) -> torch.Tensor:
    """The body's features [n, B, H] for one side of every task, in one batch."""
    prefixes, lengths = _cat_prefixes(tasks, side)
    return model.features(prefixes, lengths).view(len(tasks), -1, model.config.hidden_dim)


def _head_logits(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, support: torch.Tensor, steps_sum, lr: float) -> torch.Tensor:
    """Logits [n, B, V] of the adapted heads: features [n, B, H]; support features [n, K, H];
    ``steps_sum`` C [n, K, V] or None (no step yet)."""
    logits = features @ weight.t() + bias
    if steps_sum is None:
        return logits
    logits = torch.baddbmm(logits, features @ support.transpose(1, 2), steps_sum, alpha=-lr)
    return logits - lr * steps_sum.sum(dim=1, keepdim=True)


def adapt_heads(anil, support: torch.Tensor, labels: torch.Tensor, inner_steps: int) -> torch.Tensor | None:
    """C [n, K, V]: the sum of each task's ``inner_steps`` logit gradients on its support set
    (support features [n, K, H] and labels [n, K] constants); None when ``inner_steps`` is 0."""
    head = anil.module.output
    weight, bias = head.weight.detach(), head.bias.detach()
    steps_sum = None
    with torch.no_grad():
        for _ in range(inner_steps):
            probabilities = torch.softmax(_head_logits(support, weight, bias, support, steps_sum, anil.lr), dim=-1)
            logit_grads = probabilities.scatter_add(-1, labels.unsqueeze(-1), -torch.ones_like(probabilities[..., :1]))
            logit_grads /= labels.shape[1]
            steps_sum = logit_grads if steps_sum is None else steps_sum + logit_grads
    return steps_sum


def _prefixes(tasks: Sequence, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One side's prefixes [n, B, T] and lengths [n, B] (the rows of ``_features``), for the repeat head."""
    prefixes, lengths = _cat_prefixes(tasks, side)
    return prefixes.view(len(tasks), -1, prefixes.shape[-1]), lengths.view(len(tasks), -1)


def repeat_tensors(anil) -> list[torch.Tensor]:
    """The meta repeat-head tensors of ``anil``'s model, in ``REPEAT_TENSORS`` order (empty: no head)."""
    if getattr(anil.module, "repeat", None) is None:
        return []
    named = dict(anil.module.named_parameters())
    return [named[name] for name in REPEAT_TENSORS.values()]


def _task_losses(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum over tasks of each task's mean cross-entropy (each task's slice gets its own gradient)."""
    n, rows, vocab = scores.shape
    return F.cross_entropy(scores.reshape(n * rows, vocab), labels.reshape(-1), reduction="none").view(n, rows).mean(1).sum()


def adapt_repeat_heads(anil, support: torch.Tensor, labels: torch.Tensor, side: tuple, inner_steps: int) -> tuple:
    """(C [n, K, V] or None, the repeat tensors' steps per task [n, ...] each): a repeat-aware head's
    ``inner_steps`` first-order steps on the support sets (``side``: their prefixes and lengths)."""
    head = anil.module.output
    weight, bias = head.weight.detach(), head.bias.detach()
    meta = [tensor.detach() for tensor in repeat_tensors(anil)]
    n = support.shape[0]
    steps = [tensor.new_zeros(n, *tensor.shape) for tensor in meta]
    steps_sum = None
    for _ in range(inner_steps):
        with torch.enable_grad():
            logits = _head_logits(support, weight, bias, support, steps_sum, anil.lr).requires_grad_()
            tensors = [(tensor + step).requires_grad_() for tensor, step in zip(meta, steps)]
            loss = _task_losses(repeat_mixture(logits, support, *side, *tensors), labels)
            logit_grads, *grads = torch.autograd.grad(loss, [logits, *tensors])
        steps_sum = logit_grads if steps_sum is None else steps_sum + logit_grads
        steps = [step - anil.lr * grad for step, grad in zip(steps, grads)]
    return steps_sum, steps


def _repeat_scores(anil, logits: torch.Tensor, features: torch.Tensor, side: tuple, steps: list) -> torch.Tensor:
    """The adapted repeat heads' scores over ``logits`` [n, B, V]: meta tensors plus each task's steps."""
    return repeat_mixture(logits, features, *side, *(tensor + step for tensor, step in zip(repeat_tensors(anil), steps)))


def dense_heads(anil, support: torch.Tensor, steps_sum) -> tuple[torch.Tensor, torch.Tensor]:
    """The adapted heads as dense tensors (weight [n, V, H], bias [n, V]), for tests and inspection."""
    head = anil.module.output
    n = support.shape[0]
    if steps_sum is None:
        return head.weight.expand(n, *head.weight.shape), head.bias.expand(n, *head.bias.shape)
    return head.weight - anil.lr * steps_sum.transpose(1, 2) @ support, head.bias - anil.lr * steps_sum.sum(dim=1)


class BatchedANIL:
    """ANIL's inner loop for the batched engine (same contract as PerTaskEngine's)."""

    def meta_gradient(self, anil, tasks: Sequence, inner_steps: int) -> float:
        model = anil.module
        with torch.no_grad():  # first-order: the support features only shape the (constant) steps
            support = _features(model, tasks, "support")
        labels = torch.stack([task.support_labels for task in tasks])
        repeat = bool(repeat_tensors(anil))
        if repeat:
            steps_sum, steps = adapt_repeat_heads(anil, support, labels, _prefixes(tasks, "support"), inner_steps)
        else:
            steps_sum = adapt_heads(anil, support, labels, inner_steps)
        query = _features(model, tasks, "query")
        logits = _head_logits(query, model.output.weight, model.output.bias, support, steps_sum, anil.lr)
        if repeat:
            logits = _repeat_scores(anil, logits, query, _prefixes(tasks, "query"), steps)
        query_labels = torch.stack([task.query_labels for task in tasks])
        # Mean over tasks of each task's mean cross-entropy (equal sizes: the mean over all queries).
        query_loss = F.cross_entropy(logits.flatten(0, 1), query_labels.flatten())
        query_loss.backward()
        return float(query_loss.detach())

    def query_scores(self, anil, tasks: Sequence, inner_steps: int) -> torch.Tensor:
        model = anil.module
        chunks = []
        with deterministic(model), torch.no_grad():
            for start in range(0, len(tasks), EVAL_CHUNK):
                part = tasks[start : start + EVAL_CHUNK]
                support = _features(model, part, "support")
                labels = torch.stack([task.support_labels for task in part])
                if repeat_tensors(anil):
                    steps_sum, steps = adapt_repeat_heads(anil, support, labels, _prefixes(part, "support"), inner_steps)
                else:
                    steps_sum = adapt_heads(anil, support, labels, inner_steps)
                query = _features(model, part, "query")
                scores = _head_logits(query, model.output.weight, model.output.bias, support, steps_sum, anil.lr)
                if repeat_tensors(anil):
                    scores = _repeat_scores(anil, scores, query, _prefixes(part, "query"), steps)
                chunks.append(scores)
        return torch.cat(chunks)
