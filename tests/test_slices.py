"""Per-query results and the repeat/explore slices (issue 35 items 1-3): every run stores each test query's
rank as the evaluator gave it; the per-episode table is the "all" slice of those ranks, bit for bit;
repeat and explore partition the queries; an episode (and a learner) with no query in a slice is left
out of it; questions are answered on their own slice; `report --slice` shows one slice everywhere."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from bench.analysis.leaderboard import leaderboard
from bench.analysis.questions import answer_questions
from bench.analysis.select import select_results
from bench.commands.cli import main
from bench.core.errors import BenchError
from bench.core.metrics import METRICS, QUERY_COLUMNS, episode_metrics, query_rows, slice_metrics
from bench.data.dataset import open_dataset
from bench.methods.registry import METHODS, RunContext, method_ranks
from bench.plan.grid import questions_for
from bench.plan.questions import Question, parse_compare
from bench.store.results import QUERIES, Results, Store, load_results

GRID = """
name = "slicy"
datasets = ["tiny"]
seeds = [0]
shots = [{ K = 3, Q = 4 }]
[[cells]]
method = "popularity"
[[cells]]
method = "recency"
[[cells]]
method = "markov"
[[compare]]
question = "Does recency beat popularity?"
a = "recency:zero-shot"
b = "popularity:zero-shot"
[[compare]]
question = "On new courses, does Markov-1 beat popularity?"
a = "markov:zero-shot"
b = "popularity:zero-shot"
slice = "explore"
"""


@pytest.fixture(scope="module")
def store(run_data, tmp_path_factory):
    """The slicy grid run into a store: (data_dir, grid path, results folder)."""
    root = tmp_path_factory.mktemp("slices")
    grid = root / "slicy.toml"
    grid.write_text(GRID)
    results = root / "results"
    assert main(["run", "--grid", str(grid), "--data-dir", str(run_data), "--results", str(results), "--quiet"]) == 0
    return run_data, grid, results


def _run_dir(results, cell: str):
    return next(p.parent for p in (results / "runs").glob("*/run.json") if json.loads(p.read_text())["cell"] == cell)


# ---------------------------------------------------------------------------------------------
# What a run stores


def test_stored_ranks_are_the_evaluators(store):
    data_dir, _, results = store
    folder = _run_dir(results, "recency")
    queries = pd.read_parquet(folder / QUERIES)
    assert list(queries.columns) == list(QUERY_COLUMNS)
    assert queries.dtypes.map(str).to_dict() == {
        "episode": "int32",
        "mode": queries.dtypes["mode"].name,
        "query": "int16",
        "rank": "int32",
        "label": "int32",
        "in_prefix": "bool",
        "prefix_len": "int16",
    }
    dataset = open_dataset("tiny", data_dir)
    spec = METHODS["recency"]
    context = spec.prepare(RunContext(dataset, seed=0, K=3, Q=4))
    method = spec.build(context)
    method.fit(context)
    test = dataset.episodes("test", 3, 4)
    for mode in spec.modes:
        mine = queries[queries["mode"] == mode]
        ranks = method_ranks(method, test, mode)
        assert mine["rank"].tolist() == [int(r) for episode in ranks for r in episode]
        assert mine["label"].tolist() == [int(y) for labels in test["query_labels"] for y in labels]
        prefixes = [list(p) for episode in test["query_prefixes"] for p in episode]
        assert mine["in_prefix"].tolist() == [int(y) in set(map(int, p)) for y, p in zip(mine["label"], prefixes)]
        assert mine["prefix_len"].tolist() == [len(p) for p in prefixes]
    assert 0.2 < queries["in_prefix"].mean() < 0.95  # both slices hold queries on this data
    record = json.loads((folder / "run.json").read_text())
    assert QUERIES in record["files"]  # checksummed like the other tables


def test_the_all_slice_is_the_stored_per_episode_table_bit_for_bit(store):
    _, _, results = store
    for folder in (results / "runs").iterdir():
        episodes = pd.read_parquet(folder / "episodes.parquet")
        derived = slice_metrics(pd.read_parquet(folder / QUERIES), "all")
        assert (derived["n_queries"] == 4).all()
        for column in ("episode", "mode", *METRICS):
            assert derived[column].tolist() == episodes[column].tolist(), (folder.name, column)  # ==, not approx


def test_slice_metrics_equal_episode_metrics_on_random_ranks():
    rng = np.random.default_rng(0)
    for _ in range(40):
        n_episodes, Q = int(rng.integers(1, 12)), int(rng.integers(1, 21))
        ranks = rng.integers(1, 300, size=(n_episodes, Q))
        prefixes = [[list(rng.integers(1, 9, size=int(rng.integers(1, 4)))) for _ in range(Q)] for _ in range(n_episodes)]
        labels = rng.integers(1, 9, size=(n_episodes, Q))
        queries = pd.DataFrame(query_rows(list(ranks), labels.tolist(), prefixes, "few-shot"))
        for name in ("all", "repeat", "explore"):
            table = slice_metrics(queries, name)
            for _, row in table.iterrows():
                mask = queries["episode"] == row["episode"]
                if name != "all":
                    mask &= queries["in_prefix"] == (name == "repeat")
                expected = episode_metrics(queries.loc[mask, "rank"].to_numpy())
                assert all(row[m] == expected[m] for m in METRICS)


def test_repeat_and_explore_partition_the_queries_and_an_empty_slice_has_no_row():
    queries = pd.DataFrame(
        query_rows(
            [np.array([1, 2, 3]), np.array([1, 5, 1]), np.array([4, 1, 2])],
            [[1, 2, 3], [4, 5, 6], [7, 8, 9]],
            [[[1], [2, 9], [3]], [[9], [9], [9]], [[7], [1], [2]]],  # episode 0: all repeats; 1: none; 2: one
            "zero-shot",
        )
    )
    assert queries["in_prefix"].tolist() == [True, True, True, False, False, False, True, False, False]
    repeat, explore, whole = (slice_metrics(queries, name) for name in ("repeat", "explore", "all"))
    assert repeat["episode"].tolist() == [0, 2] and explore["episode"].tolist() == [1, 2]  # absent, not zero
    assert (repeat.set_index("episode")["n_queries"].add(explore.set_index("episode")["n_queries"], fill_value=0) == 3).all()
    both = pd.concat([repeat, explore]).groupby("episode").apply(lambda g: (g["acc@1"] * g["n_queries"]).sum() / g["n_queries"].sum())
    assert both.tolist() == pytest.approx(whole["acc@1"].tolist())
    assert explore.set_index("episode").loc[2, "acc@1"] == 0.5 and repeat.set_index("episode").loc[2, "acc@1"] == 0.0


# ---------------------------------------------------------------------------------------------
# Statistics on a slice


def _results(extra_learner: bool) -> Results:
    """Two cells over 12 learners (4 queries each, mixed repeat/explore); with ``extra_learner`` a 13th
    learner whose queries are all repeats."""
    rng = np.random.default_rng(7)
    runs, episodes, queries = [], [], []
    n = 13 if extra_learner else 12
    in_prefix = rng.random((13, 4)) < 0.5
    in_prefix[:12, 0], in_prefix[:12, 1], in_prefix[12] = True, False, True  # every learner has both; the 13th only repeats
    for cell, level in (("a", 3), ("b", 6)):
        ranks = rng.integers(1, level + 1, size=(13, 4))
        rows = pd.DataFrame(
            {
                "episode": np.repeat(np.arange(n), 4).astype(np.int32),
                "mode": "few-shot",
                "query": np.tile(np.arange(4), n).astype(np.int16),
                "rank": ranks[:n].ravel().astype(np.int32),
                "label": 1,
                "in_prefix": in_prefix[:n].ravel(),
                "prefix_len": 3,
            }
        )
        config = {"dataset": "d", "dataset_hash": "h", "method": cell, "init": None, "seed": 0, "K": 2, "Q": 4, "params": {}}
        runs.append({"hash": cell, "cell": cell, "status": "complete", "config": config})
        frame = slice_metrics(rows, "all").drop(columns="n_queries")
        frame.insert(0, "run", cell)
        frame["user_id"] = [f"u{e}" for e in frame["episode"]]
        for column in ("dataset", "method", "init", "seed", "K", "Q"):
            frame[column] = config[column]
        frame["cell"] = cell
        episodes.append(frame)
        queries.append(rows.assign(run=cell))
    return Results(runs, pd.concat(episodes, ignore_index=True), queries=pd.concat(queries, ignore_index=True))


def test_a_learner_with_no_query_in_a_slice_changes_nothing_in_that_slice():
    question = Question("Does a beat b on new courses?", "a:few-shot", "b:few-shot", slice="explore")
    answers = {}
    for extra in (False, True):
        results = _results(extra)
        (explore,) = leaderboard(results.sliced("explore"), reference="b:few-shot", n_resamples=300)
        (repeat,) = leaderboard(results.sliced("repeat"), reference="b:few-shot", n_resamples=300)
        (asked,) = answer_questions(results, [question], n_resamples=300)
        answers[extra] = (explore.rows, repeat.rows, asked.rows[0])
    (explore0, repeat0, q0), (explore1, repeat1, q1) = answers[False], answers[True]
    repeat_columns = ["repeat_mean", "repeat_n_episodes"]  # the side column of the other slice, which the 13th learner is in
    # means, CIs, Δ and W/T/L alike: the 13th learner is not in the slice
    pd.testing.assert_frame_equal(explore0.drop(columns=repeat_columns), explore1.drop(columns=repeat_columns))
    assert explore1["n_episodes"].tolist() == [12, 12] and repeat1["n_episodes"].tolist() == [13, 13]
    assert not repeat0["acc@1_ci_low"].equals(repeat1["acc@1_ci_low"])  # in the repeat slice it counts
    assert q1.slice == "explore" and (q1.diff, q1.ci_low, q1.ci_high, q1.n_episodes) == (q0.diff, q0.ci_low, q0.ci_high, 12)
    assert q1.sides.endswith("[explore]")


def test_the_slice_columns_of_every_row_are_its_slice_tables_means():
    results = _results(True)
    (table,) = leaderboard(results, reference=None, n_resamples=100)
    for name in ("repeat", "explore"):
        (sliced,) = leaderboard(results.sliced(name), reference=None, n_resamples=100)
        means = sliced.rows.set_index("cell")["acc@1_mean"]
        assert table.rows.set_index("cell")[f"{name}_mean"].to_dict() == means.to_dict()
    assert table.slice == "all" and sliced.slice == "explore" and sliced.title.endswith("· explore queries")


# ---------------------------------------------------------------------------------------------
# Questions on a slice


def test_a_compare_may_name_a_slice_and_an_unknown_one_is_refused(tmp_path):
    produced = {"a:zero-shot", "b:zero-shot"}
    (q,) = parse_compare([{"question": "q", "a": "a:zero-shot", "b": "b:zero-shot", "slice": "repeat"}], produced, "g.toml")
    assert q.slice == "repeat" and q.sides == "a:zero-shot − b:zero-shot [repeat]"
    with pytest.raises(BenchError, match="unknown slice 'new'.*one of 'all', 'repeat', 'explore'"):
        parse_compare([{"question": "q", "a": "a:zero-shot", "b": "b:zero-shot", "slice": "new"}], produced, "g.toml")
    both = [{"question": "q", "a": "a:zero-shot", "b": "b:zero-shot"}, {"question": "q", "a": "a:zero-shot", "b": "b:zero-shot", "slice": "explore"}]
    assert [x.slice for x in parse_compare(both, produced, "g.toml")] == ["all", "explore"]  # the same sides on two slices


def test_each_question_is_answered_on_its_own_slice_and_holm_spans_the_family(store):
    _, grid, results = store
    selected = select_results(results, str(grid))
    questions = questions_for(str(grid))
    (table,) = answer_questions(selected, questions, n_resamples=300)
    plain, explore = table.rows
    assert (plain.slice, explore.slice) == ("all", "explore")
    (sliced,) = answer_questions(selected.sliced("explore"), questions[1:], n_resamples=300)
    assert (explore.diff, explore.n_episodes) == (sliced.rows[0].diff, sliced.rows[0].n_episodes)
    popularity = selected.queries[selected.queries["run"] == next(r["hash"] for r in selected.runs if r["cell"] == "popularity")]
    assert explore.n_episodes == popularity.loc[~popularity["in_prefix"], "episode"].nunique() < plain.n_episodes
    assert plain.p_holm >= plain.p_value and min(1.0, 2 * min(plain.p_value, explore.p_value)) == pytest.approx(min(plain.p_holm, explore.p_holm))
    # under --slice repeat a question declared on "all" is answered on repeat; one declared on explore keeps it
    (on_repeat,) = answer_questions(selected.sliced("repeat"), questions, n_resamples=300)
    assert [r.slice for r in on_repeat.rows] == ["repeat", "explore"] and on_repeat.rows[1].diff == explore.diff


# ---------------------------------------------------------------------------------------------
# The commands


def test_report_export_and_plot_on_a_slice(store, tmp_path, capsys):
    data_dir, grid, results = store
    base = ["--results", str(results), "--grid", str(grid), "--data-dir", str(data_dir)]
    capsys.readouterr()
    assert main(["report", *base, "--slice", "explore"]) == 0
    out = capsys.readouterr().out
    assert "### tiny · K=3 · Q=4 · explore queries" in out and "On explore queries (a course not in the prefix) only" in out
    assert "recency:zero-shot − popularity:zero-shot [explore]" in out and "markov:zero-shot − popularity:zero-shot [explore]" in out
    assert "| Repeat Acc@1 % | Explore Acc@1 % |" in out
    assert main(["report", *base]) == 0
    plain = capsys.readouterr().out
    assert "### tiny · K=3 · Q=4\n" in plain and "<br>recency:zero-shot − popularity:zero-shot |" in plain and "[explore]" in plain
    assert "% of this table's test queries are repeats" in plain

    out_csv = tmp_path / "board.csv"
    assert main(["export", "csv", *base, "--slice", "repeat", "--out", str(out_csv)]) == 0
    frame = pd.read_csv(out_csv)
    assert set(frame["slice"]) == {"repeat"} and {"repeat_mean", "explore_mean"} <= set(frame.columns)
    row = frame[(frame["cell"] == "recency") & (frame["mode"] == "zero-shot")].iloc[0]
    assert row["acc@1_mean"] == pytest.approx(row["repeat_mean"])  # the repeat table's mean is the repeat column
    asked = pd.read_csv(out_csv.with_suffix(".questions.csv"))
    assert asked["slice"].tolist() == ["repeat", "explore"]

    assert main(["plot", *base, "--out", str(tmp_path / "figures")]) == 0
    assert (tmp_path / "figures" / "repeat-explore.png").stat().st_size > 10_000
    caption = (tmp_path / "figures" / "repeat-explore.txt").read_text()
    assert "repeat queries" in caption and "explore queries" in caption and "Repeat share of the test queries" in caption
    assert "markov:zero-shot − popularity:zero-shot [explore]" in (tmp_path / "figures" / "questions-forest.txt").read_text()


def test_runs_stored_before_per_query_results_serve_all_and_are_named_for_a_slice(store, tmp_path, capsys):
    data_dir, grid, results = store
    old = tmp_path / "old"
    shutil.copytree(results, old)
    folder = _run_dir(old, "markov")
    record = json.loads((folder / "run.json").read_text())
    del record["files"][QUERIES]
    (folder / "run.json").write_text(json.dumps(record))
    (folder / QUERIES).unlink()
    loaded = load_results(old)
    assert [r["hash"] for r in loaded.without_queries()] == [record["hash"]] and Store(old).is_complete(record["hash"])
    base = ["--results", str(old), "--grid", str(grid), "--data-dir", str(data_dir)]
    capsys.readouterr()
    assert main(["report", *base]) == 0
    out = capsys.readouterr().out
    markov = [line for line in out.splitlines() if line.startswith("| ") and "| markov |" in line]
    assert markov and all(line.count("| — |") >= 2 for line in markov)  # Repeat and Explore: a dash
    assert "stored before per-query results" in out
    assert "slice explore:" in out  # the question declared on explore: not answered, and why
    assert main(["report", *base, "--slice", "explore"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 run(s) stored before them lack (no queries.parquet): markov seed 0" in err[0] and "rerun" in err[0]


def test_an_empty_slice_shows_a_dash_and_says_why():
    results = _results(False)
    only_explore = results.queries.assign(in_prefix=False)  # a data set where no label returns (p_return 0)
    (table,) = leaderboard(Results(results.runs, results.episodes, queries=only_explore), reference=None, n_resamples=100)
    assert table.rows["repeat_mean"].isna().all() and table.rows["explore_mean"].notna().all() and table.repeat_share == 0.0
    assert table.rows["slices_stored"].all() and any("no test query of the row's episodes is in that slice" in n for n in table.notes)
    with pytest.raises(BenchError, match="no test query of these runs is in the repeat slice"):
        leaderboard(Results(results.runs, results.episodes, queries=only_explore).sliced("repeat"), reference=None)
