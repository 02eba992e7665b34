"""The segmented GRU path (SegmentedGRU): one layer from the embedding rows over a SideLayout,
products and buffers per segment, one product for all tasks where the weights are still the
shared meta-weights; the compiled kernel's reference and the fallback where it does not build."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from baselines.fused import shared_over_tasks


def _tanh_(x: torch.Tensor) -> torch.Tensor:
    """tanh in place, as 2 sigmoid(2x) - 1: PyTorch's CPU tanh costs about three of its sigmoids at
    these sizes; the two differ by under 3e-7 (absolute, |tanh| <= 1)."""
    return x.mul_(2).sigmoid_().mul_(2).sub_(1)


_shared = shared_over_tasks  # (baselines/fused.py) the meta-weights expanded over tasks: one product for all


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
                    grad[:tasks, :rows] = torch.addmm(kept.view(tasks * rows, hidden), grad_h.reshape(tasks * rows, gates), shared_hh).view(
                        tasks, rows, hidden
                    )
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
