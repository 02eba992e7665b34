"""The packed GRU path: one layer over the step-packed [n, M] layout with per-task weights and a
hand-written backward (MaskedGRURecurrence), and the autograd path for the lower layers of a
stacked GRU (batched_gru_layer). Multi-layer GRUs take it for every layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
