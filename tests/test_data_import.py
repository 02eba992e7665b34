"""Importers: interaction logs, the seed's activity JSON (streamed), the seed's episodes; bad input."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from bench.commands.cli import main
from bench.core.errors import BenchError
from bench.data import importers, pipeline
from bench.data.dataset import open_dataset
from tests.helpers import BASE, error_line, interaction_log, iso_time, no_leftovers, seed_episodes_folder

# ----------------------------------------------------------------------------------------------
# Interaction logs


@pytest.mark.parametrize("time_format", ["epoch", "iso"])
def test_csv_with_odd_column_names_imports_to_episodes(tmp_path, time_format):
    log = interaction_log()
    if time_format == "iso":
        log["timestamp:float"] = log["timestamp:float"].map(iso_time)
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    rc = main(
        [
            "data",
            "import",
            "interactions",
            str(path),
            "--name",
            "csv",
            "--user",
            "user_id:token",
            "--item",
            "item_id:token",
            "--time",
            "timestamp:float",
            "--session",
            "session",
            "--K",
            "2",
            "--Q",
            "3",
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert rc == 0
    ds = open_dataset("csv", tmp_path)
    assert ds.n_items == log["item_id:token"].nunique()
    assert min(ds.vocab.values()) == 1
    pairs = pd.concat([ds.pairs(s) for s in pipeline.SPLITS])
    assert pairs["timestamp"].min() >= BASE  # ISO strings read as UTC, same seconds as epoch
    assert len(ds.episodes("test", 2, 3)) > 0
    assert ds.manifest["source"]["columns"]["user"] == "user_id:token"


def test_iso_and_epoch_give_identical_datasets(tmp_path):
    log = interaction_log(seed=2)
    iso = log.assign(**{"timestamp:float": log["timestamp:float"].map(iso_time)})
    log.to_csv(tmp_path / "a.tsv", sep="\t", index=False)
    iso.to_csv(tmp_path / "b.tsv", sep="\t", index=False)
    kwargs = dict(
        user="user_id:token",
        item="item_id:token",
        time="timestamp:float",
        session="session",
        data_dir=tmp_path,
        config=pipeline.PipelineConfig(K=2, Q=3),
    )
    a = importers.import_interactions(tmp_path / "a.tsv", name="a", **kwargs)
    b = importers.import_interactions(tmp_path / "b.tsv", name="b", **kwargs)
    for rel in ("pairs/pairs_train.parquet", "episodes/episodes_test_K2_Q3.parquet"):
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes()


def test_session_gap_splits_sessions(tmp_path):
    full = interaction_log(seed=1)
    log = full.drop(columns=["session"])
    path = tmp_path / "log.parquet"
    log.to_parquet(path)
    common = ["--user", "user_id:token", "--item", "item_id:token", "--time", "timestamp:float", "--K", "1", "--Q", "1", "--data-dir", str(tmp_path)]
    assert main(["data", "import", "interactions", str(path), "--name", "gap", "--session-gap", "30", *common]) == 0
    assert main(["data", "import", "interactions", str(path), "--name", "one", "--session-gap", "100000", *common]) == 0
    gap, one = open_dataset("gap", tmp_path), open_dataset("one", tmp_path)
    # sessions in _log are 2 h apart with events 60 s apart, so a 30-minute gap finds exactly them
    assert gap.manifest["counts"]["sessions"] == full["session"].nunique()
    assert one.manifest["counts"]["sessions"] == log["user_id:token"].nunique()
    assert gap.manifest["source"]["sessions"] == {"gap_minutes": 30.0}


COLUMNS = ["--user", "user_id:token", "--item", "item_id:token", "--time", "timestamp:float", "--session", "session"]


@pytest.mark.parametrize(
    "mutate, extra, message",
    [
        (None, ["--user", "nobody"], "unknown column 'nobody' for --user"),
        (
            lambda df: df.assign(**{"timestamp:float": ["yesterday"] + list(df["timestamp:float"].map(iso_time))[1:]}),
            [],
            "unparseable timestamp 'yesterday'",
        ),
        (lambda df: df.assign(**{"item_id:token": ""}), [], "no rows with a user, an item and a time"),
        (None, ["--K", "500", "--Q", "500"], "K+Q=1000 is larger than any"),
    ],
)
def test_bad_logs_exit_2_with_one_line_and_no_folder(tmp_path, capsys, mutate, extra, message):
    log = interaction_log() if mutate is None else mutate(interaction_log())
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    rc = main(["data", "import", "interactions", str(path), "--name", "bad", *COLUMNS, *extra, "--data-dir", str(tmp_path)])
    err = error_line(capsys.readouterr().err)
    assert rc == 2 and message in err
    assert not (tmp_path / "processed" / "bad").exists() and no_leftovers(tmp_path)


def test_missing_file_and_single_item_sessions(tmp_path, capsys):
    assert (
        main(
            [
                "data",
                "import",
                "interactions",
                str(tmp_path / "absent.csv"),
                "--name",
                "x",
                "--user",
                "u",
                "--item",
                "i",
                "--time",
                "t",
                "--data-dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "no such file" in capsys.readouterr().err
    pd.DataFrame({"u": ["a", "b"], "i": ["x", "y"], "t": [1, 2]}).to_csv(tmp_path / "one.csv", index=False)
    assert (
        main(
            [
                "data",
                "import",
                "interactions",
                str(tmp_path / "one.csv"),
                "--name",
                "x",
                "--user",
                "u",
                "--item",
                "i",
                "--time",
                "t",
                "--data-dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "no pairs" in capsys.readouterr().err
    assert no_leftovers(tmp_path) and not (tmp_path / "processed" / "x").exists()


# ----------------------------------------------------------------------------------------------
# The seed's raw activity JSON


def _activity(n_users=30, seed=0):
    """Activity in the seed's format; user 'alice' has one session A(t1) B(t2) A(t3) across two courses."""
    rng = np.random.default_rng(seed)
    courses = [f"course-v1:X+C{c:02d}+2017" for c in range(12)]
    by_course = {c: {} for c in courses}
    for u in range(n_users):
        t = BASE + u * 500
        for s in range(int(rng.integers(2, 6))):
            for _ in range(int(rng.integers(2, 6))):
                course = courses[int(rng.integers(0, len(courses)))]
                kind = ["load_video", "problem_check", "click_about", "video_play", "seek_video"][int(rng.integers(0, 5))]
                by_course[course].setdefault(f"u{u}", {}).setdefault(f"h{u}-{s}", []).append([kind, iso_time(t)])
                t += 30
            t += 7200
    a, b = courses[0], courses[1]
    by_course[a]["alice"] = {"sess": [["load_video", iso_time(BASE + 10)], ["video_play", iso_time(BASE + 30)], ["close_page", iso_time(BASE + 40)]]}
    by_course[b]["alice"] = {"sess": [["problem_get", iso_time(BASE + 20)], ["click_info", iso_time(BASE + 35)]]}
    return [[c, users] for c, users in by_course.items()]


def test_activity_json_streams_to_episodes(tmp_path):
    path = tmp_path / "activity.json"
    text = json.dumps(_activity(), indent=1)
    path.write_text(text)
    # tiny reads and tiny spills exercise buffer refills and the on-disk buckets
    ds = importers.import_xuetangx_activity(
        path, name="xt", data_dir=tmp_path, config=pipeline.PipelineConfig(K=1, Q=2), flush_rows=17, bucket_bytes=2000
    )
    rows = ds.manifest["source"]["rows"]
    assert rows["kept"] < rows["read"] and rows["dropped"]["event_kind_not_kept"] == rows["read"] - rows["kept"]
    assert ds.n_items == 12 and min(ds.vocab.values()) == 1
    pairs = pd.concat([ds.pairs(s) for s in pipeline.SPLITS])
    alice = pairs[pairs["user_id"] == "alice"]
    a, b = ds.vocab["course-v1:X+C00+2017"], ds.vocab["course-v1:X+C01+2017"]
    # time-ordered across courses: A (load), B (problem), A (video_play); click_* and close_* are dropped
    assert [list(p) for p in alice["prefix"]] == [[a], [a, b]] and list(alice["label"]) == [b, a]
    assert len(ds.episodes("test", 1, 2)) > 0
    # the same document read with a 5-character buffer gives the same elements
    small = list(importers.iter_activity(io.StringIO(text), "x", chunk_chars=5))
    assert small == list(importers.iter_activity(io.StringIO(text), "x"))


def test_activity_cli_and_truncated_file_exits_2_without_folder(tmp_path, capsys):
    text = json.dumps(_activity())
    good = tmp_path / "good.json"
    good.write_text(text)
    assert main(["data", "import", "xuetangx-activity", str(good), "--name", "xt", "--K", "1", "--Q", "2", "--data-dir", str(tmp_path)]) == 0
    cut = tmp_path / "cut.json"
    cut.write_text(text[: len(text) * 2 // 3])
    rc = main(["data", "import", "xuetangx-activity", str(cut), "--name", "xtcut", "--data-dir", str(tmp_path)])
    err = error_line(capsys.readouterr().err)
    assert rc == 2 and "truncated JSON" in err and "character" in err
    assert not (tmp_path / "processed" / "xtcut").exists() and no_leftovers(tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ('[["c1", {"u1": {"s": [["load_video", "2017-02-01T00:00:00"]]}} oops]', "malformed JSON"),
        ('[["c1", {"u1": {"s": [["load_video", "not a time"]]}}]]', "unparseable timestamp 'not a time'"),
        ('[["c1", {"u1": {"s": [["load_video" "2017"]]}}]]', "malformed JSON"),
        ('{"c1": 1}', "malformed JSON"),
        ('[["c1", {"u1": {"s": [["click_about", "2017-02-01T00:00:00"]]}}]]', "no learning events left"),
        ("", "truncated JSON"),
    ],
)
def test_bad_activity_files(tmp_path, capsys, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    rc = main(["data", "import", "xuetangx-activity", str(path), "--name", "bad", "--data-dir", str(tmp_path)])
    err = error_line(capsys.readouterr().err)
    assert rc == 2 and message in err
    assert not (tmp_path / "processed" / "bad").exists() and no_leftovers(tmp_path)


# ----------------------------------------------------------------------------------------------
# The seed's processed episodes


def test_seed_episodes_with_id_zero_are_repaired(tmp_path, capsys):
    seed_root = tmp_path / "seed" / "data" / "processed" / "xuetangx"
    sequences = seed_episodes_folder(seed_root, first_id=0)
    rc = main(["data", "import", "seed-episodes", str(tmp_path / "seed"), "--name", "seeded", "--data-dir", str(tmp_path)])
    assert rc == 0 and "repaired" in capsys.readouterr().out
    ds = open_dataset("seeded", tmp_path)
    assert sorted(ds.vocab.values()) == list(range(1, 21)) and ds.vocab["C000"] == 1
    assert ds.manifest["source"]["repair"]["id_shift"] == 1
    original = pd.read_parquet(seed_root / "episodes" / "episodes_train_K2_Q3.parquet")
    repaired = ds.episodes("train", 2, 3)
    assert len(repaired) == len(original)
    for col in ("support_labels", "query_labels"):
        assert [list(x) for x in repaired[col]] == [[v + 1 for v in x] for x in original[col]]
    assert [[list(p) for p in x] for x in repaired["query_prefixes"]] == [[[v + 1 for v in p] for p in x] for x in original["query_prefixes"]]
    assert min(np.concatenate(repaired["support_labels"].to_list())) >= 1
    # the pairs are recovered exactly from the overlapping windows, so GRU4Rec can train on them
    pairs = ds.pairs("train")
    own = pairs[pairs["user_id"] == "train0"]
    expected = sequences[("train", "train0")]
    assert [(list(p), int(l)) for p, l in zip(own["prefix"], own["label"])] == [([v + 1 for v in p], l + 1) for p, l in expected]
    assert "derived" in ds.manifest["source"]["pairs_derivation"]
    # other K/Q are built from the derived pairs
    assert len(ds.episodes("train", 1, 1)) == 4 * 8


def test_seed_episodes_already_one_based_are_kept(tmp_path):
    seed_episodes_folder(tmp_path / "s", first_id=1)
    ds = importers.import_seed_episodes(tmp_path / "s", name="ok", data_dir=tmp_path)
    assert ds.manifest["source"]["repair"] is None and ds.vocab["C000"] == 1


def test_seed_episodes_with_broken_ids_are_refused(tmp_path, capsys):
    seed_episodes_folder(tmp_path / "s", first_id=0)
    (tmp_path / "s" / "vocab" / "course2id.json").write_text(json.dumps({"A": 0, "B": 2, "C": 2}))
    rc = main(["data", "import", "seed-episodes", str(tmp_path / "s"), "--name", "no", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "not a permutation" in err
    assert not (tmp_path / "processed" / "no").exists()


def test_seed_episodes_need_all_three_splits(tmp_path):
    seed_episodes_folder(tmp_path / "s")
    (tmp_path / "s" / "episodes" / "episodes_val_K2_Q3.parquet").unlink()
    with pytest.raises(BenchError, match="no complete set"):
        importers.import_seed_episodes(tmp_path / "s", name="no", data_dir=tmp_path)


def test_activity_reader_buffer_stays_bounded(monkeypatch):
    """Streaming: the buffer never holds much more than one user's value, however long the file."""
    elements = [[f"c{c}", {f"u{u}": {"s": [["load_video", iso_time(BASE + u)]] * 3} for u in range(400)}] for c in range(5)]
    text = json.dumps(elements)
    largest_value = max(len(json.dumps(v)) for _, users in elements for v in users.values())
    sizes = []
    original = importers.JsonStream._read

    def spy(self, at_least=0):
        result = original(self, at_least)
        sizes.append(len(self.buf))
        return result

    monkeypatch.setattr(importers.JsonStream, "_read", spy)
    n = sum(1 for _ in importers.iter_activity(io.StringIO(text), "x", chunk_chars=64))
    assert n == 5 * 400
    assert len(text) > 100_000 and max(sizes) <= 2 * largest_value + 2 * 64


def test_seed_episodes_without_user_ids_treat_each_episode_as_a_user(tmp_path):
    seed_episodes_folder(tmp_path / "s", first_id=0)
    for path in (tmp_path / "s" / "episodes").glob("*.parquet"):
        pd.read_parquet(path).drop(columns=["user_id"]).to_parquet(path)
    ds = importers.import_seed_episodes(tmp_path / "s", name="anon", data_dir=tmp_path)
    train = ds.episodes("train", 2, 3)
    assert train["user_id"].is_unique and len(train) == 4 * 5
    assert ds.pairs("train").groupby("user_id").size().eq(5).all()


def test_every_source_writes_the_same_dataset_json_sections(tmp_path):
    """One writer (pipeline.write_manifest) for built and seed-episodes datasets: same sections, same order."""
    log = interaction_log(seed=1)
    log.to_csv(tmp_path / "log.csv", index=False)
    built = importers.import_interactions(
        tmp_path / "log.csv",
        name="built",
        user="user_id:token",
        item="item_id:token",
        time="timestamp:float",
        session="session",
        data_dir=tmp_path,
        config=pipeline.PipelineConfig(K=2, Q=3),
    )
    seed_episodes_folder(tmp_path / "s", first_id=1)
    seeded = importers.import_seed_episodes(tmp_path / "s", name="seeded", data_dir=tmp_path)
    sections = ["schema", "name", "source", "pipeline", "counts", "summaries", "srs", "diagnostics", "files", "content_hash"]
    for ds in (built, seeded):
        manifest = json.loads((ds.root / pipeline.MANIFEST).read_text())
        assert list(manifest) == sections
        assert manifest["schema"] == pipeline.SCHEMA_VERSION and manifest["name"] == ds.name
    assert list(built.manifest["counts"]) == list(seeded.manifest["counts"])
