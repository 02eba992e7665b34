"""Method registry: names, modes, params, the floor baselines, GRU4Rec training and its cache."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

import baselines.gru4rec as gru4rec_module
from bench.core.errors import BenchError
from bench.methods.registry import METHODS, RunContext, evaluate_method, get_method
from meta.inits import INITS, get_init
from tests.conftest import SMALL_GRU4REC

torch.set_num_threads(1)


def fitted(name, dataset, cache, seed=0, init=None, **params):
    spec = METHODS[name]
    ctx = spec.prepare(RunContext(dataset, seed=seed, params=params, init=init, cache_dir=cache))
    method = spec.build(ctx)
    return method, method.fit(ctx)


def mean_acc1(method, episodes, mode="zero-shot") -> float:
    return float(np.mean([row["acc@1"] for row in evaluate_method(method, episodes, mode)]))


def test_registries_refuse_unknown_names_listing_the_valid_ones(tiny_dataset, tmp_path):
    with pytest.raises(BenchError, match="gru4rec-finetune"):
        get_method("gru4rec-fintune")
    with pytest.raises(BenchError, match="gru4rec-frozen-embed"):
        get_init("frozen")
    ctx = RunContext(tiny_dataset, seed=0, init="warm", cache_dir=tmp_path)
    with pytest.raises(BenchError, match="random, gru4rec, gru4rec-frozen-embed, gru4rec-episode-users, gru4rec-repeat, checkpoint"):
        METHODS["maml"].build(ctx)
    with pytest.raises(BenchError, match="inner_steps"):  # a typo in a grid param is not ignored
        METHODS["maml"].build(RunContext(tiny_dataset, seed=0, params={"inner_step": 3}, cache_dir=tmp_path))
    with pytest.raises(BenchError, match="takes no init"):
        METHODS["gru4rec"].build(RunContext(tiny_dataset, seed=0, init="gru4rec", cache_dir=tmp_path))


def test_declared_modes_and_defaults():
    assert {name: spec.modes for name, spec in METHODS.items()} == {
        "random": ("zero-shot",),
        "popularity": ("zero-shot",),
        "gru4rec": ("zero-shot",),
        "gru4rec-finetune": ("few-shot",),
        "gru4rec-repeat": ("zero-shot",),
        "maml": ("zero-shot", "few-shot"),
        "anil": ("zero-shot", "few-shot"),
        "metasgd": ("zero-shot", "few-shot"),
        "maml-notebook": ("zero-shot", "few-shot"),
        "srs-maml": ("zero-shot", "few-shot"),
        **{name: ("zero-shot", "few-shot") for name in ("markov", "sr", "sknn", "vsknn", "recency", "recency-markov")},
        "sasrec": ("zero-shot",),
        "sasrec-finetune": ("few-shot",),
    }
    maml = METHODS["maml"].defaults
    assert (maml["inner_lr"], maml["inner_steps"], maml["meta_batch"], maml["outer_lr"]) == (0.01, 5, 32, 1e-3)
    assert (maml["meta_iterations"], maml["val_every"], maml["grad_clip"], maml["engine"]) == (3000, 100, 10.0, "per-task")
    gru = METHODS["gru4rec"].defaults
    assert (gru["embed_dim"], gru["hidden_dim"], gru["dropout"], gru["lr"], gru["batch_size"]) == (64, 128, 0.2, 1e-3, 256)
    finetune = METHODS["gru4rec-finetune"].defaults
    assert (finetune["inner_lr"], finetune["inner_steps"]) == (maml["inner_lr"], maml["inner_steps"])
    assert METHODS["maml-notebook"].default_init == "gru4rec" and "engine" not in METHODS["maml-notebook"].defaults
    assert set(INITS) == {"random", "gru4rec", "gru4rec-frozen-embed", "gru4rec-episode-users", "gru4rec-repeat", "checkpoint"}
    repeat = METHODS["gru4rec-repeat"].defaults  # gru4rec's settings plus the repeat head
    assert {k: v for k, v in repeat.items() if k != "repeat"} == gru and repeat["repeat"] is True
    for name in ("anil", "metasgd"):  # the same settings as MAML, so the arms differ only in what adapts
        assert METHODS[name].defaults == maml and METHODS[name].default_init == "random"
    srs = METHODS["srs-maml"].defaults  # MAML's settings plus notebook 10's TAU, K_MIN, K_MAX, all parts on
    assert {k: v for k, v in srs.items() if k in maml} == maml and METHODS["srs-maml"].default_init == "random"
    assert (srs["srs_tau"], srs["srs_steps_high"], srs["srs_steps_low"]) == (0.5, 3, 7)
    assert srs["srs_adaptive_steps"] and srs["srs_scale_rate"] and srs["srs_weight_outer"] and METHODS["srs-maml"].needs_srs
    assert maml["init_checkpoint"] is None and "init_checkpoint" not in gru
    assert [name for name, spec in INITS.items() if spec.frozen_embedding] == ["gru4rec-frozen-embed"]


def test_gru4rec_beats_popularity_beats_random_on_acc1(tiny_dataset, model_cache):
    test = tiny_dataset.episodes("test", 5, 10)
    acc = {
        name: mean_acc1(fitted(name, tiny_dataset, model_cache, **params)[0], test)
        for name, params in [("random", {}), ("popularity", {}), ("gru4rec", SMALL_GRU4REC)]
    }
    assert acc["gru4rec"] > acc["popularity"] > acc["random"], acc


def test_scores_cover_the_catalogue_and_padding_never_ranks_first(tiny_dataset, model_cache):
    test = tiny_dataset.episodes("test", 5, 10).iloc[:3]
    for name, spec in METHODS.items():
        if name == "maml-notebook":
            continue  # another engineer's engine; its scores are checked in its own tests
        params = {**SMALL_GRU4REC, "meta_iterations": 0} if spec.algorithm is not None else SMALL_GRU4REC if name.startswith("gru4rec") else {}
        params = {"hidden_dim": 16, "max_epochs": 1} if name.startswith("sasrec") else params
        method, _ = fitted(name, tiny_dataset, model_cache, **params)
        for mode in spec.modes:
            scores = torch.cat(list(method.score(test, mode)))
            assert scores.shape == (3, 10, tiny_dataset.n_items + 1), (name, mode)
            assert (scores.argmax(dim=-1) != 0).all() and torch.isinf(scores[..., 0]).all(), (name, mode)
        undeclared = {"zero-shot", "few-shot"} - set(spec.modes)
        for mode in undeclared:
            with pytest.raises(BenchError, match="has no mode"):
                next(iter(method.score(test, mode)))


def test_same_seed_same_scores_for_the_global_baselines(tiny_dataset, model_cache):
    test = tiny_dataset.episodes("test", 5, 10)
    for name, params in [("random", {}), ("gru4rec", SMALL_GRU4REC)]:
        a, b, c = (torch.cat(list(fitted(name, tiny_dataset, model_cache, seed=s, **params)[0].score(test, "zero-shot"))) for s in (0, 0, 1))
        assert torch.equal(a, b) and not torch.equal(a, c), name


def test_gru4rec_training_is_seeded_and_keeps_the_best_by_val_weights(tiny_dataset):
    params = {**SMALL_GRU4REC, "max_epochs": 4, "patience": 1, "lr": 0.05}  # a large lr so val loss turns up
    state_a, info = gru4rec_module.train_gru4rec(tiny_dataset, params, seed=3)
    state_b, _ = gru4rec_module.train_gru4rec(tiny_dataset, params, seed=3)
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    losses = [row["val_loss"] for row in info["curve"]]
    assert info["best_epoch"] == 1 + int(np.argmin(losses)) and info["best_val_loss"] == min(losses)
    assert len(losses) <= params["max_epochs"] and info["n_train_pairs"] == len(tiny_dataset.pairs("train"))


def test_gru4rec_is_trained_once_and_cached(tiny_dataset, tmp_path, monkeypatch):
    trainings = []
    real_train = gru4rec_module.train_gru4rec

    def counting_train(*args, **kwargs):
        trainings.append(1)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(gru4rec_module, "train_gru4rec", counting_train)
    ctx = RunContext(tiny_dataset, seed=0, params={**SMALL_GRU4REC, "max_epochs": 1}, cache_dir=tmp_path)
    results = []
    threads = [threading.Thread(target=lambda: results.append(gru4rec_module.load_or_train_gru4rec(ctx))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(trainings) == 1 and sorted(info["cached"] for _, info in results) == [False, True]
    (folder,) = (tmp_path / "gru4rec").iterdir()
    assert folder.name == gru4rec_module.cache_key(tiny_dataset.content_hash, ctx.params, 0)
    assert json.loads((folder / "info.json").read_text())["params"]["max_epochs"] == 1
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    (model_a, _), (model_b, _) = results
    assert all(torch.equal(a, b) for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values()))
    # a method param that is not a GRU4Rec param (the inner lr) shares the cached model
    gru4rec_module.load_or_train_gru4rec(RunContext(tiny_dataset, seed=0, params={**ctx.params, "inner_lr": 0.5}, cache_dir=tmp_path))
    assert len(trainings) == 1


def test_every_default_of_every_method_has_a_declared_type_and_range():
    from bench.methods.registry import PARAMS

    missing = sorted({(name, key) for name, spec in METHODS.items() for key in spec.defaults if key not in PARAMS})
    assert not missing, f"add each to PARAMS in bench/methods/registry.py (e.g. 'key': Param.int(ge=1),): {missing}"
    for name, spec in METHODS.items():  # and every default is valid by its own declaration
        assert spec.resolve_params({}) == spec.defaults, name


def test_a_param_without_a_declared_type_is_a_clear_error(monkeypatch):
    from bench.methods.registry import param_spec

    with pytest.raises(BenchError, match=r"without a declared type.*PARAMS in bench/methods/registry.py"):
        param_spec("sasrec", "max_len")


def test_a_method_is_one_entry_holding_what_the_other_modules_ask():
    """MethodSpec is keyword-only and holds what prerequisites, tuning and the projection ask: the
    pre-trained weights it is or starts from, its budget, its search space or why none, its warm source."""
    from bench.methods.prerequisites import PREREQUISITES
    from bench.methods.registry import EPOCHS, META_ITERATIONS, MethodSpec

    with pytest.raises(TypeError):
        MethodSpec("toy", lambda spec, ctx: None, ("zero-shot",), {}, "positional")
    for name, spec in METHODS.items():
        assert spec.pretrains in (None, *PREREQUISITES), name
        assert {EPOCHS: "max_epochs", META_ITERATIONS: "meta_iterations", None: None}[spec.budget] in (None, *spec.defaults), name
        assert bool(spec.space) != bool(spec.not_tuned), name  # a search space, or why it has none
        if spec.warm_source is not None:  # it fine-tunes the model its source trains itself
            source = METHODS[spec.warm_source]
            assert (source.pretrains, source.warm_source) == (spec.pretrains, None), name

    def having(attribute, value):
        return {name for name, spec in METHODS.items() if getattr(spec, attribute) == value}

    assert having("pretrains", "gru4rec") == {"gru4rec", "gru4rec-finetune", "gru4rec-repeat"}
    assert having("pretrains", "sasrec") == {"sasrec", "sasrec-finetune"}
    assert having("budget", EPOCHS) == {"gru4rec", "gru4rec-repeat", "sasrec"}
    assert having("budget", META_ITERATIONS) == {"maml", "anil", "metasgd", "srs-maml", "maml-notebook"}
    assert having("warm_source", "gru4rec") == {"gru4rec-finetune"} and having("warm_source", "sasrec") == {"sasrec-finetune"}


def test_no_module_but_the_registry_names_a_method():
    """No module of bench/, meta/ or baselines/ but the registry holds a method's name outside a
    docstring (lists kept elsewhere made a new method five edits). A name that is also an init's, an
    algorithm's or a prerequisite's (random, gru4rec, sasrec, maml, ...) is theirs to use too."""
    import ast
    from pathlib import Path

    from bench.methods.prerequisites import PREREQUISITES
    from meta.algorithms import ALGORITHMS

    repo = Path(__file__).resolve().parent.parent
    only_methods = set(METHODS) - set(INITS) - set(ALGORITHMS) - set(PREREQUISITES)
    found = []
    for path in sorted(p for package in ("bench", "meta", "baselines") for p in (repo / package).rglob("*.py")):
        if path == repo / "bench" / "methods" / "registry.py":
            continue
        tree = ast.parse(path.read_text())
        documented = [node for node in ast.walk(tree) if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(node)]
        docstrings = {id(node.body[0].value) for node in documented}
        found += [
            f"{path.relative_to(repo)}:{node.lineno} {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in only_methods and id(node) not in docstrings
        ]
    assert not found, "ask the method's MethodSpec (bench/methods/registry.py) instead:\n" + "\n".join(found)
