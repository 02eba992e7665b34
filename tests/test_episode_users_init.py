"""The gru4rec-episode-users init and train_users = "episode-users": GRU4Rec trained only on the train
pairs of the users meta-training sees (>= K+Q pairs), cached and paired apart from the plain GRU4Rec;
and every run's training budget (budget_pairs) in its record."""

from __future__ import annotations

import json

import pytest
import torch

import baselines.gru4rec as gru4rec_module
from bench.methods.prerequisites import (
    prerequisites_of,
    shared_prerequisite,
    uses_gru4rec,
)
from bench.methods.registry import METHODS, RunContext
from bench.plan.grid import RunConfig
from bench.run.execute import compute_run

K, Q = 5, 10
FAST = {"embed_dim": 8, "hidden_dim": 8, "batch_size": 1024, "max_epochs": 2, "patience": 2}


def config(method, init=None, K=K, Q=Q, seed=0, **overrides) -> RunConfig:
    spec = METHODS[method]
    init = spec.resolve_init(init)
    params = spec.run_params(init, spec.resolve_params({**FAST, **overrides}))
    return RunConfig("tiny", "hash", method, init, seed, K, Q, tuple(sorted(params.items())), cell=method)


def stored(run: RunConfig) -> dict:
    """The run as run.json's config records it."""
    return json.loads(json.dumps(run.identity()))


def test_episode_users_gru4rec_trains_only_on_the_pairs_of_eligible_users(tiny_dataset, monkeypatch):
    seen = []
    real = gru4rec_module.PairTensors

    def recording(pairs, max_prefix):
        seen.append(pairs)
        return real(pairs, max_prefix)

    monkeypatch.setattr(gru4rec_module, "PairTensors", recording)
    selection = gru4rec_module.train_selection({"train_users": "episode-users"}, K, Q)
    _, info = gru4rec_module.train_gru4rec(tiny_dataset, {**FAST, "max_epochs": 1}, seed=0, selection=selection)
    train_seen, val_seen = seen
    all_train = tiny_dataset.pairs("train")
    counts = all_train["user_id"].value_counts()
    eligible = set(counts.index[counts >= K + Q])
    meta_users = set(tiny_dataset.episodes("train", K, Q)["user_id"])
    assert set(train_seen["user_id"]) == eligible == meta_users  # exactly the users meta-training sees
    assert len(train_seen) == int(counts[counts >= K + Q].sum()) < len(all_train)  # all of their pairs, no one else's
    assert len(val_seen) == len(tiny_dataset.pairs("val"))  # early stopping on the same val pairs
    assert (info["n_train_pairs"], info["n_train_users"], info["train_users"], info["min_user_pairs"]) == (
        len(train_seen),
        len(eligible),
        "episode-users",
        K + Q,
    )


def test_its_cache_key_and_seed_pairing_are_its_own():
    plain, warm = config("gru4rec"), config("maml", "gru4rec")
    episode_gru4rec, episode_warm = config("gru4rec", train_users="episode-users"), config("maml", "gru4rec-episode-users")
    other_shot = config("maml", "gru4rec-episode-users", K=3)
    assert uses_gru4rec("maml", "gru4rec-episode-users")
    keys = {run: prerequisites_of(run) for run in (plain, warm, episode_gru4rec, episode_warm, other_shot)}
    assert keys[plain] == keys[warm] != keys[episode_warm]  # plain GRU4Rec: shared across shots and methods
    assert keys[episode_gru4rec] == keys[episode_warm] != keys[other_shot]  # same weights; another K+Q, other users
    assert prerequisites_of(config("gru4rec", K=3)) == keys[plain]

    def pair(a, b):
        return shared_prerequisite(stored(a)) == shared_prerequisite(stored(b))

    assert pair(episode_warm, episode_gru4rec) and pair(plain, warm)
    assert not pair(episode_warm, warm) and not pair(episode_gru4rec, plain) and not pair(episode_warm, other_shot)
    assert "train_users" not in METHODS["maml"].defaults  # the init says it, so MAML has one way to ask for it
    with pytest.raises(Exception, match="train_users"):
        METHODS["gru4rec"].resolve_params({"train_users": "some"})


def test_the_init_and_the_gru4rec_method_share_one_training(tiny_dataset, tmp_path, monkeypatch):
    trainings = []
    real = gru4rec_module.train_gru4rec

    def counting(*args, **kwargs):
        trainings.append(kwargs.get("selection", args[5] if len(args) > 5 else None))
        return real(*args, **kwargs)

    monkeypatch.setattr(gru4rec_module, "train_gru4rec", counting)
    params = {**FAST, "meta_iterations": 0}
    ctx = RunContext(tiny_dataset, seed=0, K=K, Q=Q, params=params, init="gru4rec-episode-users", cache_dir=tmp_path)
    warm = METHODS["maml"].build(ctx)
    warm.fit(ctx)
    gru_ctx = RunContext(tiny_dataset, seed=0, K=K, Q=Q, params={**FAST, "train_users": "episode-users"}, cache_dir=tmp_path)
    gru = METHODS["gru4rec"].build(gru_ctx)
    info = gru.fit(gru_ctx)
    assert trainings == [{"train_users": "episode-users", "min_pairs": K + Q}] and info["gru4rec"]["cached"]
    a, b = warm.maml.module.state_dict(), gru.maml.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain_ctx = RunContext(tiny_dataset, seed=0, K=K, Q=Q, params=FAST, cache_dir=tmp_path)
    plain_info = METHODS["gru4rec"].build(plain_ctx).fit(plain_ctx)
    assert trainings[-1] is None and plain_info["gru4rec"]["n_train_pairs"] > info["gru4rec"]["n_train_pairs"]
    assert len(list((tmp_path / "gru4rec").iterdir())) == 2


def test_every_run_records_its_training_budget_in_pairs(tiny_dataset, tmp_path):
    data_dir = tiny_dataset.root.parent.parent
    meta = {"meta_iterations": 3, "meta_batch": 4, "val_every": 3, "val_episodes": 2, "inner_steps": 1}

    def fit_of(method, init=None, **overrides):
        spec = METHODS[method]
        init = spec.resolve_init(init)
        params = spec.run_params(init, spec.resolve_params({**FAST, **overrides} if method != "popularity" else {}))
        run = RunConfig("tiny", tiny_dataset.content_hash, method, init, 0, K, Q, tuple(sorted(params.items())), cell=method)
        return compute_run(run, str(data_dir), tmp_path / "cache", 1, "cpu", {}).record["fit"]

    n_all = len(tiny_dataset.pairs("train"))
    gru = fit_of("gru4rec")
    epochs = gru["gru4rec"]["epochs_trained"]
    assert gru["budget_pairs"] == gru["budget_pairs_pretraining"] == epochs * n_all and gru["budget_pairs_meta"] == 0
    assert gru["pretraining"]["still_improving"] == gru["still_improving"] == gru["gru4rec"]["still_improving"]
    episode = fit_of("gru4rec", train_users="episode-users")
    n_episode = episode["pretraining"]["n_train_pairs"]
    assert n_episode < n_all and episode["budget_pairs"] == episode["pretraining"]["epochs_trained"] * n_episode
    warm = fit_of("maml", "gru4rec-episode-users", **meta)
    assert warm["pretraining"] == episode["pretraining"]  # the same cached GRU4Rec
    assert warm["budget_pairs_meta"] == 3 * 4 * (K + Q) and warm["budget_pairs"] == episode["budget_pairs"] + 3 * 4 * (K + Q)
    assert warm["still_improving"] == (warm["best_iteration"] == 3)
    vanilla = fit_of("maml", "random", **meta)
    assert vanilla["budget_pairs"] == 3 * 4 * (K + Q) and vanilla["pretraining"] is None
    floor = fit_of("popularity")
    assert (floor["budget_pairs"], floor["still_improving"]) == (0, None)


def test_the_ray_prerequisite_builds_the_weights_its_key_names(tiny_dataset, tmp_path):
    from bench.methods.prerequisites import PREREQUISITES

    run = config("maml", "gru4rec-episode-users", max_epochs=1)
    run = RunConfig("tiny", tiny_dataset.content_hash, run.method, run.init, 0, K, Q, run.params, cell="maml[gru4rec-episode-users]")
    [(name, key)] = prerequisites_of(run)
    ctx = RunContext(tiny_dataset, seed=0, K=K, Q=Q, params=run.params_dict, init=run.init, cache_dir=tmp_path)
    PREREQUISITES[name].build(ctx)
    info = json.loads((tmp_path / key / "info.json").read_text())
    assert info["train_users"] == "episode-users" and (tmp_path / key / "model.pt").is_file()
