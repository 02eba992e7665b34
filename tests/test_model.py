"""GRURecommender: the same model inside learn2learn's clone()/adapt(), true lengths, checkpoints."""

from __future__ import annotations

import learn2learn as l2l
import pytest
import torch
import torch.nn.functional as F

from baselines.batching import pad_prefixes
from baselines.model import GRURecommender, ModelConfig, deterministic, mask_padding
from bench.core.errors import BenchError
from bench.core.metrics import ranks_from_scores
from meta.per_task import adapt
from meta.tasks import Task
from tests.helpers import load_checkpoint

torch.set_num_threads(1)

PREFIXES = [[3, 4], [1, 2, 3, 4, 5, 6], [7], [9, 8, 7, 6]]


def make_model(seed: int = 0, n_items: int = 12, dropout: float = 0.2, n_layers: int = 1) -> GRURecommender:
    torch.manual_seed(seed)
    return GRURecommender(ModelConfig(n_items, embed_dim=8, hidden_dim=16, n_layers=n_layers, dropout=dropout))


def plain_copy(learner_module: GRURecommender) -> GRURecommender:
    """A fresh, ordinary GRURecommender holding the (detached) weights of a clone."""
    plain = GRURecommender(learner_module.config)
    plain.load_state_dict({k: v.detach() for k, v in learner_module.state_dict().items()})
    return plain.eval()


def test_clone_and_adapt_run_the_same_model_as_the_plain_module():
    model = make_model().eval()
    prefixes, lengths = pad_prefixes(PREFIXES)
    maml = l2l.algorithms.MAML(model, lr=0.5, first_order=True)
    with torch.no_grad():
        expected = model(prefixes, lengths)
        assert torch.equal(maml(prefixes, lengths), expected)
        assert torch.equal(maml.clone()(prefixes, lengths), expected)

    labels = torch.tensor([5, 7, 8, 5])
    task = Task(prefixes, lengths, labels, prefixes, lengths, labels)
    learner = adapt(maml, task, inner_steps=2)
    with torch.no_grad():
        adapted = learner(prefixes, lengths)
        # the clone's GRU really runs on the adapted weights (not a stale flattened copy) ...
        assert not torch.allclose(adapted, expected)
        # ... and gives what an ordinary module with those weights gives
        torch.testing.assert_close(adapted, plain_copy(learner.module)(prefixes, lengths), rtol=0, atol=1e-6)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_padded_short_prefix_equals_unpadded(n_layers):
    model = make_model(n_layers=n_layers).eval()
    alone, alone_len = pad_prefixes([[3, 4]])
    batch, batch_len = pad_prefixes([[3, 4], [1, 2, 3, 4, 5, 6]])
    assert batch.shape[1] == 6  # the short prefix carries 4 padding steps
    with torch.no_grad():
        expected = model(alone, alone_len)[0]
        torch.testing.assert_close(model(batch, batch_len)[0], expected, rtol=0, atol=1e-6)
        # inside a learn2learn clone too
        clone = l2l.algorithms.MAML(model, lr=0.1).clone()
        torch.testing.assert_close(clone(batch, batch_len)[0], expected, rtol=0, atol=1e-6)
        # what ignoring the lengths (notebook 08) would give: the recurrence runs over the padding
        _, hidden = model.gru(model.embedding(batch))
        assert not torch.allclose(model.output(hidden[-1])[0], expected, atol=1e-4)


def test_wrong_shape_checkpoint_is_refused_naming_tensor_and_shapes(tmp_path):
    path = tmp_path / "gru_global.pth"
    torch.save(make_model(n_items=10).state_dict(), path)
    with pytest.raises(BenchError) as err:
        load_checkpoint(path, n_items=12)
    message = str(err.value)
    assert "embedding.weight" in message and "(11, 8)" in message and "(13, 8)" in message


def test_seed_style_state_dict_loads_with_architecture_from_shapes(tmp_path):
    # notebook 06 saved model.state_dict() (E 64, H 128); notebook 08's checkpoints wrap it
    torch.manual_seed(1)
    seed_model = GRURecommender(ModelConfig(20, embed_dim=64, hidden_dim=128, n_layers=1, dropout=0.2)).eval()
    prefixes, lengths = pad_prefixes(PREFIXES)
    torch.save(seed_model.state_dict(), tmp_path / "plain.pth")
    torch.save({"iteration": 500, "model_state_dict": seed_model.state_dict()}, tmp_path / "wrapped.pth")
    for name in ["plain.pth", "wrapped.pth"]:
        loaded = load_checkpoint(tmp_path / name, n_items=20).eval()
        assert (loaded.config.embed_dim, loaded.config.hidden_dim, loaded.config.n_layers) == (64, 128, 1)
        with torch.no_grad():
            assert torch.equal(loaded(prefixes, lengths), seed_model(prefixes, lengths))


def test_padding_column_never_ranks_first():
    logits = torch.randn(5, 13)
    logits[:, 0] = 100.0  # the padding logit is the largest
    masked = mask_padding(logits)
    assert (masked.argmax(dim=1) != 0).all()
    assert torch.equal(masked[:, 1:], logits[:, 1:])
    targets = masked[:, 1:].argmax(dim=1) + 1
    assert (ranks_from_scores(logits, targets) == 1).all()  # the evaluator ignores column 0 anyway


def test_evaluation_mode_switches_dropout_off_and_is_restored():
    model = make_model(dropout=0.5, n_layers=2).train()
    prefixes, lengths = pad_prefixes(PREFIXES)
    with torch.no_grad():
        reference = model.eval()(prefixes, lengths)
        model.train()
        with deterministic(model):
            assert model.training and not model.dropout.training
            assert torch.equal(model(prefixes, lengths), reference)
            assert torch.equal(model(prefixes, lengths), reference)
    assert model.training and model.dropout.training and model.gru.dropout == 0.5
    with torch.no_grad():
        assert not torch.equal(model(prefixes, lengths), reference)  # dropout is live in training


def test_support_loss_gradient_flows_to_every_parameter():
    model = make_model(dropout=0.0)
    prefixes, lengths = pad_prefixes(PREFIXES)
    loss = F.cross_entropy(model(prefixes, lengths), torch.tensor([5, 7, 8, 5]))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
