"""The scenarios: built-in datasets that differ only in their return rate, and every declared answer
shown per dataset side by side."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from bench.analysis.questions import answer_questions, by_dataset
from bench.core.errors import BenchError
from bench.data import synth
from bench.plan.grid import load_grid
from bench.plan.questions import Question
from tests.helpers import POP, Results, shifted_results


def test_builtin_variants_differ_from_the_default_only_in_returns():
    base = dataclasses.asdict(synth.SynthConfig())
    for name, knobs in synth.BUILTIN.items():
        config = dataclasses.asdict(synth.SynthConfig(**knobs))
        assert {k for k in base if base[k] != config[k]} <= {"p_return"}, name
    assert sorted(synth.SynthConfig(**k).p_return for k in synth.BUILTIN.values()) == [0.0, 0.1, 0.35]


def test_an_unknown_builtin_is_refused_in_one_line(tmp_path):
    with pytest.raises(BenchError, match="no built-in dataset 'nope'"):
        synth.build_builtin("nope", tmp_path)


def test_p_return_records_that_no_statistic_pins_it():
    assert "not pinned by any statistic" in synth.KNOB_SOURCES["p_return"]


def test_scenarios_grid_runs_defaults_cells_on_every_variant():
    scenarios, default = load_grid("scenarios"), load_grid("default")
    assert sorted(scenarios.datasets) == sorted(synth.BUILTIN)
    assert scenarios.cells == default.cells and scenarios.compare == default.compare and scenarios.params == default.params


def test_answers_by_dataset_put_each_question_on_every_dataset_side_by_side():
    one, other = shifted_results(dataset="returns-0"), shifted_results(dataset="returns-35")
    for run in other.runs:  # the two stores' runs must not share a hash
        run["hash"] = "b" + run["hash"]
    other.episodes["run"] = "b" + other.episodes["run"]
    both = Results(one.runs + other.runs, pd.concat([one.episodes, other.episodes], ignore_index=True))
    questions = [
        Question("Does MAML beat GRU4Rec?", "maml[random]:few-shot", "gru4rec:zero-shot"),
        Question("Does pop beat GRU4Rec?", f"{POP}:few-shot", "gru4rec:zero-shot"),
    ]
    tables = answer_questions(both, questions, n_resamples=200, grid="g")
    combined = by_dataset(tables)
    assert [r.question.question for r in combined.rows] == [
        "Does MAML beat GRU4Rec? [returns-0]",
        "Does MAML beat GRU4Rec? [returns-35]",
        "Does pop beat GRU4Rec? [returns-0]",
        "Does pop beat GRU4Rec? [returns-35]",
    ]
    by_name = {t.dataset: t for t in tables}
    assert combined.rows[1].diff == by_name["returns-35"].rows[0].diff and combined.rows[1].verdict == by_name["returns-35"].rows[0].verdict
    assert by_dataset(tables[:1]) is None


def test_data_synth_under_a_builtin_name_builds_that_builtin(tmp_path, monkeypatch, capsys):
    """`data synth --name xuetangx-synth-return-0` once built the default knobs (p_return 0.35) under the
    variant's name, so the scenarios grid compared three copies of one dataset."""
    from bench.commands.cli import main

    built = []

    def fake_build(name, data_dir, config, *args, **kwargs):
        built.append((name, config))
        raise SystemExit(0)  # stop before any data is made: the config is what this test checks

    monkeypatch.setattr(synth, "build_synthetic", fake_build)
    try:
        main(["data", "synth", "--name", "xuetangx-synth-return-0", "--data-dir", str(tmp_path)])
    except SystemExit:
        pass
    assert built and built[0][1].p_return == 0.0
    assert main(["data", "synth", "--name", "xuetangx-synth-return-0", "--p-return", "0.2", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "xuetangx-synth-return-0 is a built-in dataset" in err and "--p-return" in err and len(err.strip().splitlines()) == 1
    built.clear()
    try:  # another name keeps the flags
        main(["data", "synth", "--name", "mine", "--p-return", "0.2", "--data-dir", str(tmp_path)])
    except SystemExit:
        pass
    assert built and built[0][1].p_return == 0.2
