"""The task-batched engine equals the per-task learn2learn reference (meta/per_task.py).

Float32 throughout, dropout 0 (the only randomness): adapted parameters, query losses, outer
gradients and query scores within 1e-5; with a trainable and a frozen embedding; with padding
(prefix lengths 1..50 in one batch). And the hand-written batched GRU equals nn.GRU.
"""

from __future__ import annotations

import learn2learn as l2l
import pytest
import torch
from torch import nn

from baselines.model import GRURecommender, ModelConfig
from meta.batched import BatchedMAML, batched_gru_layer, pack_steps, stack_tasks, step_blocks
from meta.engines import BatchedEngine
from meta.per_task import PerTaskEngine, adapt
from meta.tasks import Task

TOL = 1e-5
N_ITEMS = 60


def make_tasks(n: int, K: int, Q: int, n_items: int, seed: int, max_len: int = 50) -> list[Task]:
    generator = torch.Generator().manual_seed(seed)

    def prefixes(count: int):
        lengths = torch.randint(1, max_len + 1, (count,), generator=generator)
        lengths[0] = 1  # always a length-1 prefix next to long ones
        padded = torch.zeros(count, int(lengths.max()), dtype=torch.long)
        for row, length in enumerate(lengths.tolist()):
            padded[row, :length] = torch.randint(1, n_items + 1, (length,), generator=generator)
        return padded, lengths

    tasks = []
    for _ in range(n):
        sp, sl = prefixes(K)
        qp, ql = prefixes(Q)
        labels = lambda count: torch.randint(1, n_items + 1, (count,), generator=generator)  # noqa: E731
        tasks.append(Task(sp, sl, labels(K), qp, ql, labels(Q)))
    return tasks


def make_maml(seed: int, frozen_embedding: bool, n_layers: int = 1, lr: float = 0.5):
    torch.manual_seed(seed)
    model = GRURecommender(ModelConfig(N_ITEMS, embed_dim=8, hidden_dim=12, n_layers=n_layers, dropout=0.0))
    with torch.no_grad():  # larger weights than the default init, so the GRU's gates all matter
        for p in model.gru.parameters():
            p.mul_(3.0)
    model.embedding.weight.requires_grad_(not frozen_embedding)
    model.train()
    return l2l.algorithms.MAML(model, lr=lr, first_order=True, allow_nograd=frozen_embedding)


def grads_of(maml) -> dict[str, torch.Tensor]:
    return {name: (p.grad.clone() if p.grad is not None else None) for name, p in maml.module.named_parameters()}


def assert_close(a, b, what):
    assert a.shape == b.shape, what
    err = float((a - b).detach().abs().max())
    assert err <= TOL, f"{what}: max abs difference {err:.2e}"


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


@pytest.mark.parametrize("frozen_embedding", [False, True])
def test_adapted_parameters_equal_l2l(frozen_embedding):
    maml = make_maml(2, frozen_embedding)
    model = maml.module
    tasks = make_tasks(4, K=3, Q=4, n_items=N_ITEMS, seed=3)
    inner_steps = 3
    engine = BatchedMAML()
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


@pytest.mark.parametrize("frozen_embedding", [False, True])
def test_meta_gradient_equals_per_task(frozen_embedding):
    tasks = make_tasks(5, K=3, Q=4, n_items=N_ITEMS, seed=4)
    reference = make_maml(5, frozen_embedding)
    batched = make_maml(5, frozen_embedding)
    loss_ref = PerTaskEngine().meta_gradient(reference, tasks, inner_steps=3)
    loss_batched = BatchedEngine().meta_gradient(batched, tasks, inner_steps=3)
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


@pytest.mark.parametrize("inner_steps", [0, 2])
def test_query_scores_equal_per_task(inner_steps):
    tasks = make_tasks(6, K=3, Q=4, n_items=N_ITEMS, seed=8)
    maml = make_maml(9, frozen_embedding=False)
    maml.module.dropout.p = 0.5  # evaluation must switch dropout off in both engines
    before = [p.detach().clone() for p in maml.parameters()]
    ref = PerTaskEngine().query_scores(maml, tasks, inner_steps)
    mine = BatchedEngine().query_scores(maml, tasks, inner_steps)
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
        for step, (tasks_running, rows_running, offset) in enumerate(steps):
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
    """`bench perf` runs end to end on a tiny config and writes its figures (not a timing test)."""
    import json

    from bench.commands.cli import main

    out = tmp_path / "perf.json"
    argv = ["perf", "--threads", "1", "--items", "30", "--embed-dim", "8", "--hidden-dim", "8", "--meta-batch", "2",
            "--eval-episodes", "3", "--repeats", "1", "--train-iterations", "1", "--inner-steps", "1",
            "--rss-iterations", "2", "--json", str(out)]
    assert main(argv) == 0
    figures = json.loads(out.read_text())
    assert set(figures["engines"]) == {"per-task", "batched", "notebook"}
    assert figures["threads"] == 1 and figures["matmul_gflops"] > 0 and figures["gru4rec_pairs_per_s"] > 0
    assert figures["grid_projection"]["batched"]["wall_s"] > 0
