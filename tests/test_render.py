"""Renderers: terminal tables fitted to 80-120+ columns, paper LaTeX, the Questions table in every format."""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from bench.analysis import leaderboard as report
from bench.analysis.questions import QuestionResult, QuestionsTable
from bench.commands import common as commands_common
from bench.commands.cli import main
from bench.core.errors import BenchError
from bench.output import cells, csv, latex, markdown, terminal
from bench.plan.questions import Question
from bench.store.results import Store
from tests.helpers import DEFAULT_GRID_EPISODES, default_grid_results


@pytest.fixture(scope="module")
def board() -> report.LeaderboardTable:
    (table,) = report.leaderboard(default_grid_results(), n_resamples=300)
    return table


def _result(question, a, b, diff, low, high, p_holm, wtl, per_seed, verdict, status="ok", detail=""):
    nan = float("nan")
    ok = status == "ok"
    return QuestionResult(
        question=Question(question, a, b),
        metric="acc@1",
        status=status,
        detail=detail,
        n_episodes=DEFAULT_GRID_EPISODES if ok else 0,
        n_learners=DEFAULT_GRID_EPISODES if ok else 0,
        n_seeds=3 if ok else 0,
        paired_seeds=ok,
        diff=diff if ok else nan,
        ci_low=low if ok else nan,
        ci_high=high if ok else nan,
        p_value=p_holm / 2 if ok else nan,
        p_holm=p_holm if ok else nan,
        wins=wtl[0],
        ties=wtl[1],
        losses=wtl[2],
        mde=0.0123 if ok else nan,
        per_seed_diffs=per_seed,
        signs_agree=ok and len({np.sign(d) for d in per_seed}) == 1,
        verdict=verdict,
    )


QUESTIONS = QuestionsTable(
    dataset="xuetangx-synth",
    dataset_hash="d1",
    K=5,
    Q=10,
    metric="acc@1",
    grid="default",
    rows=(
        _result(
            "Does a warm start help MAML?",
            "maml[gru4rec]:few-shot",
            "maml[random]:few-shot",
            0.0432,
            0.0211,
            0.0650,
            0.0004,
            (131, 201, 68),
            (0.04, 0.05, 0.039),
            "A is better: +4.32 points, every seed agrees.",
        ),
        _result(
            "Does few-shot adaptation beat the frozen-embedding start?",
            "maml[gru4rec-frozen-embed]:few-shot",
            "maml[gru4rec]:zero-shot",
            -0.0057,
            -0.0191,
            0.0078,
            0.41,
            (88, 220, 92),
            (0.01, -0.02, -0.007),
            "No detectable difference; the MDE is 1.23 points.",
        ),
        _result(
            "Is the notebook's MAML as good?",
            "maml-notebook[gru4rec]:few-shot",
            "maml[gru4rec]:few-shot",
            0,
            0,
            0,
            0,
            (0, 0, 0),
            (),
            "not answered",
            status="missing",
            detail="maml-notebook[gru4rec] has no complete runs",
        ),
    ),
    notes=("3 seeds; 95% percentile bootstrap CIs over episodes; paired sign-flip test, Holm over the grid's 3 questions.",),
)


def _printed(width: int, tables, questions=()) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    terminal.print_report(tables, console, questions=questions)
    return console.export_text()


# ---------------------------------------------------------------- terminal


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_terminal_shows_every_number_whole_at_common_widths(board, width):
    text = _printed(width, [board], [QUESTIONS])
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    flat = re.sub(r"\s+", " ", text)
    left_out_line = next((line for line in text.splitlines() if line.startswith("Not shown at this width")), "")
    for column in cells.leaderboard_columns(board):
        if column.key == "wtl" and width == 80 and "W/T/L" in left_out_line:
            continue  # at 80 columns Repeat | Explore come first; W/T/L is named as left out
        if column.key not in ("mode", board.metric, "repeat", "explore", "delta", "p", "wtl"):
            continue
        for cell in column.cells:  # every priority column present, each number and CI whole
            assert cell.text in text and (not cell.detail or cell.detail in text), (column.key, cell)
    for name in board.rows["cell"]:  # long names wrap onto lines of their own, never cut
        assert any(all(piece in text for piece in terminal.wrap_name(name, w).split("\n")) for w in (None, 22, 16, 12, 8)), name
    left_out = [line for line in text.splitlines() if line.startswith("Not shown at this width")]
    if width < 200:
        assert left_out and "--wide" in flat and "--metric" in flat
    question = {c.key: c for c in cells.question_columns(QUESTIONS)}
    for key in ("delta", "p"):
        for cell in question[key].cells:
            assert cell.text in text and (not cell.detail or cell.detail in text)
    assert text.index("Questions of grid default") < re.search(r"^xuetangx-synth · K=5 · Q=10 *$", text, re.M).start()


def test_terminal_wide_shows_every_column(board):
    console = Console(width=80, record=True, file=io.StringIO(), color_system=None)
    terminal.print_report([board], console, wide=True)
    text = console.export_text()
    assert "Not shown" not in text and "Train s" in text and "NDCG@10" in text and "…" not in text


def test_question_prose_breaks_labels_at_punctuation_and_words_only_at_spaces():
    prose = "Does freezing the embedding change warm-start MAML?"
    assert terminal.wrap_prose(prose, 34).split("\n") == ["Does freezing the embedding change", "warm-start MAML?"]
    assert "warm-start" in terminal.wrap_prose(prose, 12).split("\n")  # a plain word is never split
    label = "maml[gru4rec-frozen-embed]:few-shot − maml[gru4rec-frozen-embed]:zero-shot"
    lines = terminal.wrap_prose(label, 34).split("\n")
    assert lines == ["maml[gru4rec-frozen-embed]:few-", "shot − maml[gru4rec-frozen-embed]:", "zero-shot"]  # packed, broken after - and :
    for width in (12, 20, 34, 80):
        lines = terminal.wrap_prose(label, width).split("\n")
        assert all(len(line) <= width for line in lines) and "".join(lines).replace(" ", "") == label.replace(" ", "")


def test_wrap_name_breaks_at_punctuation_and_never_drops_a_character():
    name = "maml[gru4rec-frozen-embed]"
    for width in (8, 12, 16, 40):
        lines = terminal.wrap_name(name, width).split("\n")
        assert "".join(lines) == name and all(len(line) <= width for line in lines)
    assert terminal.wrap_name(name, 16).split("\n") == ["maml[gru4rec-", "frozen-embed]"]


# ---------------------------------------------------------------- markdown and CSV


def test_questions_markdown_and_csv():
    text = markdown.questions_to_markdown([QUESTIONS])
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 3 and all(r.count(" | ") == rows[0].count(" | ") for r in rows)
    assert "+4.32† [+2.11, +6.50]" in text and "| ++++ " not in text and "| +++ |" in text and "| +−− |" in text
    assert "maml-notebook[gru4rec] has no complete runs" in text
    frame = pd.read_csv(io.StringIO(csv.questions_to_csv([QUESTIONS])))
    assert list(frame["question"]) == [r.question.question for r in QUESTIONS.rows]
    assert frame["diff"].iloc[0] == pytest.approx(0.0432) and frame["status"].iloc[2] == "missing"
    assert [float(x) for x in frame["per_seed_diffs"].iloc[0].split(";")] == [0.04, 0.05, 0.039]


# ---------------------------------------------------------------- LaTeX


def _rows(tex: str, environment: str) -> list[list[str]]:
    """Header and body cells of each booktabs table in ``tex`` inside ``environment``."""
    tables = []
    for block in re.findall(rf"\\begin\{{{re.escape(environment)}\}}(.*?)\\end\{{{re.escape(environment)}\}}", tex, re.S):
        body = block.split(r"\toprule")[1].split(r"\bottomrule")[0]
        lines = [line for line in body.splitlines() if line.strip() and line.strip() not in (r"\midrule", r"\addlinespace")]
        tables.append([re.split(r"(?<!\\)&", line) for line in lines])
    return tables


@pytest.mark.parametrize("layout, environment", [("column", "table"), ("page", "table*")])
def test_latex_paper_table_columns_per_layout(board, layout, environment):
    tex = latex.to_latex([board], layout=layout)
    (rows,) = _rows(tex, environment)
    headings = [r for r in rows if len(r) == 1]  # one \multicolumn heading per mode
    assert sorted(re.search(r"\\emph\{(.*?)\}", h[0]).group(1) for h in headings) == ["few-shot", "zero-shot"]
    numbers = [r for r in rows if len(r) > 1]
    assert all(len(r) == 5 for r in numbers) and len(numbers) == 1 + len(board.rows)  # cell, Acc@1, R@10, N@10, Δ
    assert r"\resizebox" not in tex and "booktabs" in tex.splitlines()[1]
    caption = re.search(r"\\caption\{(.*)\}\n", tex).group(1)
    for needed in (
        f"$n={DEFAULT_GRID_EPISODES}$ test episodes",
        "3 seeds",
        r"95\% percentile bootstrap",
        "descriptive (no test",
        "bold",
        "underlined",
    ):
        assert needed in caption, needed
    if layout == "column":  # the long names become keys explained in the caption
        assert "C1: maml[gru4rec-frozen-embed]" in caption and "gru4rec-frozen" not in tex.split(r"\toprule")[1]
    else:
        assert "C1:" not in caption and "maml[gru4rec-frozen-embed]" in tex.split(r"\toprule")[1]


def test_latex_columns_all_columns_scale_and_errors(board):
    (rows,) = _rows(latex.to_latex([board], columns=latex.parse_columns("cell,mode,mrr,wtl")), "table")
    assert all(len(r) == 4 for r in rows)
    (rows,) = _rows(latex.to_latex([board], all_columns=True, layout="page"), "table*")
    assert all(len(r) == 16 for r in rows)  # every column but Holm p (the Δ column is descriptive), Repeat and Explore included
    scaled = latex.to_latex([board], scale=True)
    assert r"\resizebox{\columnwidth}{!}{%" in scaled and "graphicx" in scaled
    with pytest.raises(BenchError, match="choose from: rank, cell"):
        latex.parse_columns("cell,acc")


def test_latex_questions_are_their_own_small_table(board):
    tex = latex.to_latex([board], label="tab:main", questions=[QUESTIONS])
    assert tex.count(r"\begin{table}") == 2 and r"\label{tab:main:questions}" in tex
    questions_table, leaderboard_table = _rows(tex, "table")
    numbers = [r for r in questions_table if len(r) > 1]
    assert len(numbers) == 1 + 3 and all(len(r) == 5 for r in numbers)
    assert tex.index("Declared questions") < tex.index(r"\label{tab:main}")
    assert r"$+$4.32$^\dagger$" in tex and "Does a warm start help MAML?" in tex


def _compile(tmp_path, tex: str, options: str, name: str) -> str:
    (tmp_path / f"{name}.tex").write_text(
        f"\\documentclass[{options}]{{article}}\n\\usepackage{{booktabs}}\n\\begin{{document}}\n"
        "Text before the tables.\n\n" + tex + "\n\\end{document}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-2000:]
    return (tmp_path / f"{name}.log").read_text(errors="replace")


@pytest.mark.skipif(
    shutil.which("pdflatex") is None,
    reason="pdflatex not installed (Debian: texlive-latex-base texlive-latex-recommended); "
    "test_latex_paper_table_columns_per_layout checks the structure instead",
)
@pytest.mark.parametrize("layout", ["column", "page"])
@pytest.mark.parametrize("options", ["", "twocolumn"])
def test_latex_fits_the_page_in_one_and_two_column_articles(board, tmp_path, layout, options):
    tex = latex.to_latex([board], label="tab:main", layout=layout, questions=[QUESTIONS])
    log = _compile(tmp_path, tex, options, f"doc-{layout}-{options or 'onecolumn'}")
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*", log)


# ---------------------------------------------------------------- CLI: non-terminal output, the questions seam


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    store = Store(root)
    results = default_grid_results()
    for run in results.runs:
        episodes = results.episodes[results.episodes["run"] == run["hash"]]
        store.start_run(run["hash"], run)
        store.finish_run(
            run["hash"], run, episodes[["episode", "user_id", "mode", *cells.METRICS]].reset_index(drop=True), pd.DataFrame({"iteration": [1]})
        )
    return root


def test_report_to_a_pipe_is_plain_text_without_boxes(store_dir, capsys):
    assert main(["report", "--results", str(store_dir)]) == 0
    out = capsys.readouterr().out
    assert not re.search("[\u2500-\u257f]", out)  # no box drawing, so nothing drawn to a guessed width
    header = next(line for line in out.splitlines() if line.startswith("| # "))
    assert "Train s" in header and "W/T/L" in header  # every column, as a markdown table


def test_questions_seam_feeds_report_and_exports(store_dir, tmp_path, monkeypatch, capsys):
    calls = []

    def answer_questions(results, declared, **options):
        calls.append((declared, options))
        return [QUESTIONS]

    monkeypatch.setattr(commands_common, "questions_for", lambda grid: f"declared by {grid}")
    monkeypatch.setattr(commands_common, "answer_questions", answer_questions)
    monkeypatch.setattr("bench.plan.grid.grid_run_labels", lambda grid, runs, **_: {r["hash"]: r["cell"] for r in runs})
    assert main(["report", "--results", str(store_dir), "--grid", "default"]) == 0
    out = capsys.readouterr().out
    assert calls[0][0] == "declared by default" and calls[0][1]["metric"] == "acc@1"
    assert out.index("Questions of grid default") < out.index("### xuetangx-synth · K=5 · Q=10")
    out_csv = tmp_path / "board.csv"
    assert main(["export", "csv", "--results", str(store_dir), "--grid", "default", "--out", str(out_csv)]) == 0
    assert pd.read_csv(tmp_path / "board.questions.csv")["question"].iloc[0] == "Does a warm start help MAML?"
    assert main(["export", "latex", "--results", str(store_dir), "--grid", "default", "--out", str(tmp_path / "t.tex")]) == 0
    assert "Declared questions of grid default" in (tmp_path / "t.tex").read_text()
    assert main(["report", "--results", str(store_dir)]) == 0  # without --grid, no questions are asked
    assert len(calls) == 3 and "Questions of grid" not in capsys.readouterr().out


def test_export_rejects_an_unknown_column_before_writing(store_dir, tmp_path, capsys):
    out = tmp_path / "t.tex"
    assert main(["export", "latex", "--results", str(store_dir), "--columns", "cell,bogus", "--out", str(out)]) == BenchError.exit_code
    assert "choose from" in capsys.readouterr().err and not out.exists()


def _long_board(board, n=30):
    """``board`` with ``n`` rows (the smoke grid's size), cell names made distinct."""
    import dataclasses
    import math

    copies = math.ceil(n / len(board.rows))
    rows = pd.concat([board.rows.assign(cell=board.rows["cell"] + (f"-{i}" if i else "")) for i in range(copies)], ignore_index=True).head(n)
    rows = rows.sort_values(f"{board.metric}_mean", ascending=False, kind="stable").reset_index(drop=True)
    rows["rank"] = range(1, len(rows) + 1)
    return dataclasses.replace(board, rows=rows)


@pytest.mark.parametrize("layout", ["column", "page"])
def test_latex_long_leaderboard_is_split_into_floats_of_at_most_max_rows(board, layout):
    long = _long_board(board)
    tex = latex.to_latex([long], label="tab:long", layout=layout)
    env = latex.LAYOUTS[layout].environment
    parts = tex.split(rf"\begin{{{env}}}")[1:]
    assert len(parts) == -(-len(long.rows) // latex.LAYOUTS[layout].max_rows)

    def body_rows(part):
        body = part.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0].splitlines()
        return sum(1 for line in body if not line.startswith((r"\multicolumn", r"\addlinespace")))

    per_part = [body_rows(part) for part in parts]
    assert sum(per_part) == len(long.rows) and max(per_part) <= latex.LAYOUTS[layout].max_rows
    assert r"\label{tab:long}" in parts[0] and all(r"Continued from Table~\ref{tab:long}" in part for part in parts[1:])


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed; the structure test above still runs")
@pytest.mark.parametrize("layout", ["column", "page"])
@pytest.mark.parametrize("options", ["", "twocolumn"])
def test_latex_long_leaderboard_compiles_without_overfull_box_or_too_large_float(board, tmp_path, layout, options):
    tex = latex.to_latex([_long_board(board)], label="tab:long", layout=layout)
    log = _compile(tmp_path, tex, options, f"long-{layout}-{options or 'onecolumn'}")
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*", log)
    assert "Float too large" not in log, re.findall(r"Float too large.*", log)
