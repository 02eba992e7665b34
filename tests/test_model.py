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


# ----------------------------------------------------------------------------------------------
# The repeat-aware model (ModelConfig.repeat: RepeatHead, repeat_mixture)


def test_without_repeat_the_model_is_the_one_it_always_was():
    """repeat=False: the same RNG draws in the same order (Embedding, GRU, Linear, nothing after),
    the same state_dict keys, the same outputs as the modules built by hand."""
    from torch import nn

    model = make_model(5, dropout=0.0).eval()
    torch.manual_seed(5)
    embedding = nn.Embedding(13, 8, padding_idx=0)
    gru = nn.GRU(8, 16, num_layers=1, batch_first=True)
    output = nn.Linear(16, 13)
    after = torch.rand(3)  # the RNG's next draw: nothing more was drawn by the model
    torch.manual_seed(5)
    make_model(5, dropout=0.0)
    assert torch.equal(torch.rand(3), after)
    expected_keys = ["embedding.weight", *(f"gru.{k}" for k in gru.state_dict()), "output.weight", "output.bias"]
    assert list(model.state_dict()) == expected_keys
    prefixes, lengths = pad_prefixes(PREFIXES)
    packed = nn.utils.rnn.pack_padded_sequence(embedding(prefixes), lengths, batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        assert torch.equal(model(prefixes, lengths), output(gru(packed)[1][-1]))


def repeat_model(seed: int = 0, n_items: int = 12) -> GRURecommender:
    torch.manual_seed(seed)
    model = GRURecommender(ModelConfig(n_items, embed_dim=8, hidden_dim=16, dropout=0.0, repeat=True)).eval()
    with torch.no_grad():  # off the init (recency 0, beta 1), so every head tensor matters
        model.repeat.recency.copy_(torch.linspace(1.0, -1.0, model.repeat.recency.numel()))
        model.repeat.logit_scale.fill_(0.6)
    return model


def test_repeat_head_parameters_and_their_names_are_the_documented_ones():
    model = repeat_model()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith("repeat.")}
    assert shapes == {"repeat.gate.weight": (1, 16), "repeat.gate.bias": (1,), "repeat.recency": (20,), "repeat.logit_scale": (1,)}
    plain = make_model(0)
    assert [k for k in model.state_dict() if not k.startswith("repeat.")] == list(plain.state_dict())
    from baselines.model import config_from_state_dict

    assert config_from_state_dict(model.state_dict(), 12).repeat and not config_from_state_dict(plain.state_dict(), 12).repeat


def test_repeat_scores_are_log_probabilities_and_a_prefix_item_gets_log_p_plus_log_p_repeat():
    model = repeat_model(1)
    prefixes, lengths = pad_prefixes([[3, 4, 3], [1, 2, 3, 4, 5, 6], [7], [9, 8, 7, 9]])
    with torch.no_grad():
        scores = model(prefixes, lengths)
        features = model.features(prefixes, lengths)
        z = model.output(features)
    assert torch.all(scores[:, 0] == float("-inf"))
    assert torch.allclose(scores[:, 1:].exp().sum(-1), torch.ones(4), atol=1e-5)
    head = model.repeat
    for row, prefix in enumerate([[3, 4, 3], [1, 2, 3, 4, 5, 6], [7], [9, 8, 7, 9]]):
        p = torch.sigmoid(features[row] @ head.gate.weight[0] + head.gate.bias[0])
        ages = [min(len(prefix) - 1 - t, 19) for t in range(len(prefix))]
        position = torch.stack([head.recency[a] + head.logit_scale[0] * z[row, item] for a, item in zip(ages, prefix)])
        attention = torch.softmax(position, 0)
        outside = [i for i in range(1, 13) if i not in prefix]
        explore = torch.softmax(z[row, outside], 0)
        for item in set(prefix):
            p_repeat = sum(attention[t] for t, x in enumerate(prefix) if x == item)  # duplicates add up
            assert torch.allclose(scores[row, item], torch.log(p) + torch.log(p_repeat), atol=1e-5), (row, item)
        for index, item in enumerate(outside):
            assert torch.allclose(scores[row, item], torch.log(1 - p) + torch.log(explore[index]), atol=1e-5), (row, item)


def test_repeat_gradient_is_finite_when_every_prefix_position_holds_one_item():
    model = repeat_model(2).train()
    prefixes, lengths = pad_prefixes([[5, 5, 5, 5], [5], [2, 2]])
    scores = model(prefixes, lengths)
    assert torch.allclose(scores[0, 5], F.logsigmoid(model.repeat.gate(model.features(prefixes, lengths))[0, 0]), atol=1e-6)  # P_r(5) = 1
    loss = F.cross_entropy(scores, torch.tensor([5, 3, 2]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_repeat_model_under_clone_and_adapt_equals_the_plain_module():
    """learn2learn adapts the head with the rest (it is part of the module): a clone's scores equal a
    plain copy's, and an inner step moves the head's tensors."""
    model = repeat_model(3)
    prefixes, lengths = pad_prefixes(PREFIXES)
    maml = l2l.algorithms.MAML(model, lr=0.5, first_order=True)
    learner = maml.clone()
    learner.adapt(F.cross_entropy(learner(prefixes, lengths), torch.tensor([4, 6, 7, 9])))
    adapted = dict(learner.module.named_parameters())
    assert not torch.equal(adapted["repeat.gate.weight"], model.repeat.gate.weight)
    assert not torch.equal(adapted["repeat.recency"], model.repeat.recency)
    with torch.no_grad():
        assert torch.allclose(learner(prefixes, lengths)[:, 1:], plain_copy(learner.module)(prefixes, lengths)[:, 1:], atol=1e-6)
