"""Issue 36, items 3-5: one validation metric, a warm start's knobs apart, one validation population.

The per-epoch val Acc@1 of GRU4Rec and SASRec is the tuning objective's number for the same weights;
a warm start's pre-training entries (init_lr, init_dropout) are apart from its own params; every
method's val choices read the episodes of (K, Q, population_K).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from baselines import gru4rec as gru4rec_module
from bench.methods.prerequisites import prerequisites_of, shared_prerequisite
from bench.methods.registry import METHODS, RunContext, warm_keys
from bench.plan.grid import RunConfig
from bench.run.execute import compute_run

FAST = {"embed_dim": 8, "hidden_dim": 8, "batch_size": 1024, "max_epochs": 3, "patience": 2}
K, Q, POPULATION_K = 3, 4, 6  # a `shots`-like cell: scored on the learners eligible at population_K + Q


def val_run(dataset, method: str, params: dict, init=None) -> RunConfig:
    spec = METHODS[method]
    init = spec.resolve_init(init)
    resolved = spec.run_params(init, spec.resolve_params(params))
    return RunConfig(
        "tiny", dataset.content_hash, method, init, 0, K, Q, tuple(sorted(resolved.items())), cell=method, population_K=POPULATION_K, eval_split="val"
    )


@pytest.mark.parametrize("method, params", [("gru4rec", FAST), ("sasrec", {"hidden_dim": 8, "n_blocks": 1, "batch_size": 1024, "max_epochs": 3})])
def test_per_epoch_val_acc_is_the_objective_for_the_same_weights(tiny_dataset, tmp_path, method, params):
    """The kept epoch's val_acc@1 (curve and pruning report) equals the val-split run's mean zero-shot Acc@1."""
    reports: list[tuple[int, float]] = []
    data_dir = str(tiny_dataset.root.parent.parent)
    result = compute_run(val_run(tiny_dataset, method, params), data_dir, tmp_path, 1, "cpu", {}, report=lambda s, v: reports.append((s, v)))
    info = result.record["fit"][method]
    objective = float(result.episodes.loc[result.episodes["mode"] == "zero-shot", "acc@1"].mean())
    kept = [row["val_acc@1"] for row in info["curve"] if row["iteration"] == info["best_epoch"]]
    assert kept == [pytest.approx(objective, abs=1e-12)]
    assert reports[-1] == (info["epochs_trained"], pytest.approx(objective, abs=1e-12))  # what the pruner saw last
    assert info["val_episodes"] == {"split": "val", "K": K, "Q": Q, "population_K": POPULATION_K, "n": len(result.episodes)}
    if method == "gru4rec":  # not the old proxy: Acc@1 over every val pair without the protocol's exclusion differs here
        ctx = RunContext(tiny_dataset, seed=0, params=val_run(tiny_dataset, method, params).params_dict, cache_dir=tmp_path)
        model, cached = gru4rec_module.load_or_train_gru4rec(ctx)
        pairs = gru4rec_module.PairTensors(tiny_dataset.pairs("val"), 50)
        assert cached["cached"] and gru4rec_module.evaluate_pairs(model, pairs, 1024, "cpu")[1] != pytest.approx(objective, abs=1e-9)


def test_without_val_episodes_the_curve_has_no_accuracy_and_nothing_is_reported(tiny_dataset):
    reports = []
    _, info = gru4rec_module.train_gru4rec(tiny_dataset, {**FAST, "max_epochs": 1}, seed=0, report=lambda s, v: reports.append(v))
    assert info["curve"][0]["val_acc@1"] is None and info["val_episodes"] is None and reports == []


def test_a_warm_starts_dropout_and_its_gru4recs_are_separate(tiny_dataset, tmp_path):
    """Set one, the other does not move; the pre-trained GRU4Rec's cache key follows the init entries only."""
    spec = METHODS["maml"]
    warm = spec.run_params("gru4rec", spec.resolve_params({}))
    assert (warm["init_lr"], warm["init_dropout"]) == (warm["lr"], warm["dropout"]) == (1e-3, 0.2)  # untuned: as before
    assert "init_dropout" not in spec.run_params("random", spec.resolve_params({}))  # maml[random] unchanged

    def run(**params):
        return dataclasses.replace(val_run(tiny_dataset, "maml", {**FAST, **params}, "gru4rec"), eval_split="test", population_K=None)

    base = run()
    own = run(dropout=0.4)
    pre = run(init_dropout=0.4)
    assert own.params_dict["init_dropout"] == 0.2 and pre.params_dict["dropout"] == 0.2
    assert prerequisites_of(own) == prerequisites_of(base) != prerequisites_of(pre)
    assert prerequisites_of(run(lr=0.05)) == prerequisites_of(base) != prerequisites_of(run(init_lr=0.05))
    assert shared_prerequisite(dataclasses.asdict(own) | {"params": own.params_dict}) == shared_prerequisite(
        dataclasses.asdict(base) | {"params": base.params_dict}
    )
    # the GRU4Rec it starts from is trained with init_dropout; meta-training runs at its own dropout
    ctx = RunContext(tiny_dataset, seed=0, K=K, Q=Q, params={**FAST, "dropout": 0.4, "meta_iterations": 0}, init="gru4rec", cache_dir=tmp_path)
    method = spec.build(ctx)
    method.fit(ctx)
    assert method.maml.module.dropout.p == 0.4
    gru = METHODS["gru4rec"].build(dataclasses.replace(ctx, params=FAST, init=None))
    info = gru.fit(dataclasses.replace(ctx, params=FAST, init=None))
    assert info["gru4rec"]["cached"] and info["gru4rec"]["params"]["dropout"] == 0.2  # the same cached weights
    a, b = method.maml.module.state_dict(), gru.maml.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_tuning_fills_a_warm_starts_init_entries_never_its_own_params():
    assert warm_keys("maml", "gru4rec", ["lr", "dropout"]) == {"init_lr": "lr", "init_dropout": "dropout"}
    assert warm_keys("maml", "gru4rec-episode-users", ["lr", "dropout"]) == {"init_lr": "lr", "init_dropout": "dropout"}
    assert warm_keys("maml", "random", ["lr", "dropout"]) == {}
    assert warm_keys("gru4rec-finetune", None, ["lr", "dropout"]) == {"lr": "lr", "dropout": "dropout"}  # its model is the GRU4Rec


class Recording:
    """A dataset whose val episodes reads are recorded (the learners each method validates on)."""

    def __init__(self, dataset):
        self.dataset, self.val_reads = dataset, []

    def __getattr__(self, name):
        return getattr(self.dataset, name)

    def episodes(self, split, K, Q, population_K=None):
        frame = self.dataset.episodes(split, K, Q, population_K)
        if split == "val":
            self.val_reads.append(list(frame["user_id"]))
        return frame


@pytest.mark.parametrize("method", ["markov", "recency-markov"])
def test_memory_baselines_choose_on_the_learners_maml_validates_on(tiny_dataset, tmp_path, method):
    maml_data, memory_data = Recording(tiny_dataset), Recording(tiny_dataset)
    params = {**FAST, "meta_iterations": 1, "val_every": 1, "meta_batch": 2, "inner_steps": 1}
    ctx = RunContext(maml_data, seed=0, K=K, Q=Q, population_K=POPULATION_K, params=params, cache_dir=tmp_path)
    METHODS["maml"].build(ctx).fit(ctx)
    ctx = RunContext(memory_data, seed=0, K=K, Q=Q, population_K=POPULATION_K, cache_dir=tmp_path)
    METHODS[method].build(ctx).fit(ctx)
    learners = maml_data.val_reads[0]
    assert memory_data.val_reads and all(read == learners for read in memory_data.val_reads)
    assert list(tiny_dataset.episodes("val", K, Q)["user_id"]) != learners  # the population matters here


def test_the_curves_figure_draws_gru4rec_only_on_the_panels_val_episodes():
    """One kind of number: GRU4Rec's level is its episode-level val Acc@1 at the panel's K and Q, never a pairs curve."""
    from bench.output.figures.curves import gru4rec_level

    def run(seed, measured, acc):
        info = {"best_epoch": 1, "curve": [{"iteration": 1, "val_acc@1": acc}], **({"val_episodes": measured} if measured else {})}
        return {"config": {"dataset": "d", "dataset_hash": "h", "seed": seed}, "fit": {"gru4rec": info}}

    runs = [run(0, {"K": 5, "Q": 10}, 0.2), run(1, {"K": 5, "Q": 10}, 0.4), run(2, None, 0.9), run(3, {"K": 1, "Q": 10}, 0.7)]
    assert gru4rec_level(runs, "d", "h", 5, 10) == pytest.approx(0.3)
    assert gru4rec_level(runs, "d", "h", 3, 10) is None  # a cached curve of another K is not this panel's number
