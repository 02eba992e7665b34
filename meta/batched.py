"""Task-batched inner loop: every task of a meta-batch adapted at once, proven equal to per-task l2l.

Each task gets its own copy of the GRURecommender's parameters, stacked on a leading task
dimension ([n, ...]); one batched forward and one backward per inner step adapt all n copies, since
the summed loss gives each task's slice exactly its own task's gradient. The update is
learn2learn's ``maml_update`` arithmetic (p <- p + (-lr * g), as ``MAML.adapt``). First-order only,
like the suite's ``MAML(..., first_order=True)``: gradients are taken without ``create_graph``, so
the adapted parameters are the meta-parameters plus constants and the query loss's gradient flows
back to the meta-parameters through the stacking (expand backward = sum over tasks).

How it is made fast (torch.profiler, one thread):
- Embedding: one lookup into a flat table of only the rows each task uses (keys
  ``task * vocab + item``, made unique once per meta-batch), gathered from the meta embedding, so
  no dense [tasks, items, E] table or gradient is ever built. A row a task does not use would
  never change in the per-task path either (its gradient is zero), so this is exact.
- Output layer: a dense per-task [tasks, V, H] weight would cost most (fresh large allocations
  page-fault on CPU). A first-order step changes it by a rank-B product, so it is kept as the meta
  weight plus factors (StackedParams).
- GRU (SegmentedGRU, one layer): tasks and rows sorted longest first, steps packed (StackedBatch),
  and the packed steps cut into segments (SideLayout) so that buffers and all-steps products
  scale with the true lengths (on real episodes most sequences are far shorter than the longest
  of a meta-batch, which reaches the 50-course cap in most batches); input projections once per
  (task, item) row; a hand-written backward whose weight gradients are one product per segment;
  where the weights are still the shared meta-weights (the first inner step, zero-shot scoring)
  one large matrix product for all tasks instead of n small ones; past a sequence's end the update
  gate is exactly 1 (no mask per step).
- Updates in place (``update_in_place``): no fresh per-task copies per inner step.
- The one-layer GRU itself runs on a compiled kernel (meta/fused.py, meta/fused_gru.cpp) where it
  builds: each task's whole sequence with its own W_hh hot in cache, a register-blocked small
  product per step and the gate work fused per row, instead of SegmentedGRU's one batched product
  per step that streams every task's weights from memory (2.1x per meta-iteration at the `full`
  grid's settings, one thread). SegmentedGRU stays as the fallback (SegmentedBatchedMAML) and the
  kernel's reference; both equal per-task learn2learn (tests/test_batched.py).
Multi-layer GRUs take the packed [n, M] path (batched_gru_layer) for every layer. (The first batched
engine, "batched-v1", which took that path for one layer too, is gone; its measured times stay in
results/reference/perf-full.json.)
The other algorithms of meta/algorithms.py have their own batched inner loops, chosen by the
wrapper's type: ANIL in meta/batched_anil.py, Meta-SGD in meta/batched_metasgd.py (both proven
equal to per-task learn2learn in tests/test_arms.py).
Dropout (meta-training, model in train mode) is applied to the last hidden state as in
``GRURecommender.forward``, with the module's p (and the GRU's inter-layer p between layers), but
masks are drawn for the whole stacked batch, so they are not the per-task path's masks bit for
bit: the same distribution, not the same draws (the same draws on the kernel and on SegmentedGRU). With p = 0 or at
evaluation (dropout off) the engines agree to float rounding (tests/test_batched.py). Works on
CUDA unchanged (devices follow the inputs); stacking reads the lengths on the host once per
meta-batch.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from meta.fused import FusedGRU, KernelSide, shared_over_tasks
from meta.fused import load as load_fused
from meta.tasks import TaskPlan

# Tasks adapted together at evaluation: bounds memory (logit gradients are tasks x steps*K x V);
# 32 measured about 10% faster per episode than 64 at the `full` grid's sizes (cache-sized buffers).
EVAL_CHUNK = 32


class StackedBatch(NamedTuple):
    """A meta-batch's inputs, stacked over tasks, packed by step, mapped to flat embedding rows.

    Tasks are stacked longest support prefix first, and each task's prefixes longest first, so the
    sequences still running at step t form a leading block [:a_t, :b_t]. Steps are packed along
    one axis of length M = sum_t b_t: step t's rows sit at columns off_t .. off_t + b_t, so every
    [n, M, .] tensor (embeddings, projections, gate buffers) skips most of the padding of a
    [n, B, T, .] layout (lengths are skewed short). ``task_order`` and ``query_order`` map the
    stacked order back to the callers'.
    """

    task_order: torch.Tensor  # [n] stacked task i is tasks[task_order[i]]
    support_rows: torch.Tensor  # [n, Ms] flat embedding row of each packed position
    support_mask: torch.Tensor  # [n, Ms, 1] bool: position inside the true length
    support_labels: torch.Tensor  # [n, K]
    support_steps: tuple  # per step t: (a_t tasks, b_t rows, off_t column) of the running block
    query_rows: torch.Tensor  # [n, Mq]
    query_mask: torch.Tensor  # [n, Mq, 1]
    query_labels: torch.Tensor  # [n, Q]
    query_steps: tuple
    query_order: torch.Tensor  # [n, Q] stacked query j of stacked task i is its query_order[i, j]
    row_items: torch.Tensor  # [R] item id of each flat row (gathered from the meta embedding)
    support_layout: SideLayout | None = None  # the same support side cut into segments (SegmentedGRU)
    query_layout: SideLayout | None = None
    row_tasks: torch.Tensor | None = None  # [R] stacked task of each flat row (per-task rates: meta/tasks.py TaskPlan)
    support_kernel: KernelSide | None = None  # the same sides as the compiled kernel reads them (meta/fused.py)
    query_kernel: KernelSide | None = None


class SideLayout(NamedTuple):
    """One side of a StackedBatch cut into segments of consecutive steps, for SegmentedGRU.

    The packed [n, M] layout pads every step's columns to all n tasks, but few tasks run long
    (on real episodes about a fifth of the [n, M] entries are inside a true length). Segment k holds
    steps whose running task count a_t is at least ``SEGMENT_FILL`` of its first step's a_k, as its
    own tensors [a_k, cols_k, .], so the all-steps products (input projections, weight gradients)
    and buffers cost about the true lengths. ``steps``: per step (segment, a_t, b_t, column of the
    step inside its segment); ``slots``: each segment position's slot in the row table (below);
    ``ended``: 0 inside each sequence's true length, +inf after it (added to the update gate's
    pre-activation: the gate is then exactly 1, the state is held, and every gate derivative there
    is exactly 0, so no mask is applied per step). The input projection depends on the position
    only through its (task, item) row, so it is formed once per row: the row table holds each
    task's rows (its S slots, padded with a zero row), and positions gather from it by slot.
    """

    steps: tuple  # per step: (segment, tasks a_t, rows b_t, local column)
    segments: tuple  # per segment: (tasks a_k, first packed column, end packed column)
    slots: tuple  # per segment: [a_k, cols_k] long, each position's slot in the row table
    ended: tuple  # per segment: [a_k, cols_k, 1] float, 0 or +inf
    width: int  # B, rows per task
    row_table: torch.Tensor  # [n, S] flat embedding row of each task's slots (R: an all-zero padding row)
    row_slot: torch.Tensor  # [R] slot (task * S + rank) of each flat embedding row


# A segment grows while its steps still run at least this share of its first step's tasks.
SEGMENT_FILL = 0.7


def row_tables(unique_keys: torch.Tensor, n: int, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(row_table [n, S], row_slot [R]) for the sorted flat-row keys task * vocab + item (so each
    task's rows are consecutive): slot = task * S + rank within the task, S the most rows a task
    has; empty slots point at row R (a zero row appended to the embedding rows)."""
    task = torch.div(unique_keys, vocab_size, rounding_mode="floor")
    counts = torch.bincount(task, minlength=n)
    width = int(counts.max())
    first = torch.cumsum(counts, 0) - counts
    rows = torch.arange(unique_keys.numel(), device=unique_keys.device)
    row_slot = task * width + (rows - first[task])
    row_table = torch.full((n * width,), unique_keys.numel(), dtype=torch.long, device=unique_keys.device)
    row_table[row_slot] = rows
    return row_table.view(n, width), row_slot


def side_layout(rows: torch.Tensor, mask: torch.Tensor, steps: tuple, row_table: torch.Tensor, row_slot: torch.Tensor, dtype=torch.float32) -> SideLayout:
    """Cut a packed side (rows [n, M], mask [n, M, 1], step blocks) into SideLayout segments."""
    segments, local = [], []
    for tasks, block_rows, offset in steps:
        if not segments or tasks < SEGMENT_FILL * segments[-1][0]:
            segments.append([tasks, offset, offset])
        segment = segments[-1]
        local.append((len(segments) - 1, tasks, block_rows, offset - segment[1]))
        segment[2] = offset + block_rows
    inf = torch.tensor(float("inf"), dtype=dtype, device=rows.device)
    zero = torch.zeros((), dtype=dtype, device=rows.device)
    return SideLayout(
        steps=tuple(local),
        segments=tuple(tuple(segment) for segment in segments),
        slots=tuple(row_slot[rows[:a, start:end]] for a, start, end in segments),
        ended=tuple(torch.where(mask[:a, start:end], zero, inf) for a, start, end in segments),
        width=steps[0][1],
        row_table=row_table,
        row_slot=row_slot,
    )


def step_blocks(lengths: list[list[int]]) -> tuple[tuple, list[int]]:
    """Per-step running blocks (a_t, b_t, off_t) and packed positions (row * T + t) for lengths
    [n][B] whose rows are sorted longest first within each task."""
    width = max(max(row) for row in lengths)
    maxima = [max(row) for row in lengths]
    steps, positions, offset = [], [], 0
    for step in range(width):
        tasks = max(index for index, longest in enumerate(maxima) if longest > step) + 1
        rows = max(sum(1 for n in row if n > step) for row in lengths)
        steps.append((tasks, rows, offset))
        positions.extend(row * width + step for row in range(rows))
        offset += rows
    return tuple(steps), positions


def pack_steps(values: torch.Tensor, positions: list[int]) -> torch.Tensor:
    """[n, B, T, ...] -> [n, M, ...] at the packed positions."""
    n, batch, width = values.shape[:3]
    index = torch.tensor(positions, dtype=torch.long, device=values.device)
    return values.reshape(n, batch * width, *values.shape[3:])[:, index]


def _sorted_side(tasks: Sequence, order: list[int], prefixes: str, lengths: str, labels: str):
    """Packed prefixes [n, M], mask [n, M, 1], labels [n, B] and row order [n, B] (each task's
    longest first), and the step blocks, for one side (support or query) of the stacked tasks."""
    lists = [getattr(tasks[i], lengths).tolist() for i in order]
    perms = [sorted(range(len(ls)), key=lambda j, ls=ls: -ls[j]) for ls in lists]
    width = max(max(ls) for ls in lists)
    device = getattr(tasks[0], prefixes).device
    perm_tensor = torch.tensor(perms, dtype=torch.long, device=device)
    stacked = torch.stack([F.pad(getattr(tasks[i], prefixes)[:, :width], (0, width - min(width, getattr(tasks[i], prefixes).shape[-1]))) for i in order])
    stacked = torch.gather(stacked, 1, perm_tensor.unsqueeze(-1).expand_as(stacked))
    lengths_tensor = torch.gather(torch.stack([getattr(tasks[i], lengths) for i in order]).to(device), 1, perm_tensor)
    labels_tensor = torch.gather(torch.stack([getattr(tasks[i], labels) for i in order]), 1, perm_tensor)
    steps, positions = step_blocks([sorted(ls, reverse=True) for ls in lists])
    mask = (torch.arange(width, device=device) < lengths_tensor.unsqueeze(-1)).unsqueeze(-1)
    return pack_steps(stacked, positions), pack_steps(mask, positions), labels_tensor, perm_tensor, steps, stacked, lengths_tensor


def stack_tasks(tasks: Sequence, vocab_size: int) -> StackedBatch:
    """Stack tasks (all with the same K and Q) and map (task, item) pairs to flat table rows."""
    if len({int(t.support_labels.shape[0]) for t in tasks}) != 1 or len({int(t.query_labels.shape[0]) for t in tasks}) != 1:
        raise ValueError("task-batched adaptation needs the same K and Q in every task of a batch")
    longest = [int(t.support_lengths.max()) for t in tasks]
    order = sorted(range(len(tasks)), key=lambda i: -longest[i])
    support, support_mask, support_labels, _, support_steps, support_items, support_lengths = _sorted_side(tasks, order, "support_prefixes", "support_lengths", "support_labels")
    query, query_mask, query_labels, query_order, query_steps, query_items, query_lengths = _sorted_side(tasks, order, "query_prefixes", "query_lengths", "query_labels")
    n = support.shape[0]
    offsets = torch.arange(n, device=support.device).view(n, 1) * vocab_size
    keys = torch.cat([(support + offsets).flatten(), (query + offsets).flatten()])
    unique_keys, inverse = torch.unique(keys, return_inverse=True)
    split = support.numel()
    support_rows, query_rows = inverse[:split].view_as(support), inverse[split:].view_as(query)
    row_table, row_slot = row_tables(unique_keys, n, vocab_size)

    def kernel_side(items: torch.Tensor, lengths: torch.Tensor) -> KernelSide:
        # Each position's row-table slot (positions past a row's length: any slot, never read).
        keys = items + offsets.view(n, 1, 1)
        rows = torch.searchsorted(unique_keys, keys).clamp_(max=unique_keys.numel() - 1)
        return KernelSide(slots=row_slot[rows].contiguous(), lengths=lengths.contiguous())

    return StackedBatch(
        task_order=torch.tensor(order, dtype=torch.long, device=support.device),
        support_rows=support_rows,
        support_mask=support_mask,
        support_labels=support_labels,
        support_steps=support_steps,
        query_rows=query_rows,
        query_mask=query_mask,
        query_labels=query_labels,
        query_steps=query_steps,
        query_order=query_order,
        row_items=unique_keys % vocab_size,
        row_tasks=torch.div(unique_keys, vocab_size, rounding_mode="floor"),
        support_layout=side_layout(support_rows, support_mask, support_steps, row_table, row_slot),
        query_layout=side_layout(query_rows, query_mask, query_steps, row_table, row_slot),
        support_kernel=kernel_side(support_items, support_lengths),
        query_kernel=kernel_side(query_items, query_lengths),
    )


def unstack_scores(batch: StackedBatch, scores: torch.Tensor) -> torch.Tensor:
    """Stacked query scores [n, Q, V] back in the callers' task and query order."""
    restored = torch.empty_like(scores)
    restored[batch.task_order.unsqueeze(1), batch.query_order] = scores
    return restored


class MaskedGRURecurrence(torch.autograd.Function):
    """The GRU recurrence over precomputed, step-packed input projections, hand-written backward.

    Autograd through the step loop builds ~20 graph nodes per step, a tiny weight-gradient bmm per
    step (a slow shape) and a cat per step. Here the forward writes gates and states into [n, M, .]
    buffers, the gate derivatives are formed for all steps at once, the backward's step loop carries
    only the state gradient, and dW_hh is one bmm over all steps. Step t touches only its block
    [:a_t, :b_t] (columns off_t..off_t + b_t of the packed axis); inside it the mask holds finished
    sequences. Buffer entries outside the blocks are never read (the previous-state buffer is
    zeroed, as the dW_hh product reads it whole against zero gradients).
    Inputs: projected [n, M, 3H] (x W_ih^T + b_ih), mask [n, M, 1] bool, weight_hh [n, 3H, H],
    bias_hh [n, 3H], steps, needs_backward. Output: the state at each sequence's true end [n, B, H].
    First-order only (no double backward), which is all the batched engine needs.
    """

    @staticmethod
    def forward(ctx, projected, mask, weight_hh, bias_hh, steps, needs_backward):
        n, packed, gates = projected.shape
        hidden = gates // 3
        weight_hh_t = weight_hh.transpose(1, 2)
        bias = bias_hh.unsqueeze(1)
        state = projected.new_zeros(n, steps[0][1], hidden)
        previous_states = projected.new_zeros(n, packed, hidden)
        reset_update = projected.new_empty(n, packed, 2 * hidden)
        candidates = projected.new_empty(n, packed, hidden)
        hidden_n = projected.new_empty(n, packed, hidden)
        for tasks, rows, offset in steps:
            columns = slice(offset, offset + rows)
            previous = state[:tasks, :rows]
            previous_states[:tasks, columns] = previous
            gates_x = projected[:tasks, columns]
            gates_h = torch.baddbmm(bias[:tasks], previous, weight_hh_t[:tasks])
            rz = reset_update[:tasks, columns]
            torch.sigmoid(torch.add(gates_x[..., : 2 * hidden], gates_h[..., : 2 * hidden]), out=rz)
            hn = hidden_n[:tasks, columns]
            hn.copy_(gates_h[..., 2 * hidden :])
            candidate = candidates[:tasks, columns]
            torch.tanh(torch.addcmul(gates_x[..., 2 * hidden :], rz[..., :hidden], hn), out=candidate)
            new_state = torch.addcmul(candidate, rz[..., hidden:], previous - candidate)
            state[:tasks, :rows] = torch.where(mask[:tasks, columns], new_state, previous)
        if needs_backward:  # (skipped for scoring under no_grad)
            # d(new state)/d(pre-activations), all steps at once: update (z), candidate (n), reset (r).
            reset, update = reset_update[..., :hidden], reset_update[..., hidden:]
            one_minus_update = 1 - update
            factor_candidate = one_minus_update * (1 - candidates * candidates)
            factor_update = (previous_states - candidates) * update * one_minus_update
            factor_reset = hidden_n * reset * (1 - reset)
            ctx.save_for_backward(mask, weight_hh, previous_states, reset, update, factor_candidate, factor_update, factor_reset)
            ctx.steps = steps
        return state

    @staticmethod
    def backward(ctx, grad_state):
        mask, weight_hh, previous_states, reset, update, factor_candidate, factor_update, factor_reset = ctx.saved_tensors
        n, packed, hidden = previous_states.shape
        # Gate gradients at every packed position: input-projection side (reset, update,
        # candidate) and W_hh side (reset, update, reset * candidate); zero outside the blocks.
        grad_gates_x = grad_state.new_zeros(n, packed, 3 * hidden)
        grad_gates_h = grad_state.new_zeros(n, packed, 3 * hidden)
        grad = grad_state.clone()
        for tasks, rows, offset in reversed(ctx.steps):
            columns = slice(offset, offset + rows)
            block = grad[:tasks, :rows]
            grad_new = block * mask[:tasks, columns]  # the new state was kept only inside the length
            grad_x = grad_gates_x[:tasks, columns]
            grad_h = grad_gates_h[:tasks, columns]
            grad_candidate = grad_x[..., 2 * hidden :]
            torch.mul(grad_new, factor_candidate[:tasks, columns], out=grad_candidate)
            torch.mul(grad_new, factor_update[:tasks, columns], out=grad_x[..., hidden : 2 * hidden])
            torch.mul(grad_candidate, factor_reset[:tasks, columns], out=grad_x[..., :hidden])
            grad_h[..., : 2 * hidden] = grad_x[..., : 2 * hidden]
            torch.mul(grad_candidate, reset[:tasks, columns], out=grad_h[..., 2 * hidden :])
            kept = torch.addcmul(block - grad_new, grad_new, update[:tasks, columns])
            grad[:tasks, :rows] = torch.baddbmm(kept, grad_h, weight_hh[:tasks])
        grad_weight = torch.bmm(grad_gates_h.transpose(1, 2), previous_states) if ctx.needs_input_grad[2] else None
        grad_bias = grad_gates_h.sum(1) if ctx.needs_input_grad[3] else None
        return grad_gates_x, None, grad_weight, grad_bias, None, None


def batched_gru_layer(
    inputs: torch.Tensor,
    mask: torch.Tensor,
    steps: tuple,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
    keep_outputs: bool = False,
):
    """One GRU layer over step-packed inputs [n, M, In] with per-task weights [n, 3H, In], [n, 3H, H], [n, 3H].

    Same equations as ``nn.GRU`` (r, z, n gate order; the reset gate scales W_hn h + b_hn).
    ``steps`` and ``mask`` [n, M, 1] come from ``step_blocks``/``pack_steps``; the mask holds each
    sequence's state once its length is reached, so the result is the state at the true end, as
    with a packed sequence. Returns the last state [n, B, H], or with ``keep_outputs`` (a lower
    layer of a stacked GRU) also the state after every step, packed [n, M, H] (then plain
    autograd, not the hand-written backward).
    """
    n, packed, in_dim = inputs.shape
    hidden = weight_hh.shape[-1]
    # All time steps' input projections in one bmm.
    projected = torch.baddbmm(bias_ih.unsqueeze(1), inputs, weight_ih.transpose(1, 2))
    if not keep_outputs:
        needs_backward = torch.is_grad_enabled() and any(t.requires_grad for t in (projected, weight_hh, bias_hh))
        return MaskedGRURecurrence.apply(projected, mask, weight_hh, bias_hh, steps, needs_backward)
    weight_hh_t = weight_hh.transpose(1, 2)
    bias = bias_hh.unsqueeze(1)
    state = inputs.new_zeros(n, steps[0][1], hidden)
    outputs = []
    for tasks, rows, offset in steps:
        columns = slice(offset, offset + rows)
        previous = state[:tasks, :rows]
        gates_x = projected[:tasks, columns]
        gates_h = torch.baddbmm(bias[:tasks], previous, weight_hh_t[:tasks])
        reset_update = torch.sigmoid(gates_x[..., : 2 * hidden] + gates_h[..., : 2 * hidden])
        reset, update = reset_update[..., :hidden], reset_update[..., hidden:]
        candidate = torch.tanh(gates_x[..., 2 * hidden :] + reset * gates_h[..., 2 * hidden :])
        block = torch.where(mask[:tasks, columns], candidate + update * (previous - candidate), previous)
        state = state.clone()  # earlier states stay in the graph
        state[:tasks, :rows] = block
        outputs.append(F.pad(block, (0, 0, 0, 0, 0, n - tasks)))
    return state, torch.cat(outputs, dim=1)


def _tanh_(x: torch.Tensor) -> torch.Tensor:
    """tanh in place, as 2 sigmoid(2x) - 1: PyTorch's CPU tanh costs about three of its sigmoids at
    these sizes; the two differ by under 3e-7 (absolute, |tanh| <= 1)."""
    return x.mul_(2).sigmoid_().mul_(2).sub_(1)


_shared = shared_over_tasks  # (meta/fused.py) the meta-weights expanded over tasks: one product for all


class SegmentedGRU(torch.autograd.Function):
    """A one-layer GRU from the embedding rows to the state at each sequence's true end, over a
    SideLayout, hand-written backward (the successor of MaskedGRURecurrence, which it equals).

    Same arithmetic as MaskedGRURecurrence (nn.GRU's equations, r, z, n gate order), three changes:
    - the input projections, the buffers and the weight-gradient products are per segment, so
      they scale with the true lengths instead of the padded [n, M] layout;
    - where a weight is the meta-weight shared by every task (the first inner step, zero-shot
      scoring: ``_shared``), its products are one [rows, in] x [in, 3H] matrix product for all
      tasks instead of a batch of small ones (each task's own gradient is still formed);
    - a sequence past its end is held by an update gate of exactly 1 (SideLayout.ended), not by a
      mask per step; the state update is written h + (1 - z)(n - h) so that it is exactly h there.
    The embedding lookup is inside, and the input projection is formed once per (task, item) row
    (SideLayout's row table) and gathered by position; its gradients are formed from each row's
    summed gate gradients.
    Inputs: layout, needs_backward, embedding rows [R, E], weight_ih [n, 3H, E], bias_ih [n, 3H],
    weight_hh [n, 3H, H], bias_hh [n, 3H]. Output: the last state [n, B, H]. First-order only.
    """

    @staticmethod
    def forward(ctx, layout, needs_backward, embedding, weight_ih, bias_ih, weight_hh, bias_hh):
        n, gates, hidden = weight_hh.shape
        in_dim = embedding.shape[1]
        ih_shared, hh_shared = _shared(weight_ih) and _shared(bias_ih), _shared(weight_hh) and _shared(bias_hh)
        # Input projections once per (task, item) row, in the row table [n, S, 3H].
        table_inputs = torch.cat([embedding, embedding.new_zeros(1, in_dim)])[layout.row_table]
        if ih_shared:
            table = torch.addmm(bias_ih[0], table_inputs.view(-1, in_dim), weight_ih[0].t())
        else:
            table = torch.baddbmm(bias_ih.unsqueeze(1), table_inputs, weight_ih.transpose(1, 2)).view(-1, gates)
        projected = []
        for slots, ended in zip(layout.slots, layout.ended):
            p = table[slots]  # [a_k, cols_k, 3H]
            p[..., hidden : 2 * hidden] += ended  # +inf after the end: update gate exactly 1
            projected.append(p)
        state = weight_hh.new_zeros(n, layout.width, hidden)
        if needs_backward:
            previous_states = [p.new_zeros(p.shape[0], p.shape[1], hidden) for p in projected]
            reset_update = [p.new_empty(p.shape[0], p.shape[1], 2 * hidden) for p in projected]
            candidates = [p.new_empty(p.shape[0], p.shape[1], hidden) for p in projected]
            hidden_n = [p.new_empty(p.shape[0], p.shape[1], hidden) for p in projected]
        weight_hh_t, bias = weight_hh.transpose(1, 2), bias_hh.unsqueeze(1)
        shared_t, shared_bias = weight_hh[0].t(), bias_hh[0]
        for segment, tasks, rows, column in layout.steps:
            columns = slice(column, column + rows)
            block = state[:tasks, :rows]
            if hh_shared:
                gates_h = torch.addmm(shared_bias, block.reshape(tasks * rows, hidden), shared_t).view(tasks, rows, gates)
            else:
                gates_h = torch.baddbmm(bias[:tasks], block, weight_hh_t[:tasks])
            gates_x = projected[segment][:tasks, columns]
            if needs_backward:
                previous_states[segment][:tasks, columns] = block
                rz = reset_update[segment][:tasks, columns]
                hn = hidden_n[segment][:tasks, columns]
                hn.copy_(gates_h[..., 2 * hidden :])
                candidate = candidates[segment][:tasks, columns]
                torch.add(gates_x[..., : 2 * hidden], gates_h[..., : 2 * hidden], out=rz).sigmoid_()
                _tanh_(torch.addcmul(gates_x[..., 2 * hidden :], rz[..., :hidden], hn, out=candidate))
            else:
                rz = torch.add(gates_x[..., : 2 * hidden], gates_h[..., : 2 * hidden]).sigmoid_()
                candidate = _tanh_(torch.addcmul(gates_x[..., 2 * hidden :], rz[..., :hidden], gates_h[..., 2 * hidden :]))
            block.addcmul_(1 - rz[..., hidden:], candidate - block)  # h + (1 - z)(n - h): exactly h past the end
        if needs_backward:
            # d(new state)/d(pre-activations) per segment: candidate (n), update (z), reset (r).
            # (candidates and hidden_n are not needed after this: overwritten in place.)
            factors = []
            for rz, candidate, previous, hn in zip(reset_update, candidates, previous_states, hidden_n):
                reset, update = rz[..., :hidden], rz[..., hidden:]
                one_minus_update = 1 - update
                factor_update = torch.sub(previous, candidate).mul_(update).mul_(one_minus_update)
                factor_candidate = torch.addcmul(one_minus_update, one_minus_update, candidate.mul_(candidate), value=-1)
                factor_reset = hn.mul_(torch.addcmul(reset, reset, reset, value=-1))
                factors += [factor_candidate, factor_update, factor_reset]
            ctx.save_for_backward(weight_ih, weight_hh, table_inputs, *reset_update, *previous_states, *factors)
            ctx.layout, ctx.shared = layout, (ih_shared, hh_shared)
        return state

    @staticmethod
    def backward(ctx, grad_state):
        layout = ctx.layout
        count = len(layout.segments)
        weight_ih, weight_hh, table_inputs, *rest = ctx.saved_tensors
        reset_update, previous_states, factors = rest[:count], rest[count : 2 * count], rest[2 * count :]
        ih_shared, hh_shared = ctx.shared
        n, gates, hidden = weight_hh.shape
        grad_gates_x = [grad_state.new_zeros(p.shape[0], p.shape[1], gates) for p in previous_states]
        grad_gates_h = [grad_state.new_zeros(p.shape[0], p.shape[1], gates) for p in previous_states]
        grad = grad_state.clone()
        shared_hh = weight_hh[0]
        for segment, tasks, rows, column in reversed(layout.steps):
            columns = slice(column, column + rows)
            block = grad[:tasks, :rows]
            factor_candidate, factor_update, factor_reset = (f[:tasks, columns] for f in factors[3 * segment : 3 * segment + 3])
            rz = reset_update[segment][:tasks, columns]
            grad_x = grad_gates_x[segment][:tasks, columns]
            grad_h = grad_gates_h[segment][:tasks, columns]
            grad_candidate = grad_x[..., 2 * hidden :]
            torch.mul(block, factor_candidate, out=grad_candidate)
            torch.mul(block, factor_update, out=grad_x[..., hidden : 2 * hidden])
            torch.mul(grad_candidate, factor_reset, out=grad_x[..., :hidden])
            grad_h[..., : 2 * hidden] = grad_x[..., : 2 * hidden]
            torch.mul(grad_candidate, rz[..., :hidden], out=grad_h[..., 2 * hidden :])
            # The state's own share, z (1 past the end), plus the gates' share; in place when the
            # block is contiguous (every row of the tasks still running).
            if block.is_contiguous():
                block.mul_(rz[..., hidden:])
                if hh_shared:
                    block.view(tasks * rows, hidden).addmm_(grad_h.reshape(tasks * rows, gates), shared_hh)
                else:
                    block.baddbmm_(grad_h, weight_hh[:tasks])
            else:
                kept = block * rz[..., hidden:]
                if hh_shared:
                    grad[:tasks, :rows] = torch.addmm(kept.view(tasks * rows, hidden), grad_h.reshape(tasks * rows, gates), shared_hh).view(tasks, rows, hidden)
                else:
                    grad[:tasks, :rows] = torch.baddbmm(kept, grad_h, weight_hh[:tasks])
        needs = ctx.needs_input_grad
        grad_embedding = grad_weight_ih = grad_bias_ih = grad_weight_hh = grad_bias_hh = None
        if needs[5]:
            grad_weight_hh = _segment_sum_products(grad_gates_h, previous_states)
        if needs[6]:
            grad_bias_hh = _segment_sums(grad_gates_h)
        if any(needs[2:5]):
            # The input side's gradients through the row table: each row's summed gate gradients.
            slots_total, in_dim = table_inputs.shape[1], table_inputs.shape[2]
            grad_table = grad_state.new_zeros(n * slots_total, gates)
            for slots, grad_x in zip(layout.slots, grad_gates_x):
                grad_table.index_add_(0, slots.flatten(), grad_x.view(-1, gates))
            grad_table = grad_table.view(n, slots_total, gates)
            if needs[3]:
                grad_weight_ih = torch.bmm(grad_table.transpose(1, 2), table_inputs)
            if needs[4]:
                grad_bias_ih = grad_table.sum(1)
            if needs[2]:
                if ih_shared:
                    grad_rows = grad_table.view(-1, gates) @ weight_ih[0]
                else:
                    grad_rows = torch.bmm(grad_table, weight_ih).view(-1, in_dim)
                grad_embedding = grad_rows[layout.row_slot]  # each flat row sits in exactly one slot
        return None, None, grad_embedding, grad_weight_ih, grad_bias_ih, grad_weight_hh, grad_bias_hh


def _segment_sum_products(grads: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per task, the sum over segments of grad^T value ([a_k, cols, G] x [a_k, cols, I] -> [n, G, I];
    the first segment holds every task)."""
    total = torch.bmm(grads[0].transpose(1, 2), values[0])
    for grad, value in zip(grads[1:], values[1:]):
        total[: grad.shape[0]].baddbmm_(grad.transpose(1, 2), value)
    return total


def _segment_sums(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per task, the sum of grads over every segment's columns ([a_k, cols, G] -> [n, G])."""
    total = grads[0].sum(1)
    for grad in grads[1:]:
        total[: grad.shape[0]] += grad.sum(1)
    return total


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
        self.fused = True  # the compiled kernel (meta/fused.py) where it loads, else SegmentedGRU
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
            if self.fused and kernel_side is not None and tensors[0].device.type == "cpu" and all(t.dtype == torch.float32 for t in tensors) and load_fused() is not None:
                state = FusedGRU.apply(kernel_side, layout.row_table, layout.row_slot, needs_backward, *tensors)
            else:
                state = SegmentedGRU.apply(layout, needs_backward, *tensors)
        else:
            state = self._packed_state(getattr(batch, f"{side}_rows"), getattr(batch, f"{side}_mask"), getattr(batch, f"{side}_steps"), training)
        return self._output(state, dropout, training)

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


def update_in_place(stacked: StackedParams, lr: float, grads: Sequence[torch.Tensor | None], row_rates: torch.Tensor | None = None, task_rates: torch.Tensor | None = None) -> StackedParams:
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


class BatchedMAML:
    """Task-batched first-order MAML inner loop for GRURecommender (same contract as PerTaskEngine)."""

    name = "batched"
    fused = True  # one-layer GRUs on the compiled kernel (meta/fused.py) where it loads
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
        stacked = StackedParams(tensors, source(model.output.weight), n_layers, lr, float(gru.dropout))
        stacked.fused = self.fused
        return stacked

    def _adapt(self, stacked: StackedParams, batch: StackedBatch, lr: float, inner_steps: int, dropout: float, training: bool, plan: TaskPlan | None = None) -> StackedParams:
        """``inner_steps`` first-order steps on the support sets, all tasks at once.

        Gradients without create_graph (first-order, as l2l's adapt with first_order=True), then
        l2l's update p <- p + (-lr * g) on the stacked tensors (``update_in_place``); the output weight's step is recorded as
        factors (see StackedParams). A ``plan`` (in stacked task order) gives task i the rate
        ``lr * rate_factors[i]`` for its first ``steps[i]`` steps and 0 after them (the batch runs
        the longest count; a finished task's weights no longer change).
        """
        for step in range(inner_steps if plan is None else max(plan.steps, default=0)):
            logits, features = stacked(batch, "support", dropout, training)
            loss = task_loss(logits, batch.support_labels)
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
        query_loss = task_loss(stacked(batch, "query", dropout, model.training)[0], batch.query_labels, weights) / n
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
                chunks.append(unstack_scores(batch, stacked(batch, "query", 0.0, False)[0].detach()))
        scores = torch.cat(chunks)
        if order == sorted(order):
            return scores
        restored = torch.empty_like(scores)
        restored[torch.tensor(order, device=scores.device)] = scores
        return restored


class SegmentedBatchedMAML(BatchedMAML):
    """The batched engine without the compiled kernel (SegmentedGRU for every one-layer GRU): the
    engine before meta/fused.py, and the fallback where the kernel cannot be built; kept so
    `bench perf full` times the two in one process."""

    name = "batched-segmented"
    fused = False
