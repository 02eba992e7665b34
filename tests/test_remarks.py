"""What a run's fit says about itself reaches every output: the val-chosen support weight of a few-shot
memory baseline (0: the zero-shot model) and a training still improving at the end of its budget."""

from __future__ import annotations

import io

from rich.console import Console

from bench.analysis import leaderboard as report
from bench.analysis.episodes import STILL_IMPROVING, WEIGHT_ZERO
from bench.analysis.questions import answer_questions
from bench.output import latex, markdown, terminal
from bench.output.cells import leaderboard_columns
from bench.plan.questions import Question
from tests.helpers import POP, shifted_results


def _with_fits(fits: dict[str, dict]):
    """The shifted results (tests/helpers.py) with fit info on the runs of the named cells (every seed)."""
    results = shifted_results()
    for run in results.runs:
        if run["cell"] in fits:
            run["fit"] = dict(fits[run["cell"]])
    return results


def test_weight_zero_and_still_improving_are_columns_and_notes():
    results = _with_fits({POP: {"support_weight": 0.0}, "maml[random]": {"still_improving": True, "best_iteration": 200}})
    (table,) = report.leaderboard(results, n_resamples=200)
    rows = table.rows.set_index(["cell", "mode"])
    assert rows.loc[(POP, "few-shot"), "remarks"] == WEIGHT_ZERO
    assert rows.loc[(POP, "zero-shot"), "remarks"] == ""  # the weight is a few-shot choice
    assert rows.loc[("maml[random]", "few-shot"), "n_still_improving"] == 2
    assert rows.loc[("gru4rec", "zero-shot"), "remarks"] == ""
    notes = " ".join(table.notes)
    assert f"{POP}:few-shot: {WEIGHT_ZERO}" in notes and STILL_IMPROVING in notes and "maml[random]:zero-shot" in notes
    remarks = {c.key: c for c in leaderboard_columns(table)}["remarks"]
    shown = dict(zip(zip(table.rows["cell"], table.rows["mode"]), (c.text for c in remarks.cells)))
    assert shown[(POP, "few-shot")] == "w=0: zero-shot model" and shown[("maml[random]", "few-shot")] == "still improving"


def test_every_renderer_shows_the_remarks():
    results = _with_fits({POP: {"support_weight": 0.0}, "maml[random]": {"still_improving": True}})
    (table,) = report.leaderboard(results, n_resamples=200)
    console = Console(width=100, record=True, file=io.StringIO(), color_system=None)
    terminal.print_report([table], console)
    text = console.export_text()
    assert WEIGHT_ZERO in text and STILL_IMPROVING in text  # the notes, whatever columns fit
    assert "w=0: zero-shot model" in markdown.to_markdown([table])
    tex = latex.to_latex([table])  # column layout: the weight on a line under the name, as a CI under its number
    assert r"{\scriptsize w=0}" in tex and r"$^{*}$" in tex and "the zero-shot model, no adaptation kept" in tex and "still improving" in tex
    assert "$w$ under a name" in tex
    page = latex.to_latex([table], layout="page")  # room enough: both remarks are superscripts
    assert r"$^{w=0}$" in page and r"$^{*}$" in page and "$^{w}$: the support weight" in page


def test_a_weight_other_than_zero_is_shown_not_marked():
    results = _with_fits({POP: {"support_weight": 0.3}})
    (table,) = report.leaderboard(results, n_resamples=200)
    rows = table.rows.set_index(["cell", "mode"])
    assert rows.loc[(POP, "few-shot"), "remarks"] == "support weight 0.3 (chosen on val)"
    assert WEIGHT_ZERO not in " ".join(table.notes)


def test_a_question_on_a_still_improving_run_says_so_in_its_verdict():
    results = _with_fits({"maml[random]": {"still_improving": True}})
    questions = [
        Question("Does MAML beat GRU4Rec?", "maml[random]:few-shot", "gru4rec:zero-shot"),
        Question("Does pop beat GRU4Rec?", f"{POP}:few-shot", "gru4rec:zero-shot"),
    ]
    (answered,) = answer_questions(results, questions, n_resamples=200)
    first, second = answered.rows
    assert first.verdict.endswith(f"maml[random]:few-shot was {STILL_IMPROVING}: more training could change this answer")
    assert STILL_IMPROVING not in second.verdict


def test_two_still_improving_sides_are_named_together():
    results = _with_fits({"maml[random]": {"still_improving": True}, "gru4rec": {"still_improving": True}})
    questions = [Question("Does MAML beat GRU4Rec?", "maml[random]:few-shot", "gru4rec:zero-shot")]
    (answered,) = answer_questions(results, questions, n_resamples=200)
    assert answered.rows[0].verdict.endswith(
        "maml[random]:few-shot and gru4rec:zero-shot were still improving at the end of their budgets: more training could change this answer"
    )
