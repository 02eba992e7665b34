"""The task-batched engine equals the per-task learn2learn reference (meta/per_task.py).

Float32 throughout, dropout 0 (the only randomness): adapted parameters, query losses, outer
gradients and query scores within 1e-5; with a trainable and a frozen embedding; with padding
(prefix lengths 1..50 in one batch); at the `full` grid's sizes (E 64, H 128). The batched paths:
today's (the compiled GRU kernel of baselines/fused.py, the shared-weights first step, in-place
updates) and the same without the kernel (SegmentedGRU: SegmentedBatchedMAML, the fallback); the
packed path of multi-layer GRUs. And the hand-written GRUs equal nn.GRU, the kernel equals SegmentedGRU.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import meta.batched.layout
import meta.batched.segmented
from baselines import fused
from baselines.fused import FusedGRU
from meta.batched import (
    BatchedMAML,
    SegmentedBatchedMAML,
    SegmentedGRU,
    batched_gru_layer,
    pack_steps,
    stack_tasks,
    step_blocks,
)
from meta.engines import BatchedEngine
from meta.per_task import PerTaskEngine, adapt
from tests.helpers import N_ITEMS, TOL, assert_close, grads_of, make_maml, make_tasks, tiny_perf_argv


@pytest.mark.parametrize("lengths_max", [1, 50])
def test_batched_gru_equals_nn_gru(lengths_max):
    torch.manual_seed(1)
    n, batch, E, H = 3, 6, 8, 16
    weights = []
    refs = []
    # Each task's rows longest first (the engine's stacking order); lengths 1..lengths_max.
    lengths = torch.randint(1, lengths_max + 1, (n, batch)).sort(dim=1, descending=True).values
    lengths[0, 0] = lengths_max
    width = int(lengths.max())
    inputs = torch.randn(n, batch, width, E)
    for task in range(n):  # random weights per task (std 0.5: the gates far from their linear range)
        gru = nn.GRU(E, H, batch_first=True)
        for p in gru.parameters():
            nn.init.normal_(p, std=0.5)
        weights.append([gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0])
        packed = nn.utils.rnn.pack_padded_sequence(inputs[task], lengths[task], batch_first=True, enforce_sorted=False)
        refs.append(gru(packed)[1][-1])
    stacked = [torch.stack(ws) for ws in zip(*weights)]
    steps, positions = step_blocks(lengths.tolist())
    mask = pack_steps((torch.arange(width) < lengths.unsqueeze(-1)).unsqueeze(-1), positions)
    out = batched_gru_layer(pack_steps(inputs, positions), mask, steps, *stacked)
    assert_close(out, torch.stack(refs), "last hidden state")
    # Gradients too (the hand-written backward) against autograd through nn.GRU.
    grads_ref = torch.autograd.grad(torch.stack(refs).pow(2).sum(), [w for ws in weights for w in ws])
    grads = torch.autograd.grad(out.pow(2).sum(), stacked)
    for index, grad in enumerate(grads):
        assert_close(grad, torch.stack(grads_ref[index::4]), f"gradient of GRU tensor {index}")
    # Padding must not leak: garbage after each sequence's end changes nothing.
    noisy = inputs.clone()
    noisy[torch.arange(width).view(1, 1, width).expand(n, batch, width) >= lengths.unsqueeze(-1)] = 7.0
    assert_close(batched_gru_layer(pack_steps(noisy, positions), mask, steps, *stacked), out, "state with garbage padding")
    # The autograd path (lower layers of a stacked GRU) gives the same last state.
    assert_close(batched_gru_layer(pack_steps(inputs, positions), mask, steps, *stacked, keep_outputs=True)[0], out, "autograd path")


@pytest.mark.parametrize("engine_class", [BatchedMAML, SegmentedBatchedMAML])
@pytest.mark.parametrize("frozen_embedding", [False, True])
def test_adapted_parameters_equal_l2l(frozen_embedding, engine_class):
    maml = make_maml(2, frozen_embedding)
    model = maml.module
    tasks = make_tasks(4, K=3, Q=4, n_items=N_ITEMS, seed=3)
    inner_steps = 3
    engine = engine_class()
    batch = stack_tasks(tasks, model.embedding.num_embeddings)
    stacked = engine._stacked(model, batch, len(tasks), detach=False, lr=maml.lr)
    stacked = engine._adapt(stacked, batch, maml.lr, inner_steps, 0.0, False)
    rows = stacked._parameters["embedding_rows"]
    for index, original in enumerate(batch.task_order.tolist()):  # stacked index -> caller's task
        learner = adapt(maml, tasks[original], inner_steps)
        adapted = dict(learner.module.named_parameters())
        for layer_name, stacked_name in [
            ("gru.weight_ih_l0", "weight_ih_l0"),
            ("gru.weight_hh_l0", "weight_hh_l0"),
            ("gru.bias_ih_l0", "bias_ih_l0"),
            ("gru.bias_hh_l0", "bias_hh_l0"),
            ("output.bias", "output_bias"),
        ]:
            assert_close(stacked._parameters[stacked_name][index], adapted[layer_name], layer_name)
        assert_close(stacked.dense_output_weight()[index], adapted["output.weight"], "output.weight")
        # The task's embedding rows equal the l2l clone's table at those items; others unchanged.
        vocab = model.embedding.num_embeddings
        mine = torch.unique(torch.cat([batch.support_rows[index].flatten(), batch.query_rows[index].flatten()]))
        items = batch.row_items[mine]
        assert_close(rows[mine], adapted["embedding.weight"][items], "embedding rows")
        untouched = torch.ones(vocab, dtype=torch.bool)
        untouched[items] = False
        assert_close(adapted["embedding.weight"][untouched], model.embedding.weight[untouched], "rows no task uses")
        if frozen_embedding:
            assert torch.equal(adapted["embedding.weight"], model.embedding.weight)


@pytest.mark.parametrize("engine_class", [BatchedEngine, SegmentedBatchedMAML])
@pytest.mark.parametrize("frozen_embedding", [False, True])
def test_meta_gradient_equals_per_task(frozen_embedding, engine_class):
    tasks = make_tasks(5, K=3, Q=4, n_items=N_ITEMS, seed=4)
    reference = make_maml(5, frozen_embedding)
    batched = make_maml(5, frozen_embedding)
    loss_ref = PerTaskEngine().meta_gradient(reference, tasks, inner_steps=3)
    loss_batched = engine_class().meta_gradient(batched, tasks, inner_steps=3)
    assert abs(loss_ref - loss_batched) <= TOL
    ref_grads, batched_grads = grads_of(reference), grads_of(batched)
    for name, grad in ref_grads.items():
        if grad is None:
            assert frozen_embedding and name == "embedding.weight" and batched_grads[name] is None
            continue
        assert grad.abs().max() > 0, name
        assert_close(batched_grads[name], grad, f"outer gradient of {name}")
    # Meta-parameters themselves are untouched by adaptation.
    for (name, p), q in zip(reference.module.named_parameters(), batched.module.parameters()):
        assert torch.equal(p, q), name


def test_meta_gradient_accumulates_and_two_layers():
    tasks = make_tasks(3, K=2, Q=3, n_items=N_ITEMS, seed=6, max_len=12)
    reference = make_maml(7, False, n_layers=2)
    batched = make_maml(7, False, n_layers=2)
    for _ in range(2):  # a second call adds into .grad, as backward() does
        PerTaskEngine().meta_gradient(reference, tasks, inner_steps=2)
        BatchedEngine().meta_gradient(batched, tasks, inner_steps=2)
    for (name, p), q in zip(reference.module.named_parameters(), batched.module.parameters()):
        assert_close(q.grad, p.grad, f"accumulated gradient of {name}")


@pytest.mark.parametrize("engine_class", [BatchedEngine, SegmentedBatchedMAML])
@pytest.mark.parametrize("inner_steps", [0, 2])
def test_query_scores_equal_per_task(inner_steps, engine_class):
    tasks = make_tasks(6, K=3, Q=4, n_items=N_ITEMS, seed=8)
    maml = make_maml(9, frozen_embedding=False)
    maml.module.dropout.p = 0.5  # evaluation must switch dropout off in both engines
    before = [p.detach().clone() for p in maml.parameters()]
    ref = PerTaskEngine().query_scores(maml, tasks, inner_steps)
    mine = engine_class().query_scores(maml, tasks, inner_steps)
    assert not mine.requires_grad
    assert_close(mine, ref, "query scores")
    assert all(torch.equal(a, b) for a, b in zip(before, maml.parameters()))
    assert all(p.grad is None for p in maml.parameters())


def test_stack_tasks_sorts_and_maps_back():
    tasks = make_tasks(5, K=3, Q=4, n_items=N_ITEMS, seed=10)
    batch = stack_tasks(tasks, N_ITEMS + 1)
    longest = [int(tasks[i].support_lengths.max()) for i in batch.task_order.tolist()]
    assert longest == sorted(longest, reverse=True)
    for side in ("support", "query"):
        rows, mask, steps = getattr(batch, f"{side}_rows"), getattr(batch, f"{side}_mask"), getattr(batch, f"{side}_steps")
        for index, original in enumerate(batch.task_order.tolist()):
            task = tasks[original]
            prefixes, lengths = getattr(task, f"{side}_prefixes"), getattr(task, f"{side}_lengths")
            # Rebuild each stacked row's prefix from the packed positions inside its length.
            rebuilt: dict[int, list[int]] = {}
            for tasks_running, rows_running, offset in steps:
                for row in range(rows_running):
                    if index < tasks_running and bool(mask[index, offset + row, 0]):
                        rebuilt.setdefault(row, []).append(int(batch.row_items[rows[index, offset + row]]))
            mine = sorted(tuple(v) for v in rebuilt.values())
            theirs = sorted(tuple(p[:n].tolist()) for p, n in zip(prefixes, lengths.tolist()))
            assert mine == theirs, side
        # No running position lies outside its step's block.
        for tasks_running, rows_running, offset in steps:
            assert int(mask[tasks_running:, offset : offset + rows_running].sum()) == 0
    for index, original in enumerate(batch.task_order.tolist()):
        for row, source in enumerate(batch.query_order[index].tolist()):
            assert int(batch.query_labels[index, row]) == int(tasks[original].query_labels[source])


def test_dropout_is_applied_in_training():
    tasks = make_tasks(4, K=3, Q=4, n_items=N_ITEMS, seed=11)
    maml = make_maml(12, False)
    maml.module.dropout.p = 0.5
    torch.manual_seed(0)
    first = BatchedEngine().meta_gradient(maml, tasks, inner_steps=1)
    torch.manual_seed(1)
    second = BatchedEngine().meta_gradient(maml, tasks, inner_steps=1)
    assert first != second  # masks drawn: the loss depends on the draw
    maml.module.eval()
    assert BatchedEngine().meta_gradient(maml, tasks, 1) == BatchedEngine().meta_gradient(maml, tasks, 1)


def test_perf_command_smoke(tmp_path):
    """`bench perf engines` runs end to end on a tiny config and writes its figures (not a timing
    test); the old form `bench perf [options]` is the same command."""
    import json

    from bench.commands.cli import main

    out = tmp_path / "perf.json"
    argv = tiny_perf_argv(out, rss_iterations=2)
    assert main(argv) == 0
    figures = json.loads(out.read_text())
    assert set(figures["engines"]) == {"per-task", "batched", "notebook"}
    assert figures["threads"] == 1 and figures["matmul_gflops"] > 0 and figures["gru4rec_pairs_per_s"] > 0
    assert "grid_projection" not in figures  # the one projection is `python -m bench project`
    assert main(["perf", *argv[2:-1], str(tmp_path / "old.json")]) == 0
    assert set(json.loads((tmp_path / "old.json").read_text())["engines"]) == {"per-task", "batched", "notebook"}


# ----------------------------------------------------------------------------------------------
# Today's path in detail: SegmentedGRU, the shared-weights first step, segments, the full sizes


def segmented_inputs(seed: int, n: int = 5, E: int = 8, H: int = 16, max_len: int = 50):
    """A stacked batch's support layout and random per-task GRU weights (std 0.5) for it."""
    tasks = make_tasks(n, K=4, Q=3, n_items=N_ITEMS, seed=seed, max_len=max_len)
    batch = stack_tasks(tasks, N_ITEMS + 1)
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return (0.5 * torch.randn(*shape, generator=generator)).requires_grad_()

    embedding = rand(batch.row_items.numel(), E)
    weights = [rand(n, 3 * H, E), rand(n, 3 * H), rand(n, 3 * H, H), rand(n, 3 * H)]
    return tasks, batch, embedding, weights


def test_segmented_gru_equals_nn_gru_and_its_gradients():
    _, batch, embedding, weights = segmented_inputs(40)
    n, H = weights[2].shape[0], weights[2].shape[2]
    out = SegmentedGRU.apply(batch.support_layout, True, embedding, *weights)
    grads = torch.autograd.grad(out.pow(2).sum(), [embedding, *weights])
    # Reference: nn.GRU per task on the same (packed) sequences, with that task's weights.
    references, reference_inputs = [], []
    for index in range(n):
        gru = nn.GRU(embedding.shape[1], H, batch_first=True)
        rows = batch.support_rows[index]
        # each stacked row's prefix, rebuilt from the packed positions inside its length
        sequences: dict[int, list[int]] = {}
        for tasks_running, rows_running, offset in batch.support_steps:
            for row in range(rows_running):
                if index < tasks_running and bool(batch.support_mask[index, offset + row, 0]):
                    sequences.setdefault(row, []).append(int(rows[offset + row]))
        lengths = torch.tensor([len(sequences[row]) for row in range(len(sequences))])
        padded = torch.zeros(len(sequences), int(lengths.max()), dtype=torch.long)
        for row, sequence in sequences.items():
            padded[row, : len(sequence)] = torch.tensor(sequence)
        inputs = embedding[padded]
        for name, tensor in zip(("weight_ih_l0", "bias_ih_l0", "weight_hh_l0", "bias_hh_l0"), weights):
            setattr(gru, name, nn.Parameter(tensor[index].detach().clone()))
        packed = nn.utils.rnn.pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
        references.append(gru(packed)[1][-1])
        reference_inputs.append(gru)
    assert_close(out, torch.stack(references), "last hidden state")
    loss = torch.stack(references).pow(2).sum()
    parameters = [p for gru in reference_inputs for p in (gru.weight_ih_l0, gru.bias_ih_l0, gru.weight_hh_l0, gru.bias_hh_l0)]
    reference_grads = torch.autograd.grad(loss, [embedding, *parameters])
    assert_close(grads[0], reference_grads[0], "gradient of the embedding rows")
    for kind in range(4):
        assert_close(grads[1 + kind], torch.stack(reference_grads[1 + kind :: 4]), f"gradient of GRU tensor {kind}")


@pytest.mark.parametrize("fill", [0.0, 0.7, 1.0])
def test_shared_weights_first_step_equals_per_task_weights(fill, monkeypatch):
    """The first inner step's shared path (one matrix product over all tasks) gives every task the
    state and the gradient its own copy of the weights would, whatever the segment cut."""
    monkeypatch.setattr(meta.batched.layout, "SEGMENT_FILL", fill)
    _, batch, embedding, weights = segmented_inputs(41)
    n = weights[0].shape[0]
    meta_weights = [w[0].detach().clone().requires_grad_() for w in weights]
    shared = [w.expand(n, *w.shape) for w in meta_weights]
    copies = [w.detach().expand(n, *w.shape).contiguous().requires_grad_() for w in meta_weights]
    assert all(meta.batched.segmented._shared(w) for w in shared) and not any(meta.batched.segmented._shared(w) for w in copies)
    for side in ("support", "query"):
        layout = getattr(batch, f"{side}_layout")
        if fill == 0.0:
            assert len(layout.segments) == 1
        out_shared = SegmentedGRU.apply(layout, True, embedding, *shared)
        out_copies = SegmentedGRU.apply(layout, True, embedding, *copies)
        assert_close(out_shared, out_copies, f"{side} state")
        g_shared = torch.autograd.grad(out_shared.pow(2).sum(), [embedding, *shared])
        g_copies = torch.autograd.grad(out_copies.pow(2).sum(), [embedding, *copies])
        for index, (a, b) in enumerate(zip(g_shared, g_copies)):
            assert a.abs().max() > 0
            assert_close(a, b, f"{side} gradient {index}")


@pytest.mark.parametrize("frozen_embedding", [False, True])
def test_full_grid_sizes_equal_per_task(frozen_embedding):
    """At the `full` grid's sizes (E 64, H 128, 5 inner steps at lr 0.01 as there, the weights
    scaled up so the steps matter) the default engine still equals per-task learn2learn."""
    tasks = make_tasks(4, K=5, Q=10, n_items=N_ITEMS, seed=42)
    reference, batched = (make_maml(43, frozen_embedding, embed_dim=64, hidden_dim=128, lr=0.05) for _ in range(2))
    loss_ref = PerTaskEngine().meta_gradient(reference, tasks, inner_steps=5)
    loss_batched = BatchedEngine().meta_gradient(batched, tasks, inner_steps=5)
    assert abs(loss_ref - loss_batched) <= TOL
    for (name, p), q in zip(reference.module.named_parameters(), batched.module.parameters()):
        if frozen_embedding and name == "embedding.weight":
            assert p.grad is None and q.grad is None
            continue
        assert_close(q.grad, p.grad, f"outer gradient of {name}")
        assert torch.equal(p, q), name  # adaptation never writes into the meta-parameters
    for steps in (0, 5):
        assert_close(
            BatchedEngine().query_scores(batched, tasks, steps), PerTaskEngine().query_scores(reference, tasks, steps), f"query scores, {steps} steps"
        )


def test_dropout_draws_equal_on_the_kernel_and_segmented_gru():
    """With dropout 0.2 active (meta-training), the kernel's path and SegmentedGRU's draw the same
    masks from the same generator state, so their losses and outer gradients agree (the per-task
    path draws other masks: only p = 0 compares to it)."""
    tasks = make_tasks(4, K=5, Q=10, n_items=N_ITEMS, seed=44)
    new, old = (make_maml(45, False, embed_dim=16, hidden_dim=24, dropout=0.2) for _ in range(2))
    torch.manual_seed(7)
    loss_new = BatchedEngine().meta_gradient(new, tasks, inner_steps=3)
    torch.manual_seed(7)
    loss_old = SegmentedBatchedMAML().meta_gradient(old, tasks, inner_steps=3)
    assert abs(loss_new - loss_old) <= TOL
    for (name, p), q in zip(old.module.named_parameters(), new.module.parameters()):
        assert_close(q.grad, p.grad, f"outer gradient of {name}")


@pytest.mark.parametrize("inner_steps", [0, 2])
def test_query_scores_in_length_sorted_chunks_come_back_in_order(inner_steps):
    """query_scores adapts tasks in chunks of similar length (sorted longest first); the scores
    come back in the callers' order, equal to per-task learn2learn's, whatever the chunk size."""
    tasks = make_tasks(7, K=3, Q=4, n_items=N_ITEMS, seed=46)
    maml = make_maml(47, frozen_embedding=False)
    reference = PerTaskEngine().query_scores(maml, tasks, inner_steps)
    for chunk in (2, 3, 7):
        engine = BatchedMAML()
        engine.eval_chunk = chunk
        assert_close(engine.query_scores(maml, tasks, inner_steps), reference, f"query scores, chunks of {chunk}")


# The compiled kernel (baselines/fused.py): it builds here, and it equals SegmentedGRU


def test_fused_kernel_builds_and_the_engine_uses_it():
    """The batched engine's GRU runs on the compiled kernel on this machine (g++ and ninja present);
    BENCH_FUSED_GRU=0 is the only way to the fallback, and then the engine says so."""
    if not fused.enabled():
        pytest.skip("BENCH_FUSED_GRU=0: the kernel is switched off")
    assert fused.load() is not None, fused.kernel_status()
    assert fused.kernel_status() == "fused C++ kernel"
    calls = []
    original = FusedGRU.forward

    def spy(ctx, *args):
        calls.append(args[0].lengths.shape)
        return original(ctx, *args)

    tasks = make_tasks(3, K=2, Q=3, n_items=N_ITEMS, seed=50, max_len=9)
    try:
        FusedGRU.forward = staticmethod(spy)
        BatchedEngine().meta_gradient(make_maml(51, False), tasks, inner_steps=2)
        SegmentedBatchedMAML().meta_gradient(make_maml(51, False), tasks, inner_steps=2)
    finally:
        FusedGRU.forward = staticmethod(original)
    # 2 support passes and 1 query pass, by BatchedEngine only (the segmented engine never calls it)
    assert calls == [(3, 2), (3, 2), (3, 3)]


@pytest.mark.parametrize("hidden, rows", [(16, 4), (12, 12), (40, 7)])
@pytest.mark.parametrize("shared", [False, True])
def test_fused_gru_equals_segmented_gru(hidden, rows, shared):
    """State and the gradients of all five inputs, per-task or shared (expanded) weights, hidden
    sizes that are and are not multiples of the kernel's 16-float vectors, more rows per step
    than its 5-row blocks; each task's lengths 1..50 (so rows end at different steps)."""
    if fused.load() is None:
        pytest.skip(f"kernel unavailable: {fused.kernel_status()}")
    n, E = 5, 8
    tasks = make_tasks(n, K=rows, Q=3, n_items=N_ITEMS, seed=52 + hidden)
    batch = stack_tasks(tasks, N_ITEMS + 1)
    generator = torch.Generator().manual_seed(hidden)
    scale = 0.5 * (16 / hidden) ** 0.5

    def rand(*shape):
        return (scale * torch.randn(*shape, generator=generator)).requires_grad_()

    embedding = rand(batch.row_items.numel(), E)
    weights = [rand(n, 3 * hidden, E), rand(n, 3 * hidden), rand(n, 3 * hidden, hidden), rand(n, 3 * hidden)]
    used = [w[0].expand(n, *w.shape[1:]) for w in weights] if shared else weights
    for side in ("support", "query"):
        layout, kernel_side = getattr(batch, f"{side}_layout"), getattr(batch, f"{side}_kernel")
        reference = SegmentedGRU.apply(layout, True, embedding, *used)
        out = FusedGRU.apply(kernel_side, layout.row_table, layout.row_slot, True, embedding, *used)
        assert_close(out, reference, f"{side} state")
        with torch.no_grad():  # the scoring path (nothing saved) gives the same state
            assert_close(
                FusedGRU.apply(kernel_side, layout.row_table, layout.row_slot, False, embedding, *used), reference, f"{side} state, no backward"
            )
        probe = torch.randn(out.shape, generator=generator)
        expected = torch.autograd.grad((reference * probe).sum(), [embedding, *weights])
        got = torch.autograd.grad((out * probe).sum(), [embedding, *weights])
        for index, (a, b) in enumerate(zip(got, expected)):
            assert b.abs().max() > 0
            assert_close(a, b, f"{side} gradient {index}")


def test_fused_gru_holds_a_finished_row():
    """A row past its length keeps its state: changing the items after a row's end (the padding
    of the kernel's slot table) changes nothing."""
    if fused.load() is None:
        pytest.skip(f"kernel unavailable: {fused.kernel_status()}")
    tasks = make_tasks(3, K=4, Q=2, n_items=N_ITEMS, seed=60, max_len=20)
    batch = stack_tasks(tasks, N_ITEMS + 1)
    torch.manual_seed(61)
    embedding = torch.randn(batch.row_items.numel(), 8)
    weights = [torch.randn(3, 48, 8), torch.randn(3, 48), torch.randn(3, 48, 16) * 0.3, torch.randn(3, 48)]
    side, layout = batch.support_kernel, batch.support_layout
    out = FusedGRU.apply(side, layout.row_table, layout.row_slot, False, embedding, *weights)
    ended = torch.arange(side.slots.shape[2]).view(1, 1, -1) >= side.lengths.unsqueeze(-1)
    assert ended.any()
    noisy = side._replace(slots=torch.where(ended, torch.zeros_like(side.slots), side.slots))
    assert not torch.equal(noisy.slots, side.slots)
    assert_close(FusedGRU.apply(noisy, layout.row_table, layout.row_slot, False, embedding, *weights), out, "state with other padding")
    assert_close(out, SegmentedGRU.apply(layout, False, embedding, *weights), "state against SegmentedGRU")


# Two kernel paths the equality tests above never take: more than one thread, and the exp clamp


def _kernel_inputs(n: int, hidden: int, rows: int, seed: int, scale: float, hh_scale: float | None = None):
    """A stacked batch of n tasks (lengths 1..50) and leaf inputs for FusedGRU / SegmentedGRU:
    embedding rows [R, 8] and per-task weights, N(0, scale) (W_hh, b_hh: N(0, hh_scale))."""
    tasks = make_tasks(n, K=rows, Q=3, n_items=N_ITEMS, seed=seed)
    batch = stack_tasks(tasks, N_ITEMS + 1)
    generator = torch.Generator().manual_seed(seed)
    hh = scale if hh_scale is None else hh_scale

    def rand(s, *shape):
        return (s * torch.randn(*shape, generator=generator)).requires_grad_()

    embedding = rand(scale, batch.row_items.numel(), 8)
    weights = [rand(scale, n, 3 * hidden, 8), rand(scale, n, 3 * hidden), rand(hh, n, 3 * hidden, hidden), rand(hh, n, 3 * hidden)]
    return batch, embedding, weights, generator


def _fused_state_and_grads(batch, side: str, embedding, weights, probe):
    layout, kernel_side = getattr(batch, f"{side}_layout"), getattr(batch, f"{side}_kernel")
    out = FusedGRU.apply(kernel_side, layout.row_table, layout.row_slot, True, embedding, *weights)
    return out, torch.autograd.grad((out * probe).sum(), [embedding, *weights])


@pytest.mark.parametrize("shared", [False, True])
def test_fused_gru_on_two_threads_equals_one_thread_bit_for_bit(shared):
    """The kernel's multi-threaded path (at::parallel_for over tasks, taken only with more than one
    torch thread; conftest pins the suite to one): 9 tasks of uneven lengths split over 2 threads give
    the 1-thread state and all five gradients bit for bit (tasks are independent, slots disjoint)."""
    if fused.load() is None:
        pytest.skip(f"kernel unavailable: {fused.kernel_status()}")
    n = 9
    batch, embedding, weights, generator = _kernel_inputs(n, hidden=20, rows=7, seed=70, scale=0.5)
    used = [w[0].expand(n, *w.shape[1:]) for w in weights] if shared else weights
    for side in ("support", "query"):
        probe = torch.randn(n, getattr(batch, f"{side}_kernel").lengths.shape[1], 20, generator=generator)
        one = _fused_state_and_grads(batch, side, embedding, used, probe)
        previous = torch.get_num_threads()
        try:
            torch.set_num_threads(2)
            assert torch.get_num_threads() == 2
            two = _fused_state_and_grads(batch, side, embedding, used, probe)
        finally:
            torch.set_num_threads(previous)
        assert torch.equal(one[0], two[0]), f"{side} state"
        for index, (a, b) in enumerate(zip(one[1], two[1])):
            assert torch.equal(a, b), f"{side} gradient {index}"


def exp_clamp() -> float:
    """The larger bound of the kernel's exp clamp (baselines/fused_gru.cpp's vexp: x into [-lo, hi]), read from the source."""
    found = re.search(r"lo = vf\{\} - ([0-9.]+)f, hi = vf\{\} \+ ([0-9.]+)f", fused.SOURCE.read_text())
    assert found, "vexp's clamp not found in baselines/fused_gru.cpp"
    return max(float(found.group(1)), float(found.group(2)))


@pytest.mark.parametrize("shared", [False, True])
def test_fused_gru_past_the_exp_clamp_equals_segmented_gru_and_is_finite(shared):
    """Pre-activations far past the kernel's exp clamp (|x| in the thousands: saturated gates) give
    a finite state and gradients equal to SegmentedGRU's (torch's sigmoid, no clamp). Without the
    clamp the exponent bits of exp(x) overflow: the gates would be garbage."""
    if fused.load() is None:
        pytest.skip(f"kernel unavailable: {fused.kernel_status()}")
    n, hidden = 5, 16
    batch, embedding, weights, generator = _kernel_inputs(n, hidden=hidden, rows=6, seed=80, scale=30.0, hh_scale=3.0)
    used = [w[0].expand(n, *w.shape[1:]) for w in weights] if shared else weights
    # The inputs are in the clamped regime whatever the state: |x W_ih^T + b_ih| less the most that
    # h W_hh^T + b_hh can add (|h| <= 1) exceeds the clamp, both signs, for most (task, row, gate)
    # entries of the input table (the candidate's tanh is 2 sigmoid(2x) - 1: half the bound).
    clamp = exp_clamp()
    with torch.no_grad():
        weight_ih, bias_ih, weight_hh, bias_hh = used
        projections = torch.einsum("re,nge->nrg", embedding, weight_ih) + bias_ih.unsqueeze(1)  # [n, R, 3H]
        reach = (weight_hh.abs().sum(2) + bias_hh.abs()).unsqueeze(1)
        past = projections.abs() - reach > torch.tensor([clamp] * (2 * hidden) + [clamp / 2] * hidden)
        assert past.float().mean() > 0.8
        assert (past & (projections > 0)).any() and (past & (projections < 0)).any()
    for side in ("support", "query"):
        layout, kernel_side = getattr(batch, f"{side}_layout"), getattr(batch, f"{side}_kernel")
        reference = SegmentedGRU.apply(layout, True, embedding, *used)
        out = FusedGRU.apply(kernel_side, layout.row_table, layout.row_slot, True, embedding, *used)
        assert torch.isfinite(out).all()
        assert_close(out, reference, f"{side} state")
        probe = torch.randn(out.shape, generator=generator)
        expected = torch.autograd.grad((reference * probe).sum(), [embedding, *weights])
        got = torch.autograd.grad((out * probe).sum(), [embedding, *weights])
        for index, (a, b) in enumerate(zip(got, expected)):
            assert torch.isfinite(a).all() and b.abs().max() > 0, f"{side} gradient {index}"
            assert_close(a, b, f"{side} gradient {index}")


# ----------------------------------------------------------------------------------------------
# A repeat-aware model (baselines/model.py RepeatHead): its head adapted per task in the stacked tensors


def real_items(scores: torch.Tensor) -> torch.Tensor:
    """Scores without the padding column (-inf in a repeat model's scores: no difference to take there)."""
    return scores[..., 1:]


@pytest.mark.parametrize("engine_class", [BatchedEngine, SegmentedBatchedMAML])
@pytest.mark.parametrize("n_layers", [1, 2])
def test_repeat_model_meta_gradient_and_query_scores_equal_per_task(engine_class, n_layers):
    """The batched engine (kernel, SegmentedGRU, the packed multi-layer path) adapts the repeat head's
    stacked tensors with the rest: the query loss, every outer gradient (the head's included) and the
    query scores, zero-shot and adapted, equal per-task learn2learn."""
    tasks = make_tasks(5, K=3, Q=4, n_items=N_ITEMS, seed=41, max_len=50 if n_layers == 1 else 12)
    reference, batched = (make_maml(42, False, n_layers=n_layers, repeat=True) for _ in range(2))
    loss_reference = PerTaskEngine().meta_gradient(reference, tasks, inner_steps=3)
    loss_batched = engine_class().meta_gradient(batched, tasks, inner_steps=3)
    assert abs(loss_reference - loss_batched) <= TOL
    reference_grads, batched_grads = grads_of(reference), grads_of(batched)
    assert {name for name in reference_grads if name.startswith("repeat.")} == {
        "repeat.gate.weight",
        "repeat.gate.bias",
        "repeat.recency",
        "repeat.logit_scale",
    }
    for name, grad in reference_grads.items():
        assert grad.abs().max() > 0, name
        assert_close(batched_grads[name], grad, f"outer gradient of {name}")
    for steps in (0, 2):
        ours, theirs = engine_class().query_scores(reference, tasks, steps), PerTaskEngine().query_scores(reference, tasks, steps)
        assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
        assert_close(real_items(ours), real_items(theirs), f"query scores, {steps} steps")


def test_repeat_model_with_a_task_plan_equals_per_task():
    """SRS-adaptive MAML's TaskPlan (per-task rates, step counts, loss weights) on a repeat model."""
    from meta.tasks import TaskPlan

    tasks = make_tasks(4, K=3, Q=4, n_items=N_ITEMS, seed=43)
    plan = TaskPlan((1.0, 0.5, 2.0, 0.3), (3, 1, 0, 2), (1.0, 0.2, 0.5, 2.0))
    reference, batched = (make_maml(44, False, repeat=True) for _ in range(2))
    loss_reference = PerTaskEngine().meta_gradient(reference, tasks, 3, plan=plan)
    loss_batched = BatchedEngine().meta_gradient(batched, tasks, 3, plan=plan)
    assert abs(loss_reference - loss_batched) <= TOL
    for name, grad in grads_of(reference).items():
        assert_close(grads_of(batched)[name], grad, f"outer gradient of {name}")
    ours, theirs = BatchedEngine().query_scores(reference, tasks, 3, plan=plan), PerTaskEngine().query_scores(reference, tasks, 3, plan=plan)
    assert_close(real_items(ours), real_items(theirs), "query scores with a plan")
