"""Figures (`python -m bench plot`), figures.tex (`export latex --figures`) and the HTML report
(`report --html`), all from one small real store: a two-seed, two-K grid run on generated data."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from bench.analysis.questions import QuestionResult, QuestionsTable
from bench.commands.cli import main
from bench.plan.questions import Question
from bench.store.integrity import file_digests

GRID = """
name = "figures-test"
datasets = ["tiny"]
seeds = [0, 1]
shots = [{ K = 2, Q = 4 }, { K = 4, Q = 4 }]
[params]
embed_dim = 16
hidden_dim = 32
max_epochs = 3
meta_iterations = 6
meta_batch = 4
val_every = 2
val_episodes = 16
inner_steps = 1
[[cells]]
method = "popularity"
[[cells]]
method = "gru4rec"
[[cells]]
method = "maml"
init = ["random", "gru4rec"]
"""

# What the data work records under dataset.json "diagnostics" (numbers made up for the test).
DIAGNOSTICS = {
    "prefix_length_hist": [50, 30, 10, 6, 4],
    "label_share_curve": [[1, 0.1], [10, 0.5], [100, 1.0]],
    "support_signal": {"own": 0.2, "shuffled": 0.05, "ratio": 4.0},
    "markov_support": {"bonus": 1.0, "acc_without": 0.1, "acc_with": 0.12, "gain": 0.02},
    "revisit_rate": 0.1,
    "markov1_acc@1": 0.12,
    "popularity_acc@1": 0.05,
    "label_gini": 0.6,
    "prefix_length": {"p50": 3, "p90": 8, "p99": 15, "cut_share": 0.01},
}
FIGURE_NAMES = ["curves", "accuracy-vs-k", "questions-forest", "main-question-episodes", "repeat-explore", "dataset-diagnostics"]
MAIN = Question("Does a warm start help MAML?", "maml[gru4rec]:few-shot", "maml[random]:few-shot")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(data_dir, grid path, results dir): the grid run for real, dataset.json given diagnostics."""
    from bench.data.synth import make_synthetic_dataset

    data_dir = tmp_path_factory.mktemp("data")
    make_synthetic_dataset(data_dir, name="tiny", users=600, seed=0, n_courses=60, n_topics=6)  # few items: accuracies well above 0
    grid = tmp_path_factory.mktemp("grid") / "figures-test.toml"
    grid.write_text(GRID)
    results = tmp_path_factory.mktemp("results")
    assert main(["run", "--grid", str(grid), "--data-dir", str(data_dir), "--results", str(results), "--quiet"]) == 0
    manifest_path = data_dir / "processed" / "tiny" / "dataset.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "diagnostics": DIAGNOSTICS}))
    return data_dir, grid, results


def _question_result(question: Question, status: str = "ok", **numbers) -> QuestionResult:
    values = dict(diff=0.03, ci_low=0.01, ci_high=0.05, p_value=0.01, p_holm=0.02, mde=0.025)
    values.update(numbers)
    return QuestionResult(
        question=question,
        metric="acc@1",
        status=status,
        detail="" if status == "ok" else "no runs of cell x",
        n_episodes=10,
        n_learners=10,
        n_seeds=2,
        paired_seeds=True,
        wins=5,
        ties=3,
        losses=2,
        per_seed_diffs=(0.02, 0.04),
        signs_agree=True,
        verdict="A is ahead",
        **values,
    )


@pytest.fixture(scope="module")
def inputs(store):
    """PlotInputs of the store, with hand-made answers to two questions (one missing) on each table."""
    from bench.output.figures.inputs import load_inputs

    data_dir, grid, results = store
    plain = load_inputs(results, grid=str(grid), data_dir=data_dir)
    other = Question("Does meta-training beat GRU4Rec?", "maml[random]:few-shot", "gru4rec:zero-shot")
    missing = Question("Does a cell that never ran help?", "nope:few-shot", "maml[random]:few-shot")
    questions = tuple(
        QuestionsTable(
            dataset=t.dataset,
            dataset_hash=t.dataset_hash,
            K=t.K,
            Q=t.Q,
            metric="acc@1",
            grid="figures-test",
            rows=(
                _question_result(MAIN),
                _question_result(other, diff=-0.01, ci_low=-0.04, ci_high=0.02, p_holm=0.6),
                _question_result(missing, status="missing", diff=float("nan")),
            ),
            notes=("2 seeds; 95% paired bootstrap CIs.",),
        )
        for t in plain.tables
    )
    return dataclasses.replace(plain, questions=questions, questions_notice=None)


@pytest.fixture(scope="module")
def drawn(inputs):
    from bench.output.figures import close, draw_all

    figures = draw_all(inputs)
    yield figures
    close(figures)


# ---------------------------------------------------------------------------------------- figures


def test_every_figure_is_a_valid_pdf_and_png_with_a_caption(drawn, tmp_path):
    from matplotlib.image import imread

    from bench.output.figures import Drawn, write_figures

    assert list(drawn) == FIGURE_NAMES and all(isinstance(item, Drawn) for item in drawn.values()), drawn
    written = write_figures(drawn, tmp_path)
    assert [w.name for w in written] == FIGURE_NAMES
    for item in written:
        pdf = item.pdf.read_bytes()
        assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF") and len(pdf) > 5_000, item.name
        image = imread(item.png)
        assert image.shape[0] > 300 and image.shape[1] > 600, item.name  # 300 dpi, at least 2 inches wide
        assert image[..., :3].std() > 0.05, item.name  # not a blank canvas
        text = item.caption_file.read_text()
        assert text.startswith(item.caption) and "Drawn from:" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.{e}" for n in FIGURE_NAMES for e in ("pdf", "png", "txt"))


def _lines(figure, prefix: str) -> dict[str, object]:
    return {line.get_gid(): line for ax in figure.axes for line in ax.get_lines() if (line.get_gid() or "").startswith(prefix)}


def test_curve_lines_are_the_stored_curves_averaged_over_seeds(drawn, inputs, store):
    _, _, results = store
    lines = _lines(drawn["curves"].figure, "curve|")
    runs = [r for r in inputs.results.runs if r["config"]["method"] == "maml"]
    expected_keys = {f"curve|tiny|{r['config']['K']}|4|{r['cell']}" for r in runs}
    assert set(lines) == expected_keys and len(expected_keys) == 4
    for key, line in lines.items():
        _, _, K, _, cell = key.split("|")
        stored = [
            pd.read_parquet(results / "runs" / r["hash"] / "curve.parquet").set_index("iteration")["val_acc@1"]
            for r in runs
            if r["cell"] == cell and r["config"]["K"] == int(K)
        ]
        assert len(stored) == 2  # both seeds
        mean = pd.concat(stored, axis=1).mean(axis=1)
        np.testing.assert_allclose(line.get_xdata(), mean.index.to_numpy())
        np.testing.assert_allclose(line.get_ydata(), 100 * mean.to_numpy())


def test_a_run_stopped_early_is_marked_where_it_stopped(inputs, store):
    from bench.output.figures import close, curves

    _, _, results = store
    run = next(r for r in inputs.results.runs if r["config"]["method"] == "maml")
    stopped = {**run, "fit": {**run["fit"], "stopped": "patience", "stopped_at": 4}}  # as if val_patience ended it at 4
    runs = [stopped if r is run else r for r in inputs.results.runs]
    plain = curves.draw(inputs)
    marked = curves.draw(dataclasses.replace(inputs, results=dataclasses.replace(inputs.results, runs=runs)))
    try:
        assert not _lines(plain.figure, "stop|") and "stopped early" not in plain.caption
        (line,) = _lines(marked.figure, "stop|").values()
        assert line.get_gid() == f"stop|{run['cell']}|{run['config']['seed']}"
        value = pd.read_parquet(results / "runs" / run["hash"] / "curve.parquet").set_index("iteration").loc[4, "val_acc@1"]
        assert list(line.get_xdata()) == [4] and line.get_ydata()[0] == pytest.approx(100 * value)
        assert "stopped early (val_patience" in marked.caption
    finally:
        close({"plain": plain, "marked": marked})


def test_accuracy_vs_k_points_are_the_leaderboard_means(drawn, inputs):
    lines = _lines(drawn["accuracy-vs-k"].figure, "shots|")
    assert "shots|tiny|4|maml[gru4rec]|few-shot" in lines and "shots|tiny|4|gru4rec|zero-shot" in lines
    for key, line in lines.items():
        _, _, _, cell, mode = key.split("|")
        expected = [
            100 * t.rows.loc[(t.rows["cell"] == cell) & (t.rows["mode"] == mode), "acc@1_mean"].item()
            for t in sorted(inputs.tables, key=lambda t: t.K)
        ]
        np.testing.assert_allclose(line.get_ydata(), expected)
        assert line.get_linestyle() == ("-" if mode == "few-shot" else "--")


def test_forest_points_are_the_question_differences(drawn, inputs):
    lines = _lines(drawn["questions-forest"].figure, "forest|")
    assert len(lines) == 2 * len(inputs.questions)  # the missing question draws no point
    point = lines[f"forest|tiny|2|{MAIN.a}|{MAIN.b}"]
    np.testing.assert_allclose(np.asarray(point.get_xdata(), dtype=float), [3.0])  # diff 0.03 in percentage points


def test_paired_bars_are_the_sorted_per_episode_differences(drawn, inputs):
    figure = drawn["main-question-episodes"].figure
    bars = [patch.get_height() for ax in figure.axes for patch in ax.patches if ax.get_title().endswith("K=2")]
    episodes = inputs.results.episodes
    K2 = episodes[episodes["K"] == 2]

    def side(text):
        cell, mode = text.split(":")
        return K2[(K2["cell"] == cell) & (K2["mode"] == mode)].groupby("episode")["acc@1"].mean()

    expected = np.sort((side(MAIN.a) - side(MAIN.b)).to_numpy()) * 100
    assert len(expected) > 5
    np.testing.assert_allclose(bars, expected)


def test_diagnostics_panels_show_the_recorded_numbers(drawn):
    prefix, share, signal = drawn["dataset-diagnostics"].figure.axes
    np.testing.assert_allclose(prefix.get_lines()[0].get_ydata(), [50, 30, 10, 6, 4])  # counts of 100 pairs, in %
    np.testing.assert_allclose(share.get_lines()[0].get_ydata(), [10, 50, 100])
    np.testing.assert_allclose([p.get_height() for p in signal.patches], [20, 5])


def test_missing_inputs_skip_with_a_notice(inputs):
    from bench.output.figures import FIGURES, Skipped

    bare = dataclasses.replace(inputs, tables=inputs.tables[:1], questions=(), questions_notice="no questions here", manifests={})
    for name in ("accuracy-vs-k", "questions-forest", "main-question-episodes", "dataset-diagnostics"):
        item = FIGURES[name](bare)
        assert isinstance(item, Skipped) and "\n" not in item.notice, name
    assert "no questions here" in FIGURES["questions-forest"](bare).notice
    assert "check --data-dir" in FIGURES["dataset-diagnostics"](bare).notice
    no_queries = dataclasses.replace(inputs, results=dataclasses.replace(inputs.results, queries=None))
    assert "per-query results" in FIGURES["repeat-explore"](no_queries).notice


def test_cli_plot_on_a_store_without_curves_skips_the_curves_only(store, tmp_path, capsys):
    data_dir, grid, results = store
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    for curve in copy.glob("runs/*/curve.parquet"):
        pd.DataFrame({"iteration": pd.Series(dtype="int64")}).to_parquet(curve)
        record = json.loads((curve.parent / "run.json").read_text())  # as the run had stored it: checksums that match
        record["files"] = file_digests(curve.parent, record["files"])
        (curve.parent / "run.json").write_text(json.dumps(record))
    out = tmp_path / "figs"
    assert main(["plot", "--results", str(copy), "--grid", str(grid), "--data-dir", str(data_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skipped curves: no stored meta-training curve" in printed
    assert not (out / "curves.pdf").exists()
    assert (out / "accuracy-vs-k.pdf").is_file() and (out / "dataset-diagnostics.png").is_file()


def test_cli_plot_bad_selection_exits_2_and_writes_nothing(store, tmp_path, capsys):
    _, _, results = store
    out = tmp_path / "figs"
    assert main(["plot", "--results", str(results), "--dataset", "nope", "--out", str(out)]) == 2
    assert "no complete runs" in capsys.readouterr().err and not out.exists()


# ------------------------------------------------------------------------------ LaTeX figures


def test_export_latex_figures_writes_figures_tex_including_each_drawn_figure(store, tmp_path, monkeypatch, capsys):
    data_dir, grid, results = store
    monkeypatch.setenv("BENCH_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)  # figures.tex names the folder as given: relative to where LaTeX runs
    argv = ["export", "latex", "--results", str(results), "--grid", str(grid), "--out", "table.tex", "--figures", "figs"]
    assert main(argv) == 0
    tex = (tmp_path / "figs" / "figures.tex").read_text()
    included = re.findall(r"\\includegraphics\[width=\\linewidth\]\{([^}]+)\}", tex)
    # no question is answered for this grid (it declares none), so the forest and per-episode figures are skipped
    assert included == ["figs/curves", "figs/accuracy-vs-k", "figs/repeat-explore", "figs/dataset-diagnostics"]
    assert all((tmp_path / f"{path}.pdf").is_file() for path in included)
    assert tex.count(r"\caption{") == 4 and r"\label{fig:curves}" in tex and r"\begin{figure*}" in tex
    assert "−" not in tex and "%" not in tex.replace(r"\%", "").split("\n", 2)[2]  # signs and percent escaped for LaTeX
    assert "skipped questions-forest" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no TeX engine here; the test above checks the structure")
def test_figures_tex_compiles_with_pdflatex(drawn, tmp_path):
    import subprocess

    from bench.output.figures import figures_tex, write_figures

    written = write_figures(drawn, tmp_path / "figs")
    (tmp_path / "figures.tex").write_text(figures_tex(written, "figs"))
    (tmp_path / "doc.tex").write_text(
        "\\documentclass[twocolumn]{article}\n\\usepackage{graphicx}\n\\begin{document}\n\\input{figures.tex}\n\\end{document}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-2000:]


# ---------------------------------------------------------------------------------- HTML page


class _Page(HTMLParser):
    """Collects what the structure test checks: tags, images, links, section ids."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.sections: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for name in ("href", "src", "action", "data"):
            if name in attrs and tag != "img":
                self.links.append(attrs[name])
        if tag == "section":
            self.sections.append(attrs.get("id"))


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _decoded_svgs(images: list[str]) -> list[ET.Element]:
    roots = []
    for src in images:
        assert src.startswith("data:image/svg+xml;base64,"), src[:60]
        roots.append(ET.fromstring(base64.b64decode(src.split(",", 1)[1], validate=True)))
    return roots


def test_html_page_is_self_contained_with_every_section(inputs, drawn):
    from bench.output.html import html_page

    text = html_page(inputs, drawn)
    page = _parse(text)
    assert page.sections == ["questions", "leaderboard", "figures", "datasets", "provenance"]
    # 2 question tables + 2 leaderboards (K=2, K=4) + 4 dataset tables (version, counts, summaries, diagnostics) + provenance
    assert page.tags.count("table") == 9
    assert all(root.tag.endswith("svg") for root in _decoded_svgs(page.images)) and len(page.images) == len(FIGURE_NAMES)
    assert all(link.startswith("#") for link in page.links), page.links  # in-page anchors only
    assert re.search(r"(?i)https?://|<script|@import|url\(", text) is None
    assert "Does a warm start help MAML?" in text and "no runs of cell x" in text
    assert all(run["hash"][:12] in text for run in inputs.results.runs)  # every run's provenance row
    assert ">diagnostics</th>" in text and "support_signal.ratio" in text and "torch" in text


def test_cli_report_html(store, tmp_path, monkeypatch, capsys):
    data_dir, grid, results = store
    monkeypatch.setenv("BENCH_DATA_DIR", str(data_dir))
    out = tmp_path / "report.html"
    assert main(["report", "--results", str(results), "--grid", str(grid), "--html", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    page = _parse(out.read_text())
    assert len(_decoded_svgs(page.images)) == 4  # no answered question: forest and per-episode figures say why instead
    assert "Figure questions-forest not drawn" in out.read_text()
    assert main(["report", "--results", str(results), "--html", str(tmp_path / "x.html"), "--reference", "nope:few-shot"]) == 2
    assert not (tmp_path / "x.html").exists()
