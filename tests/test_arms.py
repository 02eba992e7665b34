"""The other arms (ANIL, Meta-SGD) and the checkpoint init: what adapts, what the outer loop
learns, a saved GRU4Rec reproduced exactly, the seed's layout shifted as the importer shifts ids."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from baselines.batching import pad_prefixes
from baselines.model import GRURecommender, ModelConfig
from bench.core.errors import BenchError
from bench.data import importers
from bench.data.pipeline import sha256_file
from bench.plan.grid import Grid, expand
from meta.algorithms import ANIL, MetaSGD
from meta.per_task import PerTaskEngine, adapt
from tests.helpers import N_ITEMS, all_scores, assert_close, fitted, make_maml, make_tasks, random_task, seed_episodes_folder, tiny_perf_argv

torch.set_num_threads(1)

BODY = ("embedding.weight", "gru.weight_ih_l0", "gru.weight_hh_l0", "gru.bias_ih_l0", "gru.bias_hh_l0")
HEAD = ("output.weight", "output.bias")


def small_model(seed: int = 0, n_items: int = 6, dropout: float = 0.0) -> GRURecommender:
    torch.manual_seed(seed)
    return GRURecommender(ModelConfig(n_items, embed_dim=3, hidden_dim=4, n_layers=1, dropout=dropout)).train()


# ----------------------------------------------------------------------------------------------
# ANIL


def test_anil_inner_loop_adapts_the_head_only_and_the_outer_step_moves_the_body():
    model = small_model()
    anil = ANIL(model, lr=0.5)
    task = random_task(1, 6)
    before = copy.deepcopy(model.state_dict())
    learner = adapt(anil, task, inner_steps=3)
    adapted_head = dict(learner.head.module.named_parameters())
    assert not torch.equal(adapted_head["weight"], model.output.weight)  # the head adapted
    assert not torch.equal(adapted_head["bias"], model.output.bias)
    assert learner.module is model  # the body is the meta body itself, not a clone ...
    assert all(torch.equal(model.state_dict()[k], before[k]) for k in before)  # ... and nothing moved

    optimizer = torch.optim.Adam(anil.parameters(), lr=0.1)
    PerTaskEngine().meta_gradient(anil, [task, random_task(2, 6)], inner_steps=3)
    assert all(model.get_parameter(name).grad.abs().sum() > 0 for name in BODY + HEAD)
    optimizer.step()
    assert all(not torch.equal(model.get_parameter(name), before[name]) for name in BODY + HEAD)


def test_anil_outer_gradient_is_the_query_gradient_with_the_head_adapted_on_fixed_features():
    """By hand: SGD on a copy of the head only, then the query loss's gradient with respect to every
    meta-parameter (first-order: the head's steps are constants)."""
    model = small_model(3)
    tasks = [random_task(4, 6), random_task(5, 6)]
    lr, steps = 0.3, 2
    expected = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for task in tasks:
        plain = copy.deepcopy(model)
        for _ in range(steps):
            with torch.no_grad():
                features = plain.features(task.support_prefixes, task.support_lengths)
            loss = F.cross_entropy(plain.output(features), task.support_labels)
            grads = torch.autograd.grad(loss, list(plain.output.parameters()))
            with torch.no_grad():
                for param, grad in zip(plain.output.parameters(), grads):
                    param -= lr * grad
        query_loss = F.cross_entropy(plain(task.query_prefixes, task.query_lengths), task.query_labels)
        names = [name for name, _ in plain.named_parameters()]
        for name, grad in zip(names, torch.autograd.grad(query_loss, list(plain.parameters()))):
            expected[name] += grad / len(tasks)
    PerTaskEngine().meta_gradient(ANIL(model, lr=lr), tasks, steps)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-5, atol=1e-7, msg=name)


# ----------------------------------------------------------------------------------------------
# Meta-SGD


def test_metasgd_inner_rates_are_parameters_that_receive_outer_gradients():
    model = small_model(6)
    meta = MetaSGD(model, lr=0.2, first_order=True)
    rates = list(meta.lrs)
    assert {id(r) for r in rates} <= {id(p) for p in meta.parameters()}  # the outer optimiser sees them
    assert all(torch.equal(r, torch.full_like(p, 0.2)) for r, p in zip(rates, model.parameters()))
    task = random_task(7, 6)
    PerTaskEngine().meta_gradient(meta, [task], inner_steps=1)
    # One first-order step p' = p - lr * g: d(query loss)/d(lr) = -g * d(query loss)/dp' (elementwise).
    plain = copy.deepcopy(model)
    support = torch.autograd.grad(F.cross_entropy(plain(task.support_prefixes, task.support_lengths), task.support_labels), list(plain.parameters()))
    with torch.no_grad():
        for param, grad in zip(plain.parameters(), support):
            param -= 0.2 * grad
    query = torch.autograd.grad(F.cross_entropy(plain(task.query_prefixes, task.query_lengths), task.query_labels), list(plain.parameters()))
    for (name, _), rate, g, q in zip(model.named_parameters(), rates, support, query):
        torch.testing.assert_close(rate.grad, -g * q, rtol=1e-5, atol=1e-8, msg=name)
    assert all(rate.grad.abs().sum() > 0 for rate in rates)
    optimizer = torch.optim.Adam(meta.parameters(), lr=0.01)
    optimizer.step()
    assert all(not torch.equal(r, torch.full_like(r, 0.2)) for r in rates)  # learned


def test_metasgd_keeps_a_frozen_embedding_and_its_rates_fixed(tiny_dataset, model_cache):
    short = {"meta_iterations": 2, "meta_batch": 4, "val_every": 2, "val_episodes": 4, "inner_lr": 0.05}
    method = fitted("metasgd", tiny_dataset, model_cache, init="gru4rec-frozen-embed", **short)
    start = fitted("gru4rec", tiny_dataset, model_cache).maml.module
    meta = method.maml
    embedding_rate = meta.lrs[0]
    assert not embedding_rate.requires_grad and torch.equal(embedding_rate, torch.full_like(embedding_rate, 0.05))
    assert torch.equal(meta.module.embedding.weight, start.embedding.weight)
    assert not torch.equal(meta.lrs[1], torch.full_like(meta.lrs[1], 0.05))  # the GRU's rates were learned (best state kept)
    task = tiny_dataset.episodes("test", 5, 10).iloc[:1]
    from meta.tasks import tasks_from_episodes

    learner = adapt(meta, tasks_from_episodes(task)[0], inner_steps=2)
    assert torch.equal(learner.module.embedding.weight, start.embedding.weight)
    assert not torch.equal(learner.module.gru.weight_hh_l0, meta.module.gru.weight_hh_l0)


def test_arms_run_through_the_registry_and_refuse_an_engine_they_lack(tiny_dataset, model_cache):
    test = tiny_dataset.episodes("test", 5, 10).iloc[:4]
    short = {"meta_iterations": 2, "meta_batch": 4, "val_every": 2, "val_episodes": 4}
    for name in ("anil", "metasgd"):
        method = fitted(name, tiny_dataset, model_cache, init="gru4rec", **short)
        scores = {mode: all_scores(method, test, mode) for mode in ("zero-shot", "few-shot")}
        assert scores["zero-shot"].shape == (4, 10, tiny_dataset.n_items + 1)
        assert not torch.equal(scores["zero-shot"], scores["few-shot"])  # few-shot adapts
    with pytest.raises(BenchError, match="does not implement metasgd"):
        fitted("metasgd", tiny_dataset, model_cache, engine="notebook", **short)


# ----------------------------------------------------------------------------------------------
# The checkpoint init


def save_gru4rec(tiny_dataset, model_cache, path):
    gru4rec = fitted("gru4rec", tiny_dataset, model_cache)
    torch.save(gru4rec.maml.module.state_dict(), path)
    return gru4rec


def test_checkpoint_init_reproduces_a_saved_gru4rec_exactly(tiny_dataset, model_cache, tmp_path):
    path = tmp_path / "gru4rec.pt"
    gru4rec = save_gru4rec(tiny_dataset, model_cache, path)
    test = tiny_dataset.episodes("test", 5, 10)
    # the architecture comes from the file, whatever the params say
    warm = fitted("maml", tiny_dataset, model_cache, init="checkpoint", init_checkpoint=str(path), meta_iterations=0, hidden_dim=7)
    assert torch.equal(all_scores(warm, test, "zero-shot"), all_scores(gru4rec, test, "zero-shot"))
    finetune = fitted("gru4rec-finetune", tiny_dataset, model_cache)
    assert torch.equal(all_scores(warm, test, "few-shot"), all_scores(finetune, test, "few-shot"))


def test_checkpoint_with_wrong_shapes_or_vocabulary_is_refused_in_one_line(tiny_dataset, model_cache, tmp_path):
    path = tmp_path / "gru4rec.pt"
    save_gru4rec(tiny_dataset, model_cache, path)
    state = torch.load(path, weights_only=True)
    cases = {
        "gru.bias_hh_l0": {**state, "gru.bias_hh_l0": state["gru.bias_hh_l0"][:-1]},
        "output.weight": {**state, "output.weight": state["output.weight"][:-1]},
        "item rows": {**state, "embedding.weight": torch.zeros(tiny_dataset.n_items + 5, state["embedding.weight"].shape[1])},
        "vocabulary does not match": {
            "state_dict": state,
            "course2id": {"not-a-course": 1, **{c: i for c, i in list(tiny_dataset.vocab.items())[1:]}},
        },
    }
    for message, broken in cases.items():
        torch.save(broken, tmp_path / "broken.pt")
        with pytest.raises(BenchError, match=message) as caught:
            fitted("maml", tiny_dataset, model_cache, init="checkpoint", init_checkpoint=str(tmp_path / "broken.pt"), meta_iterations=0)
        assert "\n" not in str(caught.value)
    with pytest.raises(BenchError, match="needs a checkpoint file"):
        fitted("anil", tiny_dataset, model_cache, init="checkpoint", meta_iterations=0)
    # a vocabulary that does match (this suite's layout, ids 1..N) is accepted
    torch.save({"state_dict": state, "course2id": dict(tiny_dataset.vocab)}, tmp_path / "with-vocab.pt")
    fitted("maml", tiny_dataset, model_cache, init="checkpoint", init_checkpoint=str(tmp_path / "with-vocab.pt"), meta_iterations=0)


def test_the_checkpoint_file_content_is_part_of_the_run_identity(tmp_path):
    grid = Grid(
        "g",
        "",
        ("d",),
        (0,),
        ((5, 10),),
        {},
        (
            {"method": "maml", "init": "checkpoint"},
            {"method": "maml", "init": "random"},
            {"method": "gru4rec"},
        ),
    )
    path = tmp_path / "a.pt"
    torch.save({"x": torch.zeros(2)}, path)
    first = expand(grid, {"d": "hash"}, overrides={"init_checkpoint": str(path)})
    first_sha = sha256_file(path)
    torch.save({"x": torch.ones(2)}, path)  # same path, other content
    second = expand(grid, {"d": "hash"}, overrides={"init_checkpoint": str(path)})
    assert first[0].hash != second[0].hash
    assert (first[0].params_dict["init_checkpoint_sha256"], second[0].params_dict["init_checkpoint_sha256"]) == (first_sha, sha256_file(path))
    # the other runs do not carry the param, so their identity is what it was without it
    plain = expand(Grid("g", "", ("d",), (0,), ((5, 10),), {}, grid.cells[1:]), {"d": "hash"})
    assert [run.hash for run in second[1:]] == [run.hash for run in plain]
    assert "init_checkpoint" not in second[1].params_dict
    with pytest.raises(BenchError, match="needs a checkpoint file"):
        expand(grid, {"d": "hash"})
    # a file changed after its runs were declared is refused when the run builds its init
    from meta.inits import checkpoint_params

    torch.save({"x": torch.full((2,), 2.0)}, path)
    with pytest.raises(BenchError, match="changed since its runs were declared"):
        checkpoint_params(second[0].params_dict)


def test_the_seed_layout_is_shifted_as_the_seed_episodes_importer_shifts_ids(tmp_path, model_cache):
    """A model in the seed's layout (a real course on id 0, no padding row) scores the seed's own
    episodes; after the importer's +1 repair of the episodes and the checkpoint init's +1 shift of the
    weights, every course keeps its scores: column c + 1 of ours is column c of the seed's."""
    seed_root = tmp_path / "seed"
    seed_episodes_folder(seed_root, first_id=0, n_items=20, K=2, Q=3)
    dataset = importers.import_seed_episodes(seed_root, name="seeded", data_dir=tmp_path)
    assert dataset.n_items == 20 and dataset.manifest["source"]["repair"]["id_shift"] == 1
    seed_model = small_model(8, n_items=19)  # 20 rows: the seed's vocabulary, course 0 on row 0
    with torch.no_grad():
        seed_model.embedding.weight[0].normal_()  # course 0 is a real course there
    course2id = json.loads((seed_root / "vocab" / "course2id.json").read_text())
    path = tmp_path / "gru_global.pth"
    torch.save({"model_state_dict": seed_model.state_dict(), "course2id": course2id}, path)

    ours = fitted("maml", dataset, model_cache, init="checkpoint", init_checkpoint=str(path), meta_iterations=0)
    model = ours.maml.module
    for course, seed_id in course2id.items():  # the importer's mapping, course by course
        row = dataset.vocab[course]
        assert row == seed_id + 1
        assert torch.equal(model.embedding.weight[row], seed_model.embedding.weight[seed_id])
        assert torch.equal(model.output.weight[row], seed_model.output.weight[seed_id])
    assert torch.equal(model.embedding.weight[0], torch.zeros(3))

    original = pd.read_parquet(seed_root / "episodes" / "episodes_test_K2_Q3.parquet")
    test = dataset.episodes("test", 2, 3)
    ours_scores = all_scores(ours, test, "zero-shot")
    for index, prefixes in enumerate(original["query_prefixes"]):
        padded, lengths = pad_prefixes([list(p) for p in prefixes])
        with torch.no_grad():
            theirs = seed_model.eval()(padded, lengths)
        torch.testing.assert_close(ours_scores[index, :, 1:], theirs, rtol=0, atol=1e-6)
    assert np.all(ours_scores[..., 0].numpy() == -np.inf)

    # without a vocabulary in the file, the row count alone says "seed layout"
    torch.save(seed_model.state_dict(), path)
    plain = fitted("maml", dataset, model_cache, init="checkpoint", init_checkpoint=str(path), meta_iterations=0)
    assert torch.equal(all_scores(plain, test, "zero-shot"), ours_scores)


# ----------------------------------------------------------------------------------------------
# ANIL, task-batched (meta/batched_anil.py) against the per-task reference


def make_anil(seed: int, frozen_embedding: bool = False) -> ANIL:
    torch.manual_seed(seed)
    model = GRURecommender(ModelConfig(N_ITEMS, embed_dim=8, hidden_dim=12, n_layers=1, dropout=0.0)).train()
    with torch.no_grad():  # larger weights than the default init, so the gates and the head's steps matter
        for p in model.parameters():
            p.mul_(3.0)
    model.embedding.weight.requires_grad_(not frozen_embedding)
    return ANIL(model, lr=0.5)


@pytest.mark.parametrize("frozen_embedding", [False, True])
def test_batched_anil_equals_per_task(frozen_embedding):
    from meta.batched_anil import _features, adapt_heads, dense_heads
    from meta.engines import BatchedEngine

    tasks = make_tasks(5, K=3, Q=4, n_items=N_ITEMS, seed=21)  # prefix lengths 1..50 in one batch
    inner_steps = 3
    reference, batched = make_anil(22, frozen_embedding), make_anil(22, frozen_embedding)
    # adapted heads
    with torch.no_grad():
        support = _features(batched.module, tasks, "support")
    steps_sum = adapt_heads(batched, support, torch.stack([t.support_labels for t in tasks]), inner_steps)
    weights, biases = dense_heads(batched, support, steps_sum)
    for index, task in enumerate(tasks):
        learner = adapt(reference, task, inner_steps)
        assert_close(weights[index], learner.head.module.weight, f"adapted head weight, task {index}")
        assert_close(biases[index], learner.head.module.bias, f"adapted head bias, task {index}")
    # query losses and outer gradients
    loss_reference = PerTaskEngine().meta_gradient(reference, tasks, inner_steps)
    loss_batched = BatchedEngine().meta_gradient(batched, tasks, inner_steps)
    assert abs(loss_reference - loss_batched) <= 1e-5
    for (name, p), q in zip(reference.module.named_parameters(), batched.module.parameters()):
        if frozen_embedding and name == "embedding.weight":
            assert p.grad is None and q.grad is None
            continue
        assert p.grad.abs().max() > 0, name
        assert_close(q.grad, p.grad, f"outer gradient of {name}")
    # query scores, zero-shot and few-shot, with dropout switched off by both
    batched.module.dropout.p = 0.5
    reference.module.dropout.p = 0.5
    for steps in (0, 2):
        assert_close(
            BatchedEngine().query_scores(batched, tasks, steps), PerTaskEngine().query_scores(reference, tasks, steps), f"query scores, {steps} steps"
        )


def test_perf_times_the_arms_beside_maml(tmp_path):
    """`bench perf engines` measures each arm on the engines that implement it (not a timing test)."""
    from bench.commands.cli import main

    out = tmp_path / "perf.json"
    argv = tiny_perf_argv(out, 0, "--engines", "per-task,batched")
    assert main(argv) == 0
    figures = json.loads(out.read_text())
    assert set(figures["engines"]) == {"per-task", "batched"}
    assert set(figures["arms"]) == {"anil (per-task)", "anil (batched)", "metasgd (per-task)", "metasgd (batched)"}
    assert all(row["meta_iteration_s"] > 0 and row["vs_maml_same_engine"]["meta_iteration"] > 0 for row in figures["arms"].values())
    assert main(argv[:-2] + ["--arms", "reptile"]) == 2


# ----------------------------------------------------------------------------------------------
# Meta-SGD, task-batched (meta/batched_metasgd.py) against the per-task reference


def make_metasgd(seed: int, frozen_embedding: bool = False, **sizes) -> MetaSGD:

    model = make_maml(seed, frozen_embedding, **sizes).module
    meta = MetaSGD(model, lr=0.5, first_order=True)
    with torch.no_grad():  # rates that differ entry by entry, as after some meta-training
        generator = torch.Generator().manual_seed(seed)
        for rate in meta.lrs:
            rate.mul_(torch.rand(rate.shape, generator=generator) + 0.5)
    return meta


@pytest.mark.parametrize("frozen_embedding", [False, True])
def test_batched_metasgd_equals_per_task(frozen_embedding):
    from meta.batched import stack_tasks
    from meta.batched_metasgd import adapt_with_rates, stacked_with_rates
    from meta.engines import BatchedEngine

    tasks = make_tasks(5, K=3, Q=4, n_items=N_ITEMS, seed=31)
    inner_steps = 3
    reference, batched = make_metasgd(32, frozen_embedding), make_metasgd(32, frozen_embedding)
    # adapted parameters
    model = batched.module
    batch = stack_tasks(tasks, model.embedding.num_embeddings)
    stacked = adapt_with_rates(stacked_with_rates(batched, batch, len(tasks), detach=False), batch, inner_steps, 0.0, False)
    for index, original in enumerate(batch.task_order.tolist()):
        adapted = dict(adapt(reference, tasks[original], inner_steps).module.named_parameters())
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            assert_close(stacked._parameters[name][index], adapted[f"gru.{name}"], name)
        assert_close(stacked._parameters["output_bias"][index], adapted["output.bias"], "output.bias")
        assert_close(stacked.dense_output_weight()[index], adapted["output.weight"], "output.weight")
        items = batch.row_items[torch.unique(torch.cat([batch.support_rows[index].flatten(), batch.query_rows[index].flatten()]))]
        rows = stacked._parameters["embedding_rows"][
            torch.unique(torch.cat([batch.support_rows[index].flatten(), batch.query_rows[index].flatten()]))
        ]
        assert_close(rows, adapted["embedding.weight"][items], "embedding rows")
    # query losses and outer gradients, the rates' included
    loss_reference = PerTaskEngine().meta_gradient(reference, tasks, inner_steps)
    loss_batched = BatchedEngine().meta_gradient(batched, tasks, inner_steps)
    assert abs(loss_reference - loss_batched) <= 1e-5
    names = [name for name, _ in reference.module.named_parameters()]
    pairs = [
        *zip(names, reference.module.parameters(), batched.module.parameters()),
        *zip([f"rate of {n}" for n in names], reference.lrs, batched.lrs),
    ]
    for name, p, q in pairs:
        if frozen_embedding and name.endswith("embedding.weight"):
            assert p.grad is None and q.grad is None
            continue
        assert p.grad.abs().max() > 0, name
        assert_close(q.grad, p.grad, f"outer gradient of {name}")
    # query scores, zero-shot and few-shot
    for steps in (0, 2):
        assert_close(
            BatchedEngine().query_scores(batched, tasks, steps), PerTaskEngine().query_scores(reference, tasks, steps), f"query scores, {steps} steps"
        )


def test_batched_metasgd_at_the_full_grid_sizes_equals_per_task():
    """Meta-SGD through today's batched path (SegmentedGRU, its shared first step) at E 64, H 128:
    the query loss and every outer gradient, the rates' included, equal per-task learn2learn."""
    from meta.engines import BatchedEngine

    tasks = make_tasks(4, K=5, Q=10, n_items=N_ITEMS, seed=33)
    reference, batched = (make_metasgd(34, embed_dim=64, hidden_dim=128, lr=0.05) for _ in range(2))
    loss_reference = PerTaskEngine().meta_gradient(reference, tasks, 5)
    loss_batched = BatchedEngine().meta_gradient(batched, tasks, 5)
    assert abs(loss_reference - loss_batched) <= 1e-5
    pairs = [*zip(reference.module.parameters(), batched.module.parameters()), *zip(reference.lrs, batched.lrs)]
    for index, (p, q) in enumerate(pairs):
        assert_close(q.grad, p.grad, f"outer gradient {index}")
    assert_close(BatchedEngine().query_scores(batched, tasks, 5), PerTaskEngine().query_scores(reference, tasks, 5), "query scores")


def test_a_checkpoint_that_does_not_fit_is_refused_before_any_run_starts(tiny_dataset, model_cache, tmp_path, capsys):
    from bench.commands.cli import main

    grid = tmp_path / "warm.toml"
    grid.write_text(
        'datasets = ["tiny"]\nseeds = [0]\nshots = [{ K = 5, Q = 10 }]\n\n'
        '[[cells]]\nmethod = "random"\n\n[[cells]]\nmethod = "anil"\ninit = "checkpoint"\n'
    )
    path = tmp_path / "gru4rec.pt"
    save_gru4rec(tiny_dataset, model_cache, path)
    state = torch.load(path, weights_only=True)
    torch.save({**state, "output.bias": state["output.bias"][:-2]}, tmp_path / "bad.pt")
    data_dir = str(tiny_dataset.root.parent.parent)
    results = tmp_path / "results"
    argv = ["run", "--grid", str(grid), "--dataset", "tiny", "--data-dir", data_dir, "--results", str(results), "--quiet"]
    capsys.readouterr()
    assert main(argv + ["--set", f"init_checkpoint={tmp_path / 'bad.pt'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "output.bias" in err and len(err.splitlines()) == 1
    assert not results.exists()  # nothing ran, nothing written
    assert main(argv + ["--set", f"init_checkpoint={path}", "--dry-run"]) == 0
    assert "anil[checkpoint]" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# A repeat-aware model (baselines/model.py RepeatHead) in ANIL and Meta-SGD, task-batched against per-task


def test_anil_adapts_a_repeat_head_with_the_output_layer_and_batched_equals_per_task():
    """ANIL's head is the output layer and the repeat head together (RepeatOutput): the inner loop
    moves both, and the batched loop's query loss, outer gradients and scores equal per-task l2l."""
    from meta.engines import BatchedEngine
    from tests.helpers import spread_repeat_head

    tasks = make_tasks(5, K=3, Q=4, n_items=N_ITEMS, seed=51)

    def make() -> ANIL:
        anil = make_anil(52)
        torch.manual_seed(53)
        model = GRURecommender(dataclasses.replace(anil.module.config, repeat=True)).train()
        model.load_state_dict({**model.state_dict(), **anil.module.state_dict()})
        spread_repeat_head(model, 53)
        return ANIL(model, lr=0.5)

    reference, batched = make(), make()
    moved = set()  # (recency and beta move only in a task with a support label in its prefix)
    for task in tasks:
        adapted = dict(adapt(reference, task, 2).head.module.named_parameters())
        assert set(adapted) == {"output.weight", "output.bias", "repeat.gate.weight", "repeat.gate.bias", "repeat.recency", "repeat.logit_scale"}
        moved |= {name for name in adapted if not torch.equal(adapted[name], reference.module.get_parameter(name))}
    assert moved == set(adapted)
    loss_reference = PerTaskEngine().meta_gradient(reference, tasks, 3)
    loss_batched = BatchedEngine().meta_gradient(batched, tasks, 3)
    assert abs(loss_reference - loss_batched) <= 1e-5
    for (name, p), q in zip(reference.module.named_parameters(), batched.module.parameters()):
        assert p.grad.abs().max() > 0, name
        assert_close(q.grad, p.grad, f"outer gradient of {name}")
    for steps in (0, 2):
        ours, theirs = BatchedEngine().query_scores(batched, tasks, steps), PerTaskEngine().query_scores(reference, tasks, steps)
        assert_close(ours[..., 1:], theirs[..., 1:], f"query scores, {steps} steps")


def test_batched_metasgd_with_a_repeat_head_equals_per_task():
    """Meta-SGD: the repeat head's tensors have their own per-entry rates, which receive outer gradients."""
    from meta.engines import BatchedEngine

    tasks = make_tasks(5, K=3, Q=4, n_items=N_ITEMS, seed=61)
    reference, batched = (make_metasgd(62, repeat=True) for _ in range(2))
    loss_reference = PerTaskEngine().meta_gradient(reference, tasks, 3)
    loss_batched = BatchedEngine().meta_gradient(batched, tasks, 3)
    assert abs(loss_reference - loss_batched) <= 1e-5
    names = [name for name, _ in reference.module.named_parameters()]
    assert {"repeat.gate.weight", "repeat.recency", "repeat.logit_scale", "repeat.gate.bias"} <= set(names)
    pairs = [
        *zip(names, reference.module.parameters(), batched.module.parameters()),
        *zip([f"rate of {n}" for n in names], reference.lrs, batched.lrs),
    ]
    for name, p, q in pairs:
        assert p.grad.abs().max() > 0, name
        assert_close(q.grad, p.grad, f"outer gradient of {name}")
    for steps in (0, 2):
        ours, theirs = BatchedEngine().query_scores(batched, tasks, steps), PerTaskEngine().query_scores(reference, tasks, steps)
        assert_close(ours[..., 1:], theirs[..., 1:], f"query scores, {steps} steps")
