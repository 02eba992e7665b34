"""SRS-adaptive MAML (meta/srs_maml.py): notebook 10's rule, the batched engine equal to per-task
learn2learn with per-task rates, step counts and outer weights, every part switchable, and a
dataset without session statistics refused before any run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.commands.cli import main
from bench.core.errors import BenchError
from bench.data.srs import EPISODE_COLUMN
from bench.methods.registry import RunContext, check_run, get_method
from meta.batched import BatchedMAML, stack_tasks
from meta.engines import BatchedEngine
from meta.per_task import PerTaskEngine, adapt
from meta.srs_maml import SRS_DEFAULTS, srs_plan
from meta.tasks import TaskPlan
from tests.conftest import SMALL_GRU4REC
from tests.helpers import N_ITEMS, TOL, assert_close, grads_of, make_maml, make_tasks, one_based_seed_folder

PARAMS = {**SRS_DEFAULTS, "inner_steps": 5}


def test_plan_follows_notebook_10():
    plan = srs_plan([0.8, 0.2, 0.5, 0.49999], PARAMS)
    assert plan.rate_factors == (0.8, 0.2, 0.5, 0.49999)  # alpha_i = alpha * SRS_i
    assert plan.steps == (3, 7, 3, 7)  # K_MIN if SRS_i >= tau (0.5) else K_MAX
    assert plan.weights == (0.8, 0.2, 0.5, 0.49999)  # the outer loss weights SRS_i
    off = srs_plan([0.8, 0.2], {**PARAMS, "srs_adaptive_steps": False, "srs_scale_rate": False, "srs_weight_outer": False})
    assert off == TaskPlan((1.0, 1.0), (5, 5), (1.0, 1.0))  # every part off: plain MAML
    assert srs_plan([0.8, 0.2], {**PARAMS, "srs_tau": 0.1}).steps == (3, 3)
    assert plan.step_factors(2) == [0.8, 0.2, 0.5, 0.49999] and plan.step_factors(3) == [0.0, 0.2, 0.0, 0.49999]
    assert plan.take([3, 0]).steps == (7, 3)
    with pytest.raises(BenchError, match="outside"):
        srs_plan([1.5], PARAMS)


def _plan(n: int) -> TaskPlan:
    """Rates, steps (one task never steps, others 1..4) and weights that differ per task."""
    factors = tuple(0.2 + 0.15 * i for i in range(n))
    steps = tuple((i * 3) % 5 for i in range(n))  # 0, 3, 1, 4, 2, ...
    weights = tuple(1.0 - 0.1 * i for i in range(n))
    return TaskPlan(factors, steps, weights)


@pytest.mark.parametrize("frozen_embedding", [False, True])
def test_adapted_parameters_equal_l2l_with_per_task_rates_and_steps(frozen_embedding):
    maml = make_maml(2, frozen_embedding)
    model = maml.module
    tasks = make_tasks(5, K=3, Q=4, n_items=N_ITEMS, seed=3)
    plan = _plan(len(tasks))
    engine = BatchedMAML()
    batch = stack_tasks(tasks, model.embedding.num_embeddings)
    stacked = engine._stacked(model, batch, len(tasks), detach=False, lr=maml.lr)
    stacked = engine._adapt(stacked, batch, maml.lr, 99, 0.0, False, plan.take(batch.task_order.tolist()))
    rows = stacked._parameters["embedding_rows"]
    for index, original in enumerate(batch.task_order.tolist()):
        learner = adapt(maml, tasks[original], plan.steps[original], plan.rate_factors[original])
        adapted = dict(learner.module.named_parameters())
        for layer_name, stacked_name in [
            ("gru.weight_ih_l0", "weight_ih_l0"),
            ("gru.weight_hh_l0", "weight_hh_l0"),
            ("gru.bias_hh_l0", "bias_hh_l0"),
            ("output.bias", "output_bias"),
        ]:
            assert_close(stacked._parameters[stacked_name][index], adapted[layer_name], f"{layer_name} of task {original}")
        assert_close(stacked.dense_output_weight()[index], adapted["output.weight"], "output.weight")
        mine = torch.unique(torch.cat([batch.support_rows[index].flatten(), batch.query_rows[index].flatten()]))
        assert_close(rows[mine], adapted["embedding.weight"][batch.row_items[mine]], "embedding rows")
        if plan.steps[original] == 0:  # a task that takes no step keeps the meta-weights
            assert_close(adapted["gru.weight_hh_l0"], model.gru.weight_hh_l0, "no step")
    # The plan matters: at the run's one rate and step count the weights differ.
    plain = engine._adapt(engine._stacked(model, batch, len(tasks), detach=False, lr=maml.lr), batch, maml.lr, 3, 0.0, False)
    assert float((plain._parameters["weight_hh_l0"] - stacked._parameters["weight_hh_l0"]).detach().abs().max()) > 1e-3


@pytest.mark.parametrize("engine_class", [BatchedEngine, BatchedMAML])
def test_weighted_meta_gradient_and_scores_equal_per_task(engine_class):
    tasks = make_tasks(6, K=3, Q=4, n_items=N_ITEMS, seed=4)
    plan = _plan(len(tasks))
    reference, batched = make_maml(5, False), make_maml(5, False)
    loss_ref = PerTaskEngine().meta_gradient(reference, tasks, 99, plan=plan)
    loss_batched = engine_class().meta_gradient(batched, tasks, 99, plan=plan)
    assert abs(loss_ref - loss_batched) <= TOL
    for name, grad in grads_of(reference).items():
        assert_close(grads_of(batched)[name], grad, f"outer gradient {name}")
    # The weights enter the outer loss: unweighted, the loss and gradient differ.
    unweighted = make_maml(5, False)
    loss_plain = PerTaskEngine().meta_gradient(unweighted, tasks, 99, plan=TaskPlan(plan.rate_factors, plan.steps, (1.0,) * len(tasks)))
    assert abs(loss_plain - loss_ref) > 1e-3
    scores_ref = PerTaskEngine().query_scores(reference, tasks, 99, plan=plan)
    scores = engine_class().query_scores(batched, tasks, 99, plan=plan)
    assert_close(scores, scores_ref, "few-shot scores")


def test_scores_in_chunks_keep_each_task_its_own_plan(monkeypatch):
    """Evaluation sorts tasks by length and adapts them in chunks: each task keeps its own plan."""
    tasks = make_tasks(7, K=3, Q=4, n_items=N_ITEMS, seed=6)
    plan = _plan(len(tasks))
    maml = make_maml(7, False)
    engine = BatchedMAML()
    engine.eval_chunk = 3
    assert_close(engine.query_scores(maml, tasks, 99, plan=plan), PerTaskEngine().query_scores(maml, tasks, 99, plan=plan), "chunked scores")


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest score difference over the real items (column 0, padding, is -inf in both)."""
    return float((a[..., 1:] - b[..., 1:]).abs().max())


def _run(tiny_dataset, model_cache, init="random", **params):
    ctx = RunContext(
        tiny_dataset,
        seed=0,
        K=5,
        Q=10,
        init=init,
        cache_dir=model_cache,
        params={
            **SMALL_GRU4REC,
            "embed_dim": 8,
            "hidden_dim": 8,
            "meta_iterations": 2,
            "meta_batch": 4,
            "val_every": 2,
            "val_episodes": 6,
            "engine": "batched",
            **params,
        },
    )
    method = get_method("srs-maml").build(ctx)
    method.fit(ctx)
    return method


def test_srs_maml_runs_on_the_pipeline_and_each_part_changes_the_scores(tiny_dataset, model_cache):
    test = tiny_dataset.episodes("test", 5, 10)
    assert EPISODE_COLUMN in test
    expected = tiny_dataset.episode_srs("test", 5, 10)
    assert np.array_equal(test[EPISODE_COLUMN].to_numpy(), expected) and ((expected >= 0) & (expected <= 1)).all()
    base = _run(tiny_dataset, model_cache)
    scores = torch.cat(list(base.score(test, "few-shot")))
    off = {"srs_adaptive_steps": False, "srs_scale_rate": False, "srs_weight_outer": False}
    for part in off:
        changed = torch.cat(list(_run(tiny_dataset, model_cache, **{part: False}).score(test, "few-shot")))
        assert _diff(changed, scores) > 1e-6, f"switching {part} off changed nothing"
    # Every part off is MAML: the same scores as the maml method at the same params.
    srs_off = torch.cat(list(_run(tiny_dataset, model_cache, **off).score(test, "few-shot")))
    ctx = RunContext(
        tiny_dataset,
        seed=0,
        K=5,
        Q=10,
        init="random",
        cache_dir=model_cache,
        params={
            **SMALL_GRU4REC,
            "embed_dim": 8,
            "hidden_dim": 8,
            "meta_iterations": 2,
            "meta_batch": 4,
            "val_every": 2,
            "val_episodes": 6,
            "engine": "batched",
        },
    )
    maml = get_method("maml").build(ctx)
    maml.fit(ctx)
    assert _diff(srs_off, torch.cat(list(maml.score(test, "few-shot")))) <= TOL, "all parts off = maml"
    # Zero-shot does not adapt: the meta-weights as they are.
    from baselines.model import mask_padding
    from meta.tasks import tasks_from_episodes

    unadapted = mask_padding(PerTaskEngine().query_scores(base.maml, tasks_from_episodes(test), 0))
    assert _diff(torch.cat(list(base.score(test, "zero-shot"))), unadapted) <= TOL
    assert _diff(scores, unadapted) > 1e-6


def test_an_engine_without_plans_is_refused(tiny_dataset):
    ctx = RunContext(tiny_dataset, seed=0, init="random", params={"engine": "notebook"})
    with pytest.raises(BenchError, match="per-task rates"):
        get_method("srs-maml").build(ctx)


def test_a_dataset_without_session_statistics_is_refused_before_any_run(tmp_path, capsys):
    from bench.data import importers

    one_based_seed_folder(tmp_path / "seed")
    ds = importers.import_seed_episodes(tmp_path / "seed", name="xuetangx-seed", data_dir=tmp_path)
    with pytest.raises(BenchError, match="srs-maml needs them"):
        check_run("srs-maml", "random", {}, ds)
    check_run("maml", "random", {}, ds)  # MAML itself needs no session statistics
    grid = tmp_path / "g.toml"
    grid.write_text('name = "g"\ndatasets = ["xuetangx-seed"]\nseeds = [0]\nshots = [{ K = 2, Q = 3 }]\n[[cells]]\nmethod = "srs-maml"\n')
    results = tmp_path / "results"
    code = main(["run", "--grid", str(grid), "--data-dir", str(tmp_path), "--results", str(results)])
    err = capsys.readouterr().err
    assert code != 0 and "srs-maml needs them" in err
    assert not results.exists()  # refused before any output


def test_data_info_shows_the_task_srs_srs_maml_adapts_by(tiny_dataset):
    from bench.data.info import TASK_SRS_TAU, task_srs

    assert TASK_SRS_TAU == SRS_DEFAULTS["srs_tau"]
    shown = task_srs(tiny_dataset)
    test = tiny_dataset.episode_srs("test", shown["K"], shown["Q"])
    assert shown["by_split"]["test"]["n"] == len(test)
    assert shown["by_split"]["test"]["mean"] == pytest.approx(test.mean(), abs=1e-6)
    assert shown["by_split"]["test"]["below_tau"] == pytest.approx((test < 0.5).mean(), abs=1e-6)
