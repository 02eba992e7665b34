"""Leaderboard tables and their renderers (terminal, LaTeX, markdown, CSV), and the CLI on a real store."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest

from bench.analysis import leaderboard as report
from bench.analysis import stats
from bench.commands.cli import main
from bench.core.errors import BenchError
from bench.core.metrics import METRICS
from bench.output import cells, csv, latex, markdown, terminal
from bench.store.results import Store
from tests.helpers import N_EPISODES, POP, SHIFTS, TRAIN_SECONDS, Results, metric_values, run_episodes, run_record, shifted_results

EXPECTED_ORDER = [
    ("maml[random]", "few-shot"),
    ("maml[random]", "zero-shot"),
    ("gru4rec", "few-shot"),
    ("gru4rec", "zero-shot"),
    (POP, "few-shot"),
    (POP, "zero-shot"),
]
SIGNIFICANT: set = set()  # the Δ-vs-reference column is descriptive: no row is ever marked (the tests are in bench.analysis.questions)
CLEAR_GAPS = {("maml[random]", "few-shot"), ("maml[random]", "zero-shot"), (POP, "zero-shot")}
WTL = {
    ("gru4rec", "few-shot"): (25, 0, 25),
    ("maml[random]", "zero-shot"): (45, 5, 0),
    ("maml[random]", "few-shot"): (50, 0, 0),
    (POP, "zero-shot"): (0, 0, 50),
    (POP, "few-shot"): (0, 47, 3),
}


@pytest.fixture(scope="module")
def table() -> report.LeaderboardTable:
    (only,) = report.leaderboard(shifted_results(), n_resamples=2_000)
    return only


def _key(row) -> tuple[str, str]:
    return (row["cell"], row["mode"])


# ---------------------------------------------------------------- the table


def test_rows_are_sorted_by_the_metric_with_ranks(table):
    rows = table.rows
    assert [_key(r) for _, r in rows.iterrows()] == EXPECTED_ORDER
    assert list(rows["rank"]) == list(range(1, 7))
    assert rows["acc@1_mean"].is_monotonic_decreasing
    (by_mrr,) = report.leaderboard(shifted_results(), metric="mrr", n_resamples=500)
    assert [_key(r) for _, r in by_mrr.rows.iterrows()][:3] == [(POP, "few-shot"), (POP, "zero-shot"), ("maml[random]", "few-shot")]
    assert by_mrr.metric == "mrr"


def test_ci_columns_come_from_seed_averaged_episodes(table):
    for _, row in table.rows.iterrows():
        per_seed = np.stack([metric_values(row["cell"], row["mode"], s)["acc@1"] for s in (0, 1)])
        summary = stats.summarize_cell(per_seed, n_resamples=2_000, seed=0)
        assert row["acc@1_mean"] == pytest.approx(summary.mean)
        assert (row["acc@1_ci_low"], row["acc@1_ci_high"]) == pytest.approx((summary.ci_low, summary.ci_high))
        assert row["acc@1_seed_std"] == pytest.approx(summary.seed_std)
        for metric in METRICS:
            assert row[f"{metric}_ci_low"] <= row[f"{metric}_mean"] <= row[f"{metric}_ci_high"]
        assert row["n_episodes"] == N_EPISODES and row["n_seeds"] == 2
        assert row["train_seconds"] == pytest.approx(TRAIN_SECONDS[row["cell"]] + 0.5)


def test_comparisons_significance_and_win_tie_loss(table):
    assert table.has_reference and table.reference == "gru4rec:zero-shot"
    rows = table.rows.set_index(["cell", "mode"])
    reference = rows.loc[("gru4rec", "zero-shot")]
    assert reference["is_reference"] and np.isnan(reference["diff_mean"]) and pd.isna(reference["wins"])
    compared = rows.drop(index=("gru4rec", "zero-shot"))
    assert not {"p_value", "p_holm", "significant"} & set(table.rows.columns)  # descriptive: no test, so no p column
    for key, row in compared.iterrows():
        assert (row["wins"], row["ties"], row["losses"]) == WTL[key]
        assert row["diff_mean"] == pytest.approx(SHIFTS[key].mean(), abs=1e-12)
        assert row["diff_ci_low"] <= row["diff_mean"] <= row["diff_ci_high"]
        assert (row["diff_ci_low"] > 0 or row["diff_ci_high"] < 0) == (key in CLEAR_GAPS)
    assert any("descriptive" in note and "Questions table" in note for note in table.notes)


def test_missing_default_reference_means_no_comparison_columns():
    (table,) = report.leaderboard(shifted_results(cells=("maml[random]", POP)), n_resamples=500)
    assert not table.has_reference
    assert table.rows["diff_mean"].isna().all()
    assert any("No comparison columns" in note and "gru4rec:zero-shot" in note for note in table.notes)
    headers = [c.header for c in cells.leaderboard_columns(table)]
    assert not any("Δ" in h or "Holm" in h for h in headers)
    assert "Holm" not in latex.to_latex([table], all_columns=True).split(r"\toprule")[1]


def test_other_reference_and_errors_list_the_choices():
    results = shifted_results()
    (table,) = report.leaderboard(results, reference=f"{POP}:zero-shot", n_resamples=500)
    assert table.rows.set_index(["cell", "mode"]).loc[("maml[random]", "few-shot"), "wins"] == 50
    with pytest.raises(BenchError, match=r"choose one of: .*gru4rec:few-shot"):
        report.leaderboard(results, reference="gru4rec:few-shoot", require_reference=True)
    with pytest.raises(BenchError, match="CELL:MODE"):
        report.leaderboard(results, reference="gru4rec")
    with pytest.raises(BenchError, match=r"acc@1, recall@5, recall@10, mrr, ndcg@10"):
        report.leaderboard(results, metric="hit@1")
    with pytest.raises(BenchError, match="choose one of: xuetangx-synth"):
        report.leaderboard(results, dataset="movielens")


def test_one_table_per_dataset_and_shots():
    a = shifted_results(cells=("gru4rec",), dataset="a")
    b = shifted_results(cells=("gru4rec",), dataset="b")
    b.episodes["K"] = 3
    merged = Results(a.runs + b.runs, pd.concat([a.episodes, b.episodes], ignore_index=True))
    tables = report.leaderboard(merged, n_resamples=200)
    assert [(t.dataset, t.K, t.Q) for t in tables] == [("a", 5, 10), ("b", 3, 10)]
    assert [t.dataset for t in report.leaderboard(merged, dataset="b", n_resamples=200)] == ["b"]


def test_same_cell_with_different_settings_becomes_separate_rows():
    results = shifted_results(cells=("gru4rec",), seeds=(0,))
    clone = shifted_results(cells=("gru4rec",), seeds=(0,))
    clone.runs[0] = {**clone.runs[0], "hash": "other", "config": {**clone.runs[0]["config"], "params": {"lr": 0.1}}}
    clone.episodes["run"] = "other"
    merged = Results(results.runs + clone.runs, pd.concat([results.episodes, clone.episodes], ignore_index=True))
    (table,) = report.leaderboard(merged, n_resamples=200)
    assert len(table.rows) == 4 and table.rows["cell"].str.startswith("gru4rec #").all()
    assert any("different settings" in note for note in table.notes)
    # without run.json configs the duplicates cannot be told apart: a clear error, not a silent average
    with pytest.raises(BenchError, match="more than one result per seed"):
        report.leaderboard(merged.episodes, n_resamples=200)


def test_episodes_missing_in_one_seed_are_left_out_with_a_note():
    results = shifted_results(cells=("gru4rec",))
    drop = (results.episodes["seed"] == 1) & (results.episodes["episode"] == 7)
    (table,) = report.leaderboard(Results(results.runs, results.episodes[~drop]), n_resamples=200)
    assert set(table.rows["n_episodes"]) == {N_EPISODES - 1}
    assert any("1 episode(s) not covered by every seed" in note for note in table.notes)


def test_incomplete_runs_are_ignored():
    results = shifted_results(cells=("gru4rec", "maml[random]"))
    runs = [{**r, "status": "running"} if r["cell"] == "maml[random]" else r for r in results.runs]
    (table,) = report.leaderboard(Results(runs, results.episodes), n_resamples=200)
    assert set(table.rows["cell"]) == {"gru4rec"}


# ---------------------------------------------------------------- renderers


def _latex_cells(line: str) -> list[str]:
    """The cells of a table row, each without the nested tabular that stacks a CI under its number."""
    cells = [c.strip() for c in re.split(r"(?<!\\)&", line.removesuffix(r"\\").strip())]
    return [re.sub(r"^\\begin\{tabular\}\[t\]\{@\{\}r@\{\}\}(.*)\\end\{tabular\}$", r"\1", c) for c in cells]


def test_latex_structure(table):
    tex = latex.to_latex([table], caption="Main results", label="tab:main", all_columns=True, layout="page")
    lines = tex.splitlines()
    assert r"\usepackage{booktabs}" in lines[1]
    assert r"\caption{Main results}" in tex and r"\label{tab:main}" in tex
    top, mid, bottom = (lines.index(rule) for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    assert top < mid < bottom and mid == top + 2
    spec = re.search(r"\\begin\{tabular\}\{@\{\}([lrc]+)@\{\}\}", tex).group(1)
    header = _latex_cells(lines[top + 1])
    body = [_latex_cells(line) for line in lines[mid + 1 : bottom]]
    assert len(body) == 6 and len(header) == len(spec) == 16  # no Holm p: the Δ column is descriptive; Repeat and Explore beside Acc@1
    assert all(len(row) == len(header) for row in body)
    assert all(line.endswith(r"\\") for line in lines[top + 1 : bottom] if line != r"\midrule")

    # balanced braces, ignoring escaped ones
    depth = 0
    for ch in re.sub(r"\\[{}]", "", tex):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0

    # special characters in names are escaped
    assert r"pop\_\{top\}\&50\%\#" in tex
    assert "pop_{" not in tex

    col = {name: header.index(name) for name in header}
    acc = col["Acc@1"]
    mrr = col["MRR"]
    delta = next(i for i, h in enumerate(header) if h.startswith(r"$\Delta$"))
    keys = [
        (row[1].replace(r"\_", "_").replace(r"\{", "{").replace(r"\}", "}").replace(r"\&", "&").replace(r"\%", "%").replace(r"\#", "#"), row[2])
        for row in body
    ]
    assert keys == EXPECTED_ORDER
    assert body[0][acc].startswith(r"\textbf{") and body[1][acc].startswith(r"\underline{")
    assert not any(row[acc].startswith(("\\textbf", "\\underline")) for row in body[2:])
    assert "[" in body[0][acc] and r"{\scriptsize" in body[0][acc]  # mean with its CI
    assert body[4][mrr].startswith(r"\textbf{") and body[5][mrr].startswith(r"\underline{")  # POP leads MRR
    for key, row in zip(keys, body):
        assert (r"$^\dagger$" in row[delta]) == (key in SIGNIFICANT)
    assert body[3][delta] == "reference"


def test_latex_without_caption_describes_the_table_and_suffixes_labels():
    tables = report.leaderboard(
        Results(
            *(lambda a, b: (a.runs + b.runs, pd.concat([a.episodes, b.episodes])))(
                shifted_results(cells=("gru4rec",), dataset="a_1"), shifted_results(cells=("gru4rec",), dataset="b")
            )
        ),
        n_resamples=200,
    )
    tex = latex.to_latex(tables, label="tab:r")
    assert tex.count(r"\begin{table}") == 2 and tex.count(r"\toprule") == 2
    assert r"\label{tab:r:a-1-K5-Q10}" in tex and r"\label{tab:r:b-K5-Q10}" in tex
    assert r"a\_1, $K=5$ support and $Q=10$ query" in tex and "percentile bootstrap" in tex


def test_markdown_rendering(table):
    text = markdown.to_markdown([table])
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header, align, body = lines[0], lines[1], lines[2:]
    n_columns = header.count(" | ") + 1
    assert len(body) == 6 and set(align.strip("|").split("|")) <= {"---:", ":---"}
    assert all(row.count(" | ") + 1 == n_columns for row in body)
    assert "### xuetangx-synth · K=5 · Q=10" in text
    assert body[0].split(" | ")[3].startswith("**") and "<u>" in body[1].split(" | ")[3]
    for key, row in zip(EXPECTED_ORDER, body):
        assert ("†" in row) == (key in SIGNIFICANT)
    assert "| 4 | gru4rec | zero-shot |" in body[3]
    assert "No comparison" not in text and "Holm p" not in text and "descriptive" in text


def test_csv_has_numeric_columns_per_metric(table):
    frame = pd.read_csv(io.StringIO(csv.to_csv([table])))
    for metric in METRICS:
        for suffix in ("mean", "ci_low", "ci_high", "seed_std"):
            assert pd.api.types.is_float_dtype(frame[f"{metric}_{suffix}"])
    for column in (
        "rank",
        "dataset",
        "K",
        "Q",
        "cell",
        "mode",
        "n_episodes",
        "n_seeds",
        "train_seconds",
        "diff_mean",
        "diff_ci_low",
        "diff_ci_high",
        "wins",
        "ties",
        "losses",
        "sort_metric",
        "reference",
    ):
        assert column in frame.columns
    assert list(zip(frame["cell"], frame["mode"])) == EXPECTED_ORDER
    assert frame["acc@1_mean"].to_numpy() == pytest.approx(table.rows["acc@1_mean"].to_numpy())
    assert set(frame["reference"]) == {"gru4rec:zero-shot"}


def test_terminal_table_shows_the_same_numbers(table):
    from rich.console import Console

    console = Console(file=io.StringIO(), width=250, color_system=None)
    terminal.print_report([table], console)
    text = console.file.getvalue()
    first = table.rows.iloc[0]
    assert cells.format_value("acc@1", first["acc@1_mean"]) in text
    assert f"[{cells.format_value('acc@1', first['acc@1_ci_low'])}, {cells.format_value('acc@1', first['acc@1_ci_high'])}]" in text
    assert "†" not in text  # descriptive Δ: no row is marked, and the notes do not explain a mark
    assert "50/0/0" in text and "0/47/3" in text


def test_formatting():
    assert cells.format_value("acc@1", 0.33549) == "33.55"
    assert cells.format_value("mrr", 0.123456) == "0.1235"
    assert cells.format_diff("recall@5", -0.0123) == "-1.23"
    assert cells.format_diff("mrr", 0.0123) == "+0.0123"
    assert cells.format_diff("mrr", -0.00002) == "0.0000" and cells.format_diff("acc@1", 0.0) == "0.00"
    assert cells.format_p(0.00001) == "<0.0001" and cells.format_p(float("nan")) == "—"
    assert latex.latex_escape("a_b&c%d$e#f{g}h~i^j\\") == (r"a\_b\&c\%d\$e\#f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}")


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    from bench.core.atomic import atomic_write, atomic_write_text

    target = tmp_path / "sub" / "table.tex"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["table.tex"]

    def fails(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, fails)
    assert target.read_text() == "two"  # the old file survives a failed write, no temp is left
    assert [p.name for p in target.parent.iterdir()] == ["table.tex"]


# ---------------------------------------------------------------- CLI on a real store


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    store = Store(root)
    for cell in TRAIN_SECONDS:
        for seed in (0, 1):
            record = run_record(cell, seed)
            store.start_run(record["hash"], record)
            store.finish_run(record["hash"], record, run_episodes(cell, seed), pd.DataFrame({"iteration": [1]}))
    return root


def test_cli_report(store_dir, capsys):
    assert main(["report", "--results", str(store_dir)]) == 0
    out = capsys.readouterr().out
    assert "xuetangx-synth · K=5 · Q=10" in out and "maml[random]" in out and "†" not in out
    assert out.index("maml[random]") < out.index("gru4rec")


def test_cli_exports(store_dir, tmp_path, capsys):
    tex = tmp_path / "table.tex"
    assert main(["export", "latex", "--results", str(store_dir), "--out", str(tex), "--caption", "Main", "--label", "tab:m"]) == 0
    assert r"\usepackage{booktabs}" in tex.read_text() and r"\label{tab:m}" in tex.read_text()
    csv = tmp_path / "table.csv"
    assert main(["export", "csv", "--results", str(store_dir), "--out", str(csv), "--metric", "mrr"]) == 0
    frame = pd.read_csv(csv)
    assert frame["cell"].iloc[0] == POP and set(frame["sort_metric"]) == {"mrr"}
    assert frame["train_seconds"].iloc[0] == pytest.approx(1.5)
    capsys.readouterr()
    assert main(["export", "markdown", "--results", str(store_dir), "--out", "-", "--reference", f"{POP}:few-shot"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### xuetangx-synth") and f"{POP}:few-shot" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["report", "--metric", "hit@1"], "choose one of: acc@1"),
        (["report", "--reference", "gru4rec:one-shot"], "choose one of: gru4rec:few-shot"),
        (["report", "--dataset", "nope"], "choose one of: xuetangx-synth"),
        (["export", "csv", "--reference", "gru4rec"], "CELL:MODE"),
    ],
)
def test_cli_errors_name_the_choices(store_dir, capsys, argv, message):
    assert main([*argv, "--results", str(store_dir)]) == BenchError.exit_code
    assert message in capsys.readouterr().err


def test_cli_help_renders(capsys):
    # argparse %-formats help strings: a bare "%" in one breaks `python -m bench --help`
    for argv in (["--help"], ["report", "--help"], ["export", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    assert "--reference CELL:MODE" in capsys.readouterr().out


def test_cli_without_results(tmp_path, capsys):
    assert main(["report", "--results", str(tmp_path / "none")]) == BenchError.exit_code
    assert "no results" in capsys.readouterr().err


def test_cell_intervals_cover_seed_variance_and_stay_in_the_metric_range():
    results = shifted_results(cells=("gru4rec",), seeds=(0, 1))
    seed_one = results.episodes["seed"] == 1
    results.episodes.loc[seed_one, "acc@1"] = results.episodes.loc[seed_one, "acc@1"] * 0.2  # seeds far apart
    (table,) = report.leaderboard(results, n_resamples=500)
    row = table.rows.set_index(["cell", "mode"]).loc[("gru4rec", "zero-shot")]
    per_seed = results.episodes[results.episodes["mode"] == "zero-shot"].pivot(index="episode", columns="seed", values="acc@1")
    episode_only = stats.bootstrap_ci(per_seed.mean(axis=1).to_numpy(), n_resamples=500)
    assert row["acc@1_ci_high"] - row["acc@1_ci_low"] > 3 * (episode_only[1] - episode_only[0])
    assert 0.0 == row["acc@1_ci_low"] < row["acc@1_mean"] < row["acc@1_ci_high"] <= 1.0  # two seeds: t_1, clipped at 0
    assert any("seeds, then learners" in note for note in table.notes)
