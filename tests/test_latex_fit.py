"""`export latex` of the default grid's real leaderboard (every row name and remark of the committed reference)
and its declared questions fits a one- and a two-column article, in both layouts: no overfull box, no float
taller than a page's top area, every row and question shown."""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import subprocess

import pytest

from bench.analysis.leaderboard import leaderboard
from bench.analysis.questions import answer_questions
from bench.output import latex, latex_fit
from bench.plan.grid import questions_for
from tests.default_board import default_grid_results, reference_rows

NO_TEX = "pdflatex not installed (Debian: texlive-latex-base texlive-latex-recommended; .ci/run installs it)"


@pytest.fixture(scope="module")
def default_grid():
    results = default_grid_results()
    (table,) = leaderboard(results, n_resamples=200)
    # Repeat | Explore as wide as real numbers get (the reference predates per-query results): "100.00" / "10.00"
    table = dataclasses.replace(table, rows=table.rows.assign(repeat_mean=1.0, explore_mean=0.1))
    questions = answer_questions(results, questions_for("default"), n_resamples=200, grid="default")
    return table, questions


def test_the_reference_rows_are_the_default_grids():
    rows = reference_rows()
    assert len(rows) >= 40  # the default grid's leaderboard, not a short table
    remarks = {(r.cell, r.mode): r.weight for r in rows}
    assert remarks[("recency-markov", "few-shot")] == 0.01 and remarks[("sr", "few-shot")] == 100
    assert any(r.still_improving for r in rows) and ("gru4rec train_users=episode-users", "zero-shot") in remarks


def _floats(tex: str, environment: str) -> list[str]:
    return tex.split(rf"\begin{{{environment}}}")[1:]


@pytest.mark.parametrize("layout", ["column", "page"])
def test_every_row_and_question_is_shown_once(default_grid, layout):
    table, questions = default_grid
    tex = latex.to_latex([table], label="tab:main", layout=layout, questions=questions)
    parts = _floats(tex, latex.LAYOUTS[layout].environment)
    asked = [p for p in parts if r"Holm $p$" in p]
    assert sum(p.count(r"\textbf{Q") for p in asked) == len(questions[0].rows) == 26
    board = [p for p in parts if p not in asked]
    body = [line for p in board for line in p.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0].splitlines()]
    assert sum(1 for line in body if not line.startswith((r"\multicolumn", r"\addlinespace"))) == len(table.rows)
    assert all(len(p.split(r"\\")) < 200 for p in parts)
    # a key for every name the table abbreviates, explained in the first caption
    keys = set(re.findall(r"^(C\d+)(?:\$\^|\\\\| &)", "\n".join(body), re.M))
    assert all(f"{key}: " in board[0] for key in keys)


def test_the_weight_goes_under_the_name_in_a_column_and_a_name_breaks_before_its_bracket():
    row = {"support_weight": 0.01, "n_still_improving": 0}
    assert latex._name_lines("recency-markov", row, "column", 200.0) == ["recency-markov", r"{\scriptsize w=0.01}"]
    assert latex._name_lines("recency-markov", row, "page", 200.0) == [r"recency-markov$^{w=0.01}$"]
    tight = latex.text_width("maml[random]", 8.0) - 1
    assert latex._name_lines("maml[random]", {"n_still_improving": 1}, "column", tight) == ["maml", "[random]$^{*}$"]
    assert latex._name_lines("maml[random]", {}, "column", 5.0) is None  # too narrow: a key replaces it
    assert latex._stack(["maml", "[random]"]).count(r"\\{}[random]") == 1  # "[" is not read as \\'s skip


def test_signs_that_ot1_fonts_misprint_are_set_in_math():
    assert latex.latex_escape("p < 0.05, |Δ|, α/m") == r"p $<$ 0.05, $|$$\Delta$$|$, $\alpha$/m"


def _compile(tmp_path, tex: str, options: str, name: str) -> str:
    (tmp_path / f"{name}.tex").write_text(
        f"\\documentclass[{options}]{{article}}\n\\usepackage{{booktabs}}\n\\begin{{document}}\nText before the tables.\n\n"
        + tex
        + "\n\\end{document}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"], cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout[-2000:]
    return (tmp_path / f"{name}.log").read_text(errors="replace")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason=NO_TEX)
@pytest.mark.parametrize("layout", ["column", "page"])
@pytest.mark.parametrize("options", ["", "twocolumn"])
def test_default_grid_compiles_without_overfull_box_or_too_large_float(default_grid, tmp_path, layout, options):
    table, questions = default_grid
    tex = latex.to_latex([table], label="tab:main", layout=layout, questions=questions)
    log = _compile(tmp_path, tex, options, f"default-{layout}-{options or 'onecolumn'}")
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*", log)
    assert "Float too large" not in log, re.findall(r"Float too large.*", log)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason=NO_TEX)
def test_width_estimate_never_falls_short_of_tex(default_grid, tmp_path):
    """The estimate the names are fitted by is at least TeX's width, less the margin it keeps."""
    table, _ = default_grid
    samples = []  # (LaTeX to measure, estimate)
    for spec in latex.LAYOUTS.values():
        for i, name in enumerate(table.rows["cell"]):
            row = table.rows.iloc[i]
            weight, star = latex._remarks(row)
            marks = ",".join(m for m in (weight, star) if m)
            shown = latex.latex_escape(name) + (rf"$^{{{marks}}}$" if marks else "")
            samples.append((rf"{spec.font}{{{shown}}}", latex.text_width(name, spec.font_pt) + latex_fit.marks_width(marks, spec)))
        for column in latex.C.leaderboard_columns(table):
            if column.key in ("acc@1", "delta", "ndcg@10"):
                for cell in column.cells:
                    samples.append((rf"{spec.font}{{{latex._cell(cell, stacked=True)}}}", latex_fit.cell_width(cell, spec)))
    body = "\n".join(rf"\settowidth\w{{{tex}}}\typeout{{W{i}:\the\w}}" for i, (tex, _) in enumerate(samples))
    log = _compile(tmp_path, "\\newlength\\w\n" + body, "", "widths")
    measured = {int(i): float(w) for i, w in re.findall(r"W(\d+):([\d.]+)pt", log)}
    assert len(measured) == len(samples)
    short = [(samples[i][0], round(measured[i] - samples[i][1], 2)) for i in measured if samples[i][1] < measured[i] - latex.FIT_MARGIN_PT]
    assert not short, short
    assert not math.isinf(max(estimate for _, estimate in samples))


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason=NO_TEX)
@pytest.mark.parametrize("layout", ["column", "page"])
def test_three_seed_questions_as_wide_as_full_gets_still_fit(default_grid, tmp_path, layout):
    """`full`'s Questions (3 seeds: "−−−" signs, wide negative CIs, three-digit W/T/L) overflowed a column by 3pt
    when every CI sat beside its Δ; the numbers' row is measured and the CIs go under their Δ where it would not fit."""
    _, questions = default_grid
    wide = dataclasses.replace(
        questions[0],
        rows=tuple(
            dataclasses.replace(r, diff=-0.1988, ci_low=-0.2177, ci_high=-0.1798, wins=382, ties=354, losses=379, per_seed_diffs=(-0.2, -0.19, -0.2))
            for r in questions[0].rows
        ),
    )
    tex = "\n".join(latex.questions_to_latex([wide], layout=layout))
    log = _compile(tmp_path, tex, "twocolumn", f"questions-{layout}")
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*", log)
    assert "Float too large" not in log, re.findall(r"Float too large.*", log)
    assert (r"\begin{tabular}[t]" in tex) == (layout == "column")  # stacked where the column is too narrow, beside it on a page
