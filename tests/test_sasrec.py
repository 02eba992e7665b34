"""SASRec: the causal mask, right padding, long prefixes, training, its cache, and fine-tuning."""

from __future__ import annotations

import json

import numpy as np
import torch

import baselines.sasrec as sasrec_module
from baselines.batching import pad_prefixes
from baselines.sasrec import SASRec, SASRecConfig
from bench.methods.registry import METHODS, RunContext, evaluate_method

SMALL_SASREC = {"hidden_dim": 16, "max_epochs": 2}


def model(max_prefix: int = 8) -> SASRec:
    torch.manual_seed(0)
    return SASRec(SASRecConfig(n_items=20, hidden_dim=16, n_blocks=2, n_heads=2, dropout=0.2, max_prefix=max_prefix)).eval()


def test_a_future_position_never_changes_an_earlier_output():
    net = model()
    with torch.no_grad():
        a = net.hidden_states(torch.tensor([[1, 2, 3, 4, 5]]))
        b = net.hidden_states(torch.tensor([[1, 2, 3, 9, 7]]))
    assert torch.equal(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_scores_are_equal_with_and_without_right_padding():
    net = model()
    with torch.no_grad():
        alone = net(torch.tensor([[4, 2, 7]]), torch.tensor([3]))
        padded = net(torch.tensor([[4, 2, 7, 0, 0, 0]]), torch.tensor([3]))
        prefixes, lengths = pad_prefixes([[4, 2, 7], [1, 2, 3, 4, 5, 6]])
        batched = net(prefixes, lengths)
    assert torch.allclose(alone, padded, atol=1e-6) and torch.allclose(alone, batched[:1], atol=1e-6)


def test_a_prefix_longer_than_the_position_table_keeps_its_last_items():
    net = model(max_prefix=4)
    with torch.no_grad():
        prefixes, lengths = pad_prefixes([[9, 8, 7, 1, 2, 3, 4], [5, 6]])
        long = net(prefixes, lengths)
        cut = net(*pad_prefixes([[1, 2, 3, 4], [5, 6]]))
    assert torch.allclose(long, cut, atol=1e-6)


def test_sasrec_learns_and_is_trained_once_and_cached(tiny_dataset, tmp_path, monkeypatch):
    calls = []
    train = sasrec_module.train_sasrec
    monkeypatch.setattr(sasrec_module, "train_sasrec", lambda *a, **k: calls.append(1) or train(*a, **k))
    test = tiny_dataset.episodes("test", 5, 10)
    acc, mrr = {}, {}
    for name, params in [("random", {}), ("sasrec", SMALL_SASREC), ("sasrec-finetune", SMALL_SASREC)]:
        spec = METHODS[name]
        ctx = spec.prepare(RunContext(tiny_dataset, seed=0, params=params, cache_dir=tmp_path))
        method = spec.build(ctx)
        info = method.fit(ctx)
        rows = evaluate_method(method, test, spec.modes[0])
        acc[name] = float(np.mean([row["acc@1"] for row in rows]))
        mrr[name] = float(np.mean([row["mrr"] for row in rows]))
    assert len(calls) == 1 and info["sasrec"]["cached"] is True  # sasrec-finetune reused sasrec's weights
    [entry] = (tmp_path / "sasrec").iterdir()
    assert json.loads((entry / "info.json").read_text())["params"]["hidden_dim"] == 16
    assert acc["sasrec"] > 2 * acc["random"], acc  # learned something (the tiny build is too weak to rank it against popularity)
    assert mrr["sasrec-finetune"] != mrr["sasrec"], mrr  # the support set moved the scores (MRR: Acc@1 can tie on 20 episodes)


def test_fine_tuning_leaves_the_trained_weights_untouched(tiny_dataset, tmp_path):
    spec = METHODS["sasrec-finetune"]
    ctx = spec.prepare(RunContext(tiny_dataset, seed=0, params={**SMALL_SASREC, "max_epochs": 1}, cache_dir=tmp_path))
    method = spec.build(ctx)
    method.fit(ctx)
    before = {k: v.clone() for k, v in method.maml.module.state_dict().items()}
    test = tiny_dataset.episodes("test", 5, 10).iloc[:4]
    first = torch.cat(list(method.score(test, "few-shot")))
    assert all(torch.equal(before[k], v) for k, v in method.maml.module.state_dict().items())
    assert torch.equal(first, torch.cat(list(method.score(test, "few-shot"))))  # dropout off: deterministic


def test_defaults_are_the_issues_and_the_inner_loop_is_gru4rec_finetunes():
    sasrec = METHODS["sasrec"].defaults
    assert (sasrec["hidden_dim"], sasrec["n_blocks"], sasrec["n_heads"], sasrec["lr"], sasrec["batch_size"], sasrec["max_epochs"]) == (
        64,
        2,
        2,
        1e-3,
        256,
        10,
    )
    finetune, gru = METHODS["sasrec-finetune"].defaults, METHODS["gru4rec-finetune"].defaults
    assert (finetune["inner_lr"], finetune["inner_steps"]) == (gru["inner_lr"], gru["inner_steps"])
    assert "engine" not in finetune  # the batched engine is GRU-only: a grid's engine must not reach SASRec
