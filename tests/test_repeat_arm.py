"""The repeat-aware GRU4Rec (baselines/model.py RepeatHead) as a method (gru4rec-repeat) and as an init
of every MAML-family arm (gru4rec-repeat): one training shared by both, its own cache key and seed
pairing (every other key unchanged), its own warm source, trained on the compiled kernel as on
torch's path, refused where an engine would ignore the head, and end to end on the tiny dataset."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import baselines.gru4rec as gru4rec_module
from baselines import fused
from baselines.fused_forward import fused_logits
from baselines.gru4rec import PairTensors, cache_key, gru4rec_params, model_config
from baselines.model import GRURecommender
from bench.core.errors import BenchError
from bench.methods.prerequisites import prerequisites_of, shared_prerequisite
from bench.methods.registry import METHODS, warm_keys
from bench.plan.grid import RunConfig
from bench.run.execute import compute_run

K, Q = 5, 10
FAST = {"embed_dim": 8, "hidden_dim": 8, "batch_size": 1024, "max_epochs": 2, "patience": 2}
META = {"meta_iterations": 2, "meta_batch": 4, "val_every": 2, "val_episodes": 2, "inner_steps": 1}


def config(method, init=None, **overrides) -> RunConfig:
    spec = METHODS[method]
    init = spec.resolve_init(init)
    params = spec.run_params(init, spec.resolve_params({**FAST, **overrides}))
    return RunConfig("tiny", "hash", method, init, 0, K, Q, tuple(sorted(params.items())), cell=method)


def test_repeat_is_in_the_cache_key_only_when_true():
    params = {**FAST, "lr": 1e-3}
    assert gru4rec_params({**params, "repeat": False}) == gru4rec_params(params) and "repeat" not in gru4rec_params(params)
    assert cache_key("h", {**params, "repeat": False}, 0) == cache_key("h", params, 0) != cache_key("h", {**params, "repeat": True}, 0)
    assert "repeat" not in METHODS["gru4rec"].defaults and "repeat" not in METHODS["maml"].defaults  # every other run's params as before
    assert model_config(10, {"repeat": True}).repeat and not model_config(10, {}).repeat


def test_the_method_and_the_init_share_weights_and_seed_pairing_apart_from_gru4rec():
    method, warm = config("gru4rec-repeat"), config("maml", "gru4rec-repeat")
    arms = [config(name, "gru4rec-repeat") for name in ("anil", "metasgd", "srs-maml")]
    plain, plain_warm = config("gru4rec"), config("maml", "gru4rec")
    keys = {run: prerequisites_of(run) for run in (method, warm, plain, plain_warm, *arms)}
    assert keys[method] == keys[warm] == keys[arms[0]] == keys[arms[1]] == keys[arms[2]] != keys[plain] == keys[plain_warm]
    stored = {run: shared_prerequisite(json.loads(json.dumps(run.identity()))) for run in (method, warm, plain)}
    assert stored[method] == stored[warm] != stored[plain]


def test_the_init_takes_the_tuned_gru4rec_repeat_cell():
    from bench.run.tune import warm_source

    assert warm_source("maml", "gru4rec-repeat") == "gru4rec-repeat" and warm_source("anil", "gru4rec-repeat") == "gru4rec-repeat"
    assert warm_source("gru4rec-repeat", None) is None  # it tunes its own training (gru4rec's space)
    assert METHODS["gru4rec-repeat"].space == METHODS["gru4rec"].space
    assert warm_keys("maml", "gru4rec-repeat", ["lr", "dropout"]) == {"init_lr": "lr", "init_dropout": "dropout"}


def test_an_engine_that_would_ignore_the_head_is_refused_before_the_run():
    with pytest.raises(BenchError, match="notebook"):
        config("maml-notebook", "gru4rec-repeat")
    with pytest.raises(BenchError, match="notebook"):
        config("maml", "gru4rec-repeat", engine="notebook")
    config("maml", "gru4rec-repeat", engine="per-task")  # the per-task and batched engines run the head


@pytest.mark.skipif(fused.load() is None, reason="the compiled kernel is unavailable")
def test_training_on_the_kernel_runs_the_repeat_head_as_torchs_path(tiny_dataset):
    train = PairTensors(tiny_dataset.pairs("train"), 50)
    index = torch.randperm(len(train), generator=torch.Generator().manual_seed(3))[:128]  # mixed lengths
    prefixes, lengths, labels = train.batch(index, "cpu")
    torch.manual_seed(3)
    model = GRURecommender(model_config(tiny_dataset.n_items, {"embed_dim": 16, "hidden_dim": 32, "dropout": 0.0, "repeat": True})).train()
    results = []
    for forward in (model, lambda p, n: fused_logits(model, p, n)):
        model.zero_grad()
        loss = F.cross_entropy(forward(prefixes, lengths), labels)
        loss.backward()
        results.append((loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}))
    (torch_loss, torch_grads), (kernel_loss, kernel_grads) = results
    assert torch.allclose(kernel_loss, torch_loss, rtol=1e-5, atol=1e-6)
    for name, grad in torch_grads.items():
        assert torch.allclose(kernel_grads[name], grad, rtol=1e-4, atol=1e-6), name
    assert torch_grads["repeat.recency"].abs().max() > 0


def test_end_to_end_trained_once_for_the_method_and_every_arm(tiny_dataset, tmp_path, monkeypatch):
    trainings = []
    real = gru4rec_module.train_gru4rec

    def counting(dataset, params, *args, **kwargs):
        trainings.append(gru4rec_params(params))
        return real(dataset, params, *args, **kwargs)

    monkeypatch.setattr(gru4rec_module, "train_gru4rec", counting)
    data_dir = tiny_dataset.root.parent.parent

    def record(method, init=None, **overrides):
        spec = METHODS[method]
        init = spec.resolve_init(init)
        params = spec.run_params(init, spec.resolve_params({**FAST, **overrides}))
        run = RunConfig("tiny", tiny_dataset.content_hash, method, init, 0, K, Q, tuple(sorted(params.items())), cell=method)
        return compute_run(run, str(data_dir), tmp_path / "cache", 1, "cpu", {}).record

    zero_shot = record("gru4rec-repeat")
    assert len(trainings) == 1 and trainings[0]["repeat"] is True
    arms = {name: record(name, "gru4rec-repeat", **META) for name in ("maml", "anil", "metasgd", "srs-maml")}
    assert len(trainings) == 1  # the method's weights are every arm's init: trained once
    for name, run in [("gru4rec-repeat", zero_shot), *arms.items()]:
        assert run["fit"]["pretraining"] == zero_shot["fit"]["pretraining"], name
    [folder] = (tmp_path / "cache" / "gru4rec").iterdir()
    state = torch.load(folder / "model.pt", weights_only=True)
    assert {"repeat.gate.weight", "repeat.recency", "repeat.logit_scale", "repeat.gate.bias"} <= set(state)


def test_the_notebook_engine_refuses_a_repeat_model_it_would_run_without_its_head():
    """A repeat-aware checkpoint reaches the notebook engine past the registry's check: refused at the loop."""
    from meta.engines import get_engine
    from tests.helpers import make_maml, make_tasks

    maml = make_maml(0, False, repeat=True)
    with pytest.raises(BenchError, match="repeat head"):
        get_engine("notebook").query_scores(maml, make_tasks(1, K=2, Q=2, n_items=60, seed=0), 1)
