"""Stacking a meta-batch for the batched engine: tasks stacked longest first, steps packed, the
packed steps cut into segments (SideLayout), (task, item) pairs mapped to flat embedding rows, and
the sides as the compiled kernel reads them (baselines/fused.py KernelSide); query scores mapped back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from baselines.fused import KernelSide


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
    support_kernel: KernelSide | None = None  # the same sides as the compiled kernel reads them (baselines/fused.py)
    query_kernel: KernelSide | None = None
    # Each side's prefixes and lengths as the stacked rows hold them (each task's longest first), for
    # the repeat head (baselines/model.py repeat_mixture), which reads a row's prefix items and ages.
    support_prefixes: torch.Tensor | None = None  # [n, K, Ts] item ids, 0-padded
    support_lengths: torch.Tensor | None = None  # [n, K]
    query_prefixes: torch.Tensor | None = None  # [n, Q, Tq]
    query_lengths: torch.Tensor | None = None  # [n, Q]


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


def side_layout(
    rows: torch.Tensor, mask: torch.Tensor, steps: tuple, row_table: torch.Tensor, row_slot: torch.Tensor, dtype=torch.float32
) -> SideLayout:
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
    stacked = torch.stack(
        [F.pad(getattr(tasks[i], prefixes)[:, :width], (0, width - min(width, getattr(tasks[i], prefixes).shape[-1]))) for i in order]
    )
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
    support, support_mask, support_labels, _, support_steps, support_items, support_lengths = _sorted_side(
        tasks, order, "support_prefixes", "support_lengths", "support_labels"
    )
    query, query_mask, query_labels, query_order, query_steps, query_items, query_lengths = _sorted_side(
        tasks, order, "query_prefixes", "query_lengths", "query_labels"
    )
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
        support_prefixes=support_items,
        support_lengths=support_lengths,
        query_prefixes=query_items,
        query_lengths=query_lengths,
    )


def unstack_scores(batch: StackedBatch, scores: torch.Tensor) -> torch.Tensor:
    """Stacked query scores [n, Q, V] back in the callers' task and query order."""
    restored = torch.empty_like(scores)
    restored[batch.task_order.unsqueeze(1), batch.query_order] = scores
    return restored
