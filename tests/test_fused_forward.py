"""GRU4Rec's training forward on the compiled kernel (baselines/fused_forward.py) equals torch's packed
nn.GRU: one batch's loss and every gradient within float tolerance (dropout on, the same masks), the
same training curve and the same best epoch on the tiny dataset, and torch's path where the kernel is
switched off or the model does not fit it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from baselines import fused
from baselines.fused_forward import fused_logits, kernel_fits, training_forward
from baselines.gru4rec import PairTensors, length_batches, model_config, train_gru4rec
from baselines.model import GRURecommender
from baselines.sasrec import SASREC_DEFAULTS, SASRec, sasrec_config
from tests.conftest import SMALL_GRU4REC


@pytest.fixture(autouse=True)
def kernel():
    if fused.load() is None:
        pytest.skip(f"kernel unavailable: {fused.kernel_status()}")


def loss_and_grads(model, forward, prefixes, lengths, labels, seed=0):
    model.zero_grad()
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the same dropout masks on both paths
        loss = F.cross_entropy(forward(prefixes, lengths), labels)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("seed_batch", [0, 7])
def test_one_batch_loss_and_gradients_equal_torchs_packed_gru(tiny_dataset, seed_batch):
    train = PairTensors(tiny_dataset.pairs("train"), 50)
    batches = length_batches(train.lengths, 256, torch.Generator().manual_seed(seed_batch))
    # mixed lengths and the longest batch: rows finish at different steps, W_hh gets a gradient
    mixed = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed_batch))[:256]
    longest = max(batches, key=lambda index: int(train.lengths[index].min()))
    torch.manual_seed(seed_batch)
    model = GRURecommender(model_config(tiny_dataset.n_items, {"embed_dim": 64, "hidden_dim": 128, "dropout": 0.2}))
    model.train()
    for index in (mixed, longest):
        prefixes, lengths, labels = train.batch(index, "cpu")
        assert lengths.min() < lengths.max() or index is longest
        torch_loss, torch_grads = loss_and_grads(model, model, prefixes, lengths, labels)
        fused_loss, fused_grads = loss_and_grads(model, lambda p, n: fused_logits(model, p, n), prefixes, lengths, labels)
        assert torch.allclose(fused_loss, torch_loss, rtol=1e-5, atol=1e-6)
        for name, grad in torch_grads.items():
            assert grad.abs().max() > 0 or name == "gru.weight_hh_l0" and int(lengths.max()) == 1
            assert torch.allclose(fused_grads[name], grad, rtol=1e-4, atol=1e-7), name
        assert torch.all(fused_grads["embedding.weight"][0] == 0)  # padding gets no gradient, as nn.Embedding's padding_idx


def test_the_kernel_is_what_gru4rec_trains_on_and_only_where_it_fits(tiny_dataset, monkeypatch):
    model = GRURecommender(model_config(tiny_dataset.n_items, SMALL_GRU4REC))
    assert kernel_fits(model) and training_forward(model) is not model
    assert training_forward(GRURecommender(model_config(tiny_dataset.n_items, {**SMALL_GRU4REC, "n_layers": 2}))) is not None
    assert not kernel_fits(GRURecommender(model_config(tiny_dataset.n_items, {**SMALL_GRU4REC, "n_layers": 2})))
    assert not kernel_fits(model.double())
    sasrec = SASRec(sasrec_config(tiny_dataset.n_items, SASREC_DEFAULTS))
    assert training_forward(sasrec) is sasrec
    monkeypatch.setenv("BENCH_FUSED_GRU", "0")  # the old path, selectable
    assert training_forward(model) is model


def test_training_on_the_kernel_chooses_the_same_checkpoint_as_torchs_path(tiny_dataset, monkeypatch):
    params = {**SMALL_GRU4REC, "max_epochs": 4, "patience": 2}
    fused_state, fused_info = train_gru4rec(tiny_dataset, params, seed=0)
    monkeypatch.setenv("BENCH_FUSED_GRU", "0")
    torch_state, torch_info = train_gru4rec(tiny_dataset, params, seed=0)
    assert fused_info["best_epoch"] == torch_info["best_epoch"] and fused_info["epochs_trained"] == torch_info["epochs_trained"]
    for ours, theirs in zip(fused_info["curve"], torch_info["curve"]):
        assert ours.get("val_acc@1") is None and theirs.get("val_acc@1") is None  # no val episodes given: no accuracy
        for key in ("train_loss", "val_loss"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-4), key
    for name, tensor in torch_state.items():
        assert torch.allclose(fused_state[name], tensor, rtol=1e-3, atol=1e-5), name
