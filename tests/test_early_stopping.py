"""Early stopping of GRU4Rec and SASRec on val loss (patience, best epoch kept, still_improving), and
MAML's still_improving flag, on the tiny generated dataset with scripted validation curves."""

from __future__ import annotations

import copy

import pytest
import torch

import baselines.gru4rec as gru4rec_module
import meta.maml as maml_module
from baselines.sasrec import train_sasrec
from bench.methods.prerequisites import prerequisites_of
from bench.methods.registry import METHODS, RunContext
from bench.plan.grid import RunConfig

FAST = {"embed_dim": 8, "hidden_dim": 8, "batch_size": 1024}


def scripted_val(monkeypatch, losses):
    """evaluate_pairs replaced: epoch i's val loss is ``losses[i]``; the model's weights at each
    validation are kept in the returned list, to check which epoch's weights training returns."""
    snapshots = []

    def fake_evaluate(model, pairs, batch_size, device):
        snapshots.append(copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()}))
        return losses[len(snapshots) - 1], 0.0

    monkeypatch.setattr(gru4rec_module, "evaluate_pairs", fake_evaluate)
    return snapshots


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_patience_stops_training_and_the_best_epochs_weights_are_kept(tiny_dataset, monkeypatch):
    snapshots = scripted_val(monkeypatch, [3.0, 2.0, 2.5, 2.1, 1.0, 0.5])  # no better epoch after 2
    params = {**FAST, "max_epochs": 6, "patience": 2}
    state, info = gru4rec_module.train_gru4rec(tiny_dataset, params, seed=0)
    assert len(snapshots) == 4 and len(info["curve"]) == 4  # epochs 3 and 4 were the two without improvement
    assert (info["best_epoch"], info["epochs_trained"], info["stopped"], info["still_improving"]) == (2, 4, "patience", False)
    assert info["best_val_loss"] == 2.0
    assert same(state, snapshots[1]) and not same(state, snapshots[3])  # epoch 2's weights, not the last
    assert info["budget_pairs"] == 4 * info["n_train_pairs"] == 4 * len(tiny_dataset.pairs("train"))


def test_still_improving_when_max_epochs_stops_a_run_whose_last_epoch_is_best(tiny_dataset, monkeypatch):
    snapshots = scripted_val(monkeypatch, [3.0, 2.0, 1.0])
    state, info = gru4rec_module.train_gru4rec(tiny_dataset, {**FAST, "max_epochs": 3, "patience": 2}, seed=0)
    assert (info["best_epoch"], info["epochs_trained"], info["stopped"], info["still_improving"]) == (3, 3, "max_epochs", True)
    assert same(state, snapshots[2])


def test_not_still_improving_when_the_budget_ends_after_a_worse_epoch(tiny_dataset, monkeypatch):
    snapshots = scripted_val(monkeypatch, [1.0, 2.0, 3.0])
    state, info = gru4rec_module.train_gru4rec(tiny_dataset, {**FAST, "max_epochs": 3, "patience": 5}, seed=0)
    assert (info["best_epoch"], info["epochs_trained"], info["stopped"], info["still_improving"]) == (1, 3, "max_epochs", False)
    assert same(state, snapshots[0])


def test_sasrec_stops_early_the_same_way(tiny_dataset, monkeypatch):
    snapshots = scripted_val(monkeypatch, [2.0, 1.5, 1.6, 1.7, 1.0])
    state, info = train_sasrec(tiny_dataset, {"hidden_dim": 8, "n_blocks": 1, "batch_size": 1024, "max_epochs": 5, "patience": 2}, seed=0)
    assert (info["best_epoch"], info["epochs_trained"], info["stopped"], info["still_improving"]) == (2, 4, "patience", False)
    assert same(state, snapshots[1])


def test_patience_is_part_of_the_cached_weights_key():
    def key(method, **params):
        spec = METHODS[method]
        resolved = spec.run_params(None, spec.resolve_params(params))
        config = RunConfig("tiny", "h", method, None, 0, 5, 10, tuple(sorted(resolved.items())), cell=method)
        return prerequisites_of(config)

    assert key("gru4rec", patience=1) != key("gru4rec", patience=2) == key("gru4rec")
    assert key("sasrec", patience=1) != key("sasrec")
    assert METHODS["gru4rec"].defaults["patience"] == 2 and METHODS["gru4rec"].defaults["max_epochs"] == 10
    with pytest.raises(Exception, match="patience"):
        METHODS["gru4rec"].resolve_params({"patience": 0})


@pytest.mark.parametrize("accs, best, improving", [([0.1, 0.3, 0.2], 2, False), ([0.1, 0.2, 0.3], 4, True)])
def test_maml_still_improving_is_whether_the_last_validation_is_best(tiny_dataset, tmp_path, monkeypatch, accs, best, improving):
    calls = []

    def scripted_acc(score_chunks, episodes):
        calls.append(1)
        return accs[len(calls) - 1]

    monkeypatch.setattr(maml_module, "mean_acc1", scripted_acc)
    params = {**FAST, "meta_iterations": 4, "val_every": 2, "meta_batch": 2, "inner_steps": 1, "val_episodes": 2}
    ctx = RunContext(tiny_dataset, seed=0, params=params, init="random", cache_dir=tmp_path)
    method = METHODS["maml"].build(ctx)
    info = method.fit(ctx)
    assert len(calls) == 3 and (info["best_iteration"], info["still_improving"]) == (best, improving)


def scripted_maml(monkeypatch, accs, ctx):
    """The maml method built on ``ctx``, its validation replaced: the i-th validation (the initial one
    first) scores ``accs[i]``; the weights at each validation are kept in the returned list."""
    method, snapshots = METHODS["maml"].build(ctx), []

    def scripted_acc(score_chunks, episodes):
        snapshots.append({k: v.detach().clone() for k, v in method.maml.state_dict().items()})
        return accs[len(snapshots) - 1]

    monkeypatch.setattr(maml_module, "mean_acc1", scripted_acc)
    return method, snapshots


MAML_FAST = {**FAST, "val_every": 1, "meta_batch": 2, "inner_steps": 1, "val_episodes": 2}


def test_val_patience_stops_meta_training_and_keeps_the_best_validations_weights(tiny_dataset, tmp_path, monkeypatch):
    # validations at 0 (initial), 1..6: best at 2, then 3 and 4 without a new best -> stop at 4
    params = {**MAML_FAST, "meta_iterations": 6, "val_patience": 2}
    ctx = RunContext(tiny_dataset, seed=0, params=params, init="random", cache_dir=tmp_path)
    method, snapshots = scripted_maml(monkeypatch, [0.9, 0.2, 0.5, 0.4, 0.5, 0.6, 0.7], ctx)
    info = method.fit(ctx)
    assert len(snapshots) == 5 and [row["iteration"] for row in info["curve"]] == [0, 1, 2, 3, 4]
    assert (info["stopped"], info["stopped_at"], info["best_iteration"], info["still_improving"]) == ("patience", 4, 2, False)
    assert info["best_val_acc@1"] == 0.5  # a tie (iteration 4) is not a new best; the initial 0.9 is no candidate
    kept = method.maml.state_dict()
    assert same(kept, snapshots[2]) and not same(kept, snapshots[4])
    assert maml_module.stop_iteration([(r["iteration"], r["val_acc@1"]) for r in info["curve"]], 2) == 4


def test_val_patience_counts_from_the_initial_weights_with_select_init(tiny_dataset, tmp_path, monkeypatch):
    params = {**MAML_FAST, "meta_iterations": 6, "val_patience": 2, "select_init": True}
    ctx = RunContext(tiny_dataset, seed=0, params=params, init="random", cache_dir=tmp_path)
    method, snapshots = scripted_maml(monkeypatch, [0.9, 0.2, 0.5, 0.4], ctx)
    info = method.fit(ctx)
    assert (info["stopped"], info["stopped_at"], info["best_iteration"]) == ("patience", 2, 0)
    assert same(method.maml.state_dict(), snapshots[0])


@pytest.mark.parametrize("patience", [None, 0, 10])
def test_unset_or_unreached_val_patience_runs_the_whole_budget(tiny_dataset, tmp_path, monkeypatch, patience):
    params = {**MAML_FAST, "meta_iterations": 5, "val_patience": patience}
    ctx = RunContext(tiny_dataset, seed=0, params=params, init="random", cache_dir=tmp_path)
    method, snapshots = scripted_maml(monkeypatch, [0.1, 0.5, 0.4, 0.3, 0.2, 0.1], ctx)
    info = method.fit(ctx)
    assert len(snapshots) == 6 and (info["stopped"], info["stopped_at"], info["best_iteration"], info["still_improving"]) == ("budget", 5, 1, False)


def test_val_patience_is_declared_once_and_distinct_from_gru4recs_patience():
    for name in ("maml", "anil", "metasgd", "srs-maml"):
        defaults = METHODS[name].defaults
        assert defaults["val_patience"] is None and defaults["patience"] == 2  # patience: the warm start's GRU4Rec epochs
        assert METHODS[name].resolve_params({"val_patience": 0})["val_patience"] == 0
    assert "val_patience" not in METHODS["gru4rec"].defaults
    with pytest.raises(Exception, match="val_patience"):
        METHODS["maml"].resolve_params({"val_patience": -1})


def test_the_stop_is_recorded_in_run_json(run_data, tmp_path, monkeypatch):
    from bench.commands.cli import main
    from bench.store.results import load_results

    monkeypatch.setattr(maml_module, "mean_acc1", lambda score_chunks, episodes: 0.1)  # never a new best after the first
    grid = tmp_path / "patience.toml"
    grid.write_text(
        'name = "patience"\ndatasets = ["tiny"]\nseeds = [0]\nshots = [{ K = 3, Q = 4 }]\n[params]\nembed_dim = 8\nhidden_dim = 8\n'
        "meta_iterations = 8\nmeta_batch = 2\nval_every = 2\nval_episodes = 2\ninner_steps = 1\nval_patience = 1\n"
        '[[cells]]\nmethod = "maml"\ninit = "random"\n'
    )
    args = ["run", "--grid", str(grid), "--data-dir", str(run_data), "--results", str(tmp_path / "results"), "--quiet", "--jobs", "1"]
    assert main(args) == 0
    (record,) = load_results(tmp_path / "results").runs
    fit = record["fit"]
    assert (fit["stopped"], fit["stopped_at"], fit["best_iteration"], fit["still_improving"]) == ("patience", 4, 2, False)
    assert record["config"]["params"]["val_patience"] == 1
    assert fit["budget_pairs_meta"] == 4 * 2 * (3 + 4)  # the iterations trained, not the budget
