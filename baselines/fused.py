"""The batched engine's compiled GRU recurrence (baselines/fused_gru.cpp): loading it, and its autograd Function.

The kernel runs each task's whole sequence with its own W_hh hot in cache (a register-blocked small
matrix product per step, the gate work fused per row), instead of one batched product per step
that streams every task's weights from memory; see the C++ file's header for the measurements.
It is built once per machine with PyTorch's C++ extension loader (g++ and ninja; about 20-60 s,
cached under TORCH_EXTENSIONS_DIR, default ~/.cache/torch_extensions) the first time the engine
needs it, compiled for the building CPU (-march=native, so the build's name carries a digest of
the CPU's model and flags). Where it cannot be built (no compiler), or with BENCH_FUSED_GRU=0, the
engine takes meta/batched/segmented.py's SegmentedGRU, which it equals (tests/test_batched.py), and says so
once on stderr; ``kernel_status()`` is recorded with each run's versions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import sys
from pathlib import Path
from typing import NamedTuple

import torch

SOURCE = Path(__file__).with_name("fused_gru.cpp")
CFLAGS = ["-O3", "-march=native"]

_module = None
_error: str | None = None
_tried = False


class KernelSide(NamedTuple):
    """One side of a StackedBatch as the kernel reads it: each task's rows longest first."""

    slots: torch.Tensor  # [n, B, T] long: row-table slot of each position (inside the length)
    lengths: torch.Tensor  # [n, B] long, each task's rows longest first


def _cpu_digest() -> str:
    """A short digest of this CPU's model and flags (the build is -march=native)."""
    text = platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            lines = [line for line in handle if line.startswith(("model name", "flags"))]
        text += "".join(sorted(set(lines)))
    except OSError:
        pass
    source = SOURCE.read_bytes() if SOURCE.exists() else b""
    return hashlib.sha256(text.encode() + source + " ".join(CFLAGS).encode()).hexdigest()[:10]


def shared_over_tasks(tensor: torch.Tensor) -> bool:
    """Is this stacked [n, ...] tensor one tensor expanded over tasks (the meta-weights, before any
    inner step)? Then a product with it is one large matrix product instead of n small ones."""
    return tensor.stride(0) == 0 or tensor.shape[0] == 1


def enabled() -> bool:
    return os.environ.get("BENCH_FUSED_GRU", "1") != "0"


def load():
    """The compiled module, or None (disabled, or it could not be built: the reason is kept)."""
    global _module, _error, _tried
    if not enabled():
        return None
    if _tried:
        return _module
    _tried = True
    try:
        # The venv's own ninja (a dependency) when the venv is not activated.
        bin_dir = str(Path(sys.executable).parent)
        if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        logger = logging.getLogger("torch.utils.cpp_extension")
        level = logger.level
        logger.setLevel(logging.ERROR)  # "No CUDA runtime is found", logged at import on CPU machines
        try:
            from torch.utils.cpp_extension import load as load_extension

            _module = load_extension(f"bench_fused_gru_{_cpu_digest()}", [str(SOURCE)], extra_cflags=CFLAGS, verbose=False)
        finally:
            logger.setLevel(level)
    except Exception as error:  # no compiler, no ninja, a failed build: the engine falls back
        _error = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
        print(f"bench: the fused GRU kernel could not be built ({_error}); the batched engine uses SegmentedGRU (slower, equal)", file=sys.stderr)
        _module = None
    return _module


def kernel_status() -> str:
    """What the batched engine's one-layer GRU runs on, for the run records."""
    if not enabled():
        return "SegmentedGRU (BENCH_FUSED_GRU=0)"
    if not _tried:
        return "fused (not loaded yet)"
    return "fused C++ kernel" if _module is not None else f"SegmentedGRU (kernel unavailable: {_error})"


class FusedGRU(torch.autograd.Function):
    """A one-layer GRU from the embedding rows to each sequence's last state, on the compiled kernel.

    Same inputs and result as meta/batched/segmented.py's SegmentedGRU (which it equals): side (KernelSide),
    row_table [n, S] (a task's slots; R marks an empty one), row_slot [R], needs_backward, the
    embedding rows [R, E], weight_ih [n, 3H, E], bias_ih [n, 3H], weight_hh [n, 3H, H], bias_hh [n, 3H].
    The input projections are formed once per (task, item) row, as one matrix product where the
    input weights are still the shared meta-weights; W_hh shared by every task is passed once.
    First-order only.
    """

    @staticmethod
    def forward(ctx, side, row_table, row_slot, needs_backward, embedding, weight_ih, bias_ih, weight_hh, bias_hh):
        module = load()
        n, gates, hidden = weight_hh.shape
        in_dim = embedding.shape[1]
        ih_shared = shared_over_tasks(weight_ih) and shared_over_tasks(bias_ih)
        hh_shared = shared_over_tasks(weight_hh) and shared_over_tasks(bias_hh)
        table_inputs = torch.cat([embedding, embedding.new_zeros(1, in_dim)])[row_table]  # [n, S, E]
        if ih_shared:
            table = torch.addmm(bias_ih[0], table_inputs.view(-1, in_dim), weight_ih[0].t())
        else:
            table = torch.baddbmm(bias_ih.unsqueeze(1), table_inputs, weight_ih.transpose(1, 2)).view(-1, gates)
        w_hh = (weight_hh[:1] if hh_shared else weight_hh).contiguous()
        b_hh = (bias_hh[:1] if hh_shared else bias_hh).contiguous()
        outputs = module.forward(table, side.slots, side.lengths, w_hh, b_hh, bool(needs_backward))
        if needs_backward:
            ctx.save_for_backward(weight_ih, table_inputs, w_hh, *outputs[1:])
            ctx.side, ctx.row_slot, ctx.ih_shared, ctx.table_rows = side, row_slot, ih_shared, table.shape[0]
        return outputs[0]

    @staticmethod
    def backward(ctx, grad_state):
        module = load()
        weight_ih, table_inputs, w_hh, *saved = ctx.saved_tensors
        side = ctx.side
        needs = ctx.needs_input_grad
        grad_table, grad_weight_hh, grad_bias_hh = module.backward(
            grad_state.contiguous(), side.slots, side.lengths, w_hh, *saved, ctx.table_rows, bool(needs[7])
        )
        n, gates = grad_bias_hh.shape
        grad_embedding = grad_weight_ih = grad_bias_ih = None
        grad_table = grad_table.view(n, -1, gates)
        if needs[5]:
            grad_weight_ih = torch.bmm(grad_table.transpose(1, 2), table_inputs)
        if needs[6]:
            grad_bias_ih = grad_table.sum(1)
        if needs[4]:
            if ctx.ih_shared:
                grad_rows = grad_table.view(-1, gates) @ weight_ih[0]
            else:
                grad_rows = torch.bmm(grad_table, weight_ih).view(-1, weight_ih.shape[2])
            grad_embedding = grad_rows[ctx.row_slot]  # each flat row sits in exactly one slot
        return (
            None,
            None,
            None,
            None,
            grad_embedding,
            grad_weight_ih,
            grad_bias_ih,
            (grad_weight_hh if needs[7] else None),
            (grad_bias_hh if needs[8] else None),
        )
