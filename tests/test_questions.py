"""Declared questions: [[compare]] in grids, seed pairing, Holm over the declared family, verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.analysis import stats
from bench.analysis.episodes import seeds_paired
from bench.analysis.questions import ONE_SEED_NOTE, answer_questions, verdict
from bench.core.errors import BenchError
from bench.core.metrics import METRICS
from bench.plan.grid import load_grid, questions_for
from bench.plan.questions import Question

N = 60
ARCH = {"embed_dim": 16, "hidden_dim": 16}
WARM_VS_VANILLA = Question("Does a warm start help MAML?", "maml[gru4rec]:few-shot", "maml[random]:few-shot")
WARM_VS_GRU4REC = Question("Does warm-start MAML beat GRU4Rec?", "maml[gru4rec]:few-shot", "gru4rec:zero-shot")
NOT_RUN = Question("Does meta-training add to fine-tuning?", "maml[gru4rec]:few-shot", "gru4rec-finetune:few-shot")
ADAPT_VANILLA = Question("Does adaptation help vanilla MAML?", "maml[random]:few-shot", "maml[random]:zero-shot")


def _config(cell: str, seed: int, params: dict | None = None) -> dict:
    method, _, init = cell.partition("[")
    return {
        "dataset": "d",
        "dataset_hash": "h1",
        "method": method,
        "init": init.rstrip("]") or None,
        "seed": seed,
        "K": 5,
        "Q": 10,
        "params": dict(params or ARCH),
    }


def _results(values: dict, seeds=(0, 1, 2), per_learner: int = 1):
    """values: (cell, mode) -> function(seed) -> [N] acc@1; a store-like object with run configs."""
    runs, frames = [], []
    for cell in sorted({c for c, _ in values}):
        for seed in seeds:
            run = {"hash": f"{cell}-{seed}", "status": "complete", "config": _config(cell, seed)}
            runs.append(run)
            for (c, mode), make in values.items():
                if c != cell:
                    continue
                frame = pd.DataFrame({"episode": np.arange(N), "user_id": [f"u{i // per_learner}" for i in range(N)]})
                for metric in METRICS:
                    frame[metric] = make(seed)
                frame = frame.assign(
                    run=run["hash"],
                    dataset="d",
                    cell=cell,
                    mode=mode,
                    seed=seed,
                    K=5,
                    Q=10,
                    method=run["config"]["method"],
                    init=run["config"]["init"],
                )
                frames.append(frame)

    class Results:
        pass

    results = Results()
    results.runs, results.episodes = runs, pd.concat(frames, ignore_index=True)
    return results


def _base(seed: int) -> np.ndarray:
    return 0.2 + 0.1 * (np.arange(N) % 5) + 0.01 * np.random.default_rng(seed).normal(size=N)


# ---------------------------------------------------------------- declaring questions in a grid


def test_default_and_full_declare_the_papers_questions():
    for name in ("default", "full"):
        pairs = {(q.a, q.b) for q in questions_for(name)}
        assert pairs == {(q.a, q.b) for q in load_grid(name).compare}
        assert {
            ("maml[gru4rec]:few-shot", "maml[random]:few-shot"),  # warm vs vanilla
            ("maml[gru4rec]:few-shot", "gru4rec:zero-shot"),  # warm-start MAML vs GRU4Rec
            ("maml[gru4rec]:few-shot", "gru4rec-finetune:few-shot"),  # does meta-training add anything
            ("maml[random]:few-shot", "maml[random]:zero-shot"),  # adaptation, per init
            ("maml[gru4rec]:few-shot", "maml[gru4rec]:zero-shot"),
            ("maml[gru4rec-frozen-embed]:few-shot", "maml[gru4rec-frozen-embed]:zero-shot"),
            ("maml[gru4rec-frozen-embed]:few-shot", "maml[gru4rec]:few-shot"),  # frozen vs free embedding
        } <= pairs
    assert load_grid("shots").compare == ()


GRID = """
datasets = ["d"]
seeds = [0]
shots = [{ K = 5, Q = 10 }]
[[cells]]
method = "gru4rec"
[[cells]]
method = "maml"
init = "random"
sweep = { inner_steps = [1, 2] }
"""


@pytest.mark.parametrize(
    "block, message",
    [
        ('question = "q"\na = "gru4rec:zero-shot"\nb = "maml[random] inner_steps=1:few-shot"\nalpha = 1', "unknown key"),
        ('question = "q"\na = "gru4rec:zero-shot"', "lacks 'b'"),
        ('question = "q"\na = "maml[gru4rec] inner_steps=1:few-shot"\nb = "gru4rec:zero-shot"', "makes no"),
        ('question = "q"\na = "gru4rec:few-shot"\nb = "maml[random] inner_steps=1:few-shot"', "makes no"),  # gru4rec has no few-shot
        ('question = "q"\na = "gru4rec:zero-shot"\nb = "gru4rec:zero-shot"', "itself"),
    ],
)
def test_compare_blocks_are_checked_against_the_grid(tmp_path, block, message):
    path = tmp_path / "g.toml"
    path.write_text(GRID + "[[compare]]\n" + block + "\n")
    with pytest.raises(BenchError, match=message):
        load_grid(str(path))


def test_compare_blocks_parse_in_order(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(
        GRID + '[[compare]]\nquestion = "Do more steps help?"\na = "maml[random] inner_steps=2:few-shot"\nb = "maml[random] inner_steps=1:few-shot"\n'
    )
    assert load_grid(str(path)).compare == (
        Question("Do more steps help?", "maml[random] inner_steps=2:few-shot", "maml[random] inner_steps=1:few-shot"),
    )


# ---------------------------------------------------------------- pairing seeds


def test_seeds_pair_only_through_a_shared_prerequisite():
    runs = lambda cell, **kw: {s: _config(cell, s, **kw) for s in (0, 1)}  # noqa: E731
    assert seeds_paired(runs("maml[gru4rec]"), runs("gru4rec"))  # the warm start and the GRU4Rec it started from
    assert seeds_paired(runs("maml[gru4rec-frozen-embed]"), runs("gru4rec-finetune"))
    assert seeds_paired(runs("maml[random]"), runs("maml[random]"))  # two modes of the same runs
    assert not seeds_paired(runs("maml[random]"), runs("gru4rec"))  # nothing shared but the seed number
    assert not seeds_paired(runs("maml[gru4rec]"), runs("gru4rec", params={**ARCH, "hidden_dim": 32}))  # another GRU4Rec
    assert not seeds_paired(runs("maml[gru4rec]"), {0: _config("gru4rec", 0)})  # different seeds


# ---------------------------------------------------------------- answering


@pytest.fixture(scope="module")
def seeded_table():
    values = {
        ("maml[gru4rec]", "few-shot"): lambda s: _base(s) + 0.05,
        ("maml[gru4rec]", "zero-shot"): _base,
        ("maml[random]", "few-shot"): _base,
        ("maml[random]", "zero-shot"): lambda s: _base(s) + np.random.default_rng(100 + s).normal(0, 0.01, N),
        ("gru4rec", "zero-shot"): lambda s: _base(s) + 0.04 + 0.02 * np.random.default_rng(200 + s).normal(size=N),
    }
    (table,) = answer_questions(_results(values), [WARM_VS_VANILLA, NOT_RUN, ADAPT_VANILLA, WARM_VS_GRU4REC], n_resamples=2_000, grid="test")
    return table


def test_holm_runs_over_the_declared_family_with_a_missing_question(seeded_table):
    rows = seeded_table.rows
    assert [r.question for r in rows] == [WARM_VS_VANILLA, NOT_RUN, ADAPT_VANILLA, WARM_VS_GRU4REC]
    missing = rows[1]
    assert missing.status == "missing" and np.isnan(missing.p_holm) and "gru4rec-finetune:few-shot" in missing.detail
    p = np.array([r.p_value for r in rows])
    np.testing.assert_allclose([r.p_holm for r in rows], stats.holm(p, family_size=4))
    assert any("4 declared question" in note for note in seeded_table.notes)
    assert seeded_table.grid == "test" and (seeded_table.K, seeded_table.Q) == (5, 10)


def test_rows_carry_pairing_per_seed_differences_and_verdicts(seeded_table):
    warm, _, adapt, vs_gru4rec = seeded_table.rows
    assert warm.diff == pytest.approx(0.05) and warm.ci_low < 0.05 < warm.ci_high
    assert not warm.paired_seeds and vs_gru4rec.paired_seeds and adapt.paired_seeds
    np.testing.assert_allclose(warm.per_seed_diffs, [0.05] * 3)
    assert warm.signs_agree and warm.n_seeds == 3 and warm.wins == N
    assert warm.p_holm < 0.05 and warm.verdict.startswith("maml[gru4rec]:few-shot ahead by 5.00 points [")
    assert adapt.p_holm >= 0.05 and adapt.verdict.startswith("no difference detected; this test could detect about ")
    assert adapt.mde > 0 and f"{100 * adapt.mde:.2f} points" in adapt.verdict
    assert not any(ONE_SEED_NOTE in note for note in seeded_table.notes)


def test_verdict_never_overstates():
    q = WARM_VS_VANILLA
    args = dict(metric="acc@1", ci=(0.01, 0.03), mde=0.015, alpha=0.05)
    assert verdict(q, diff=0.02, p_holm=0.2, n_seeds=3, signs_agree=True, **args) == (
        "no difference detected; this test could detect about 1.50 points"
    )
    assert verdict(q, diff=0.02, p_holm=0.01, n_seeds=3, signs_agree=True, **args) == ("maml[gru4rec]:few-shot ahead by 2.00 points [1.00, 3.00]")
    assert (
        verdict(q, diff=-0.02, p_holm=0.01, n_seeds=3, signs_agree=True, metric="acc@1", ci=(-0.03, -0.01), mde=0.01, alpha=0.05)
        == "maml[random]:few-shot ahead by 2.00 points [1.00, 3.00]"
    )
    assert verdict(q, diff=0.02, p_holm=0.01, n_seeds=3, signs_agree=False, **args).startswith("no consistent difference")
    assert "one seed cannot speak for the methods" in verdict(q, diff=0.02, p_holm=0.01, n_seeds=1, signs_agree=True, **args)
    assert verdict(q, diff=0.0, p_holm=1.0, n_seeds=3, signs_agree=False, identical=True, **args) == (
        "no difference: A and B score alike on every test episode"
    )


def test_one_seed_says_so_and_learners_are_the_unit():
    values = {("maml[random]", "few-shot"): lambda s: _base(s) + 0.02, ("maml[random]", "zero-shot"): _base}
    (table,) = answer_questions(_results(values, seeds=(0,), per_learner=3), [ADAPT_VANILLA, WARM_VS_VANILLA], n_resamples=1_000)
    assert table.notes[0] == ONE_SEED_NOTE[0].upper() + ONE_SEED_NOTE[1:] + "."
    adapt = table.rows[0]
    assert adapt.n_episodes == N and adapt.n_learners == N // 3 and adapt.n_seeds == 1
    assert "one seed cannot speak" in adapt.verdict
    assert table.rows[1].status == "missing"
    same = {("maml[random]", "few-shot"): _base, ("maml[random]", "zero-shot"): _base}
    (table,) = answer_questions(_results(same, seeds=(0, 1)), [ADAPT_VANILLA], n_resamples=500)
    assert np.isnan(table.rows[0].mde) and table.rows[0].verdict.startswith("no difference: A and B score alike")


def test_a_cell_with_several_settings_is_not_guessed():
    values = {("maml[random]", "few-shot"): _base, ("maml[random]", "zero-shot"): _base}
    first, second = _results(values, seeds=(0,)), _results(values, seeds=(0,))
    for run in second.runs:
        run["hash"] += "-longer"
        run["config"]["params"]["meta_iterations"] = 3000
    second.episodes["run"] = second.episodes["run"] + "-longer"
    first.runs += second.runs
    first.episodes = pd.concat([first.episodes, second.episodes], ignore_index=True)
    (table,) = answer_questions(first, [ADAPT_VANILLA], n_resamples=200)
    assert table.rows[0].status == "missing" and "several settings" in table.rows[0].detail
