"""The session reliability score (seed notebook 03b): session statistics over raw events, the formula,
caps from train sessions only, composition only with event kinds, refusal without sessions, episode SRS."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from bench.commands.cli import main
from bench.core.errors import BenchError
from bench.data import build, importers, pipeline, srs, synth
from bench.data.info import info_dict, srs_lines
from tests.helpers import one_based_seed_folder

BASE = 1_486_000_000


# ----------------------------------------------------------------------------------------------
# The formula on a hand-made session table


def test_session_statistics_are_over_raw_events_and_the_formula_matches_a_hand_computation():
    interactions = pd.DataFrame(
        [  # user, item, timestamp, session, kind
            ("u1", "a", BASE + 0, "s1", "load_video"),
            ("u1", "a", BASE + 10, "s1", "load_video"),  # a consecutive repeat: removed from pairs, counted here
            ("u1", "b", BASE + 70, "s1", "pause_video"),
            ("u2", "c", BASE + 5, "s1", "problem_get"),  # same session id, other user: another session
        ]
        + [("u3", "d" if i % 2 else "e", BASE + 100, "s9", f"kind{i % 7}") for i in range(12)],  # 12 events, 0 s, 7 kinds
        columns=["user", "item", "timestamp", "session", "kind"],
    )
    stats = pipeline.session_stats(interactions)
    assert list(stats["user"]) == ["u1", "u2", "u3"]
    assert list(stats["events"]) == [3, 1, 12] and list(stats["seconds"]) == [70, 0, 0] and list(stats["kinds"]) == [2, 1, 7]
    assert len(pipeline.collapse_sessions(interactions)) == 2 + 1 + 12  # the collapse drops one row, the statistics keep it
    score = srs.scores(stats["events"], stats["seconds"], stats["kinds"], cap_events=6, cap_seconds=140)
    # u1: intensity 3/6, extent 70/140, composition 2/6; u2: 1/6, 0, 1/6; u3: 1 (clipped), 0, 1 (7/6 clipped)
    hand = [(0.5 + 0.5 + 2 / 6) / 3, (1 / 6 + 0 + 1 / 6) / 3, (1 + 0 + 1) / 3]
    assert score == pytest.approx(hand, abs=1e-6)
    assert list(score) == [0.444444, 0.111111, 0.666667]  # rounded to 6 decimals, as notebook 03b
    # without kinds: the mean of intensity and extent
    two = srs.scores(stats["events"], stats["seconds"], None, cap_events=6, cap_seconds=140)
    assert two == pytest.approx([(0.5 + 0.5) / 2, (1 / 6) / 2, 1 / 2], abs=1e-6)
    # caps: numpy's linear 95th percentile over train sessions with >= 2 events only
    cap_e, cap_s, n = srs.caps([3, 1, 12, 100], [70, 0, 0, 9000], [True, True, True, False])
    assert n == 2 and cap_e == pytest.approx(np.percentile([3, 12], 95)) and cap_s == pytest.approx(np.percentile([70, 0], 95))
    assert list(srs.ratio([0, 5], 0)) == [0.0, 1.0]  # a cap of 0


# ----------------------------------------------------------------------------------------------
# Caps from train sessions only


def _log(n_users=60, seed=0, kinds=True):
    """Per user 3-6 sessions (2 h apart) of 2-6 events 60 s apart, on 30 items; with an event kind column."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        t = BASE + u * 1000
        for s in range(int(rng.integers(3, 7))):
            for _ in range(int(rng.integers(2, 7))):
                kind = ["load_video", "pause_video", "seek_video", "problem_get"][int(rng.integers(0, 4))]
                rows.append((f"user{u:03d}", f"item-{int(rng.integers(0, 30)):02d}", t, f"s{u}-{s}", kind))
                t += 60
            t += 7200
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp", "session", "kind"])
    return frame if kinds else frame.drop(columns="kind")


def _build(interactions, name, data_dir):
    return build.build_dataset(
        interactions, name=name, data_dir=data_dir, source={"kind": "test"}, config=pipeline.PipelineConfig(K=1, Q=2), force=True
    )


def _session_srs(ds) -> pd.Series:
    pairs = pd.concat([ds.pairs(s) for s in pipeline.SPLITS])
    return pairs.drop_duplicates(["user_id", "session_id"]).set_index(["user_id", "session_id"])["session_srs"]


def test_caps_come_from_train_sessions_only(tmp_path):
    log = _log()
    before = _build(log, "before", tmp_path)
    held_out = sorted(set(before.pairs("val")["user_id"]) | set(before.pairs("test")["user_id"]))
    changed = set(held_out[::2])  # half the val/test learners
    # their sessions grow huge: 300 more events of the last item, a day later, of other kinds; pairs
    # (the collapse removes consecutive repeats) and so the split stay as they were
    last = log[log["user"].isin(changed)].groupby(["user", "session"]).tail(1)
    extra = last.loc[last.index.repeat(300)].copy()
    extra["timestamp"] = extra["timestamp"] + 86400 + np.tile(np.arange(300), len(last))
    extra["kind"] = [f"other{i % 9}" for i in range(len(extra))]
    after = _build(pd.concat([log, extra], ignore_index=True), "after", tmp_path)
    for split in pipeline.SPLITS:  # the pairs themselves did not move
        columns = ["user_id", "session_id", "label", "timestamp"]
        pd.testing.assert_frame_equal(before.pairs(split)[columns], after.pairs(split)[columns])
    assert (before.srs["cap_events"], before.srs["cap_seconds"]) == (after.srs["cap_events"], after.srs["cap_seconds"])
    a, b = _session_srs(before), _session_srs(after)
    unchanged = ~a.index.get_level_values(0).isin(changed)
    pd.testing.assert_series_equal(a[unchanged], b[unchanged])  # every train session, and the untouched val/test ones
    assert (b[~unchanged] > a[~unchanged]).all()  # the grown sessions score higher (sanity of the setup)
    assert after.srs["source"] == "train sessions only" and after.srs["percentile"] == 95


def test_pair_columns_reproduce_the_formula_with_the_recorded_caps(tmp_path):
    ds = _build(_log(), "formula", tmp_path)
    m = ds.srs
    assert m["available"] and m["components"] == ["intensity", "extent", "composition"] and m["n_kinds"] == 6
    for split in pipeline.SPLITS:
        p = ds.pairs(split)
        expected = srs.scores(p["session_events"], p["session_seconds"], p["session_kinds"], m["cap_events"], m["cap_seconds"])
        assert np.array_equal(p["session_srs"].to_numpy(), expected)
        assert ((p["session_srs"] >= 0) & (p["session_srs"] <= 1)).all()
        assert m["pairs_by_split"][split]["n"] == len(p)
        assert m["pairs_by_split"][split]["p50"] == pytest.approx(float(np.percentile(p["session_srs"], 50)), abs=1e-6)


# ----------------------------------------------------------------------------------------------
# Composition needs an event column


def test_without_an_event_column_composition_is_undefined(tmp_path, capsys):
    log = _log()
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    common = ["--user", "user", "--item", "item", "--time", "timestamp", "--session", "session", "--K", "1", "--Q", "2", "--data-dir", str(tmp_path)]
    assert main(["data", "import", "interactions", str(path), "--name", "plain", *common]) == 0
    assert main(["data", "import", "interactions", str(path), "--name", "kinds", "--event", "kind", *common]) == 0
    capsys.readouterr()
    plain, kinds = (info_dict(name, tmp_path) for name in ("plain", "kinds"))
    assert plain["srs"]["components"] == ["intensity", "extent"] and "undefined" in plain["srs"]["composition"]
    assert kinds["srs"]["components"] == ["intensity", "extent", "composition"]
    assert kinds["srs"]["kinds_seen"] == ["load_video", "pause_video", "problem_get", "seek_video"]
    from bench.data.dataset import open_dataset

    p, k = open_dataset("plain", tmp_path).pairs("train"), open_dataset("kinds", tmp_path).pairs("train")
    assert "session_kinds" not in p.columns and "session_kinds" in k.columns
    m = plain["srs"]
    intensity = np.minimum(p["session_events"] / m["cap_events"], 1)
    extent = np.minimum(p["session_seconds"] / m["cap_seconds"], 1)
    assert p["session_srs"].to_numpy() == pytest.approx(((intensity + extent) / 2).to_numpy(), abs=1e-6)
    assert kinds["srs"]["cap_events"] == m["cap_events"]  # same sessions, same caps
    # `data info` says so
    assert main(["data", "info", "plain", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "composition: undefined" in out and "SRS caps (train sessions only" in out
    # a missing event value is dropped and counted like any missing field
    log.loc[3, "kind"] = None
    log.to_csv(path, index=False)
    ds = importers.import_interactions(
        path,
        name="gap",
        user="user",
        item="item",
        time="timestamp",
        session="session",
        event="kind",
        data_dir=tmp_path,
        config=pipeline.PipelineConfig(K=1, Q=2),
    )
    assert ds.manifest["source"]["rows"]["dropped"]["missing_event"] == 1


def _activity(n_users=30, seed=0):
    rng = np.random.default_rng(seed)
    courses = [f"course-v1:X+C{c:02d}+2017" for c in range(12)]
    by_course = {c: {} for c in courses}
    for u in range(n_users):
        t = BASE + u * 500
        for s in range(int(rng.integers(2, 6))):
            for _ in range(int(rng.integers(2, 6))):
                course = courses[int(rng.integers(0, len(courses)))]
                kind = ["load_video", "problem_check", "click_about", "pause_video", "seek_video"][int(rng.integers(0, 5))]
                by_course[course].setdefault(f"u{u}", {}).setdefault(f"h{u}-{s}", []).append([kind, pd.Timestamp(t, unit="s").isoformat()])
                t += 30
            t += 7200
    iso = lambda t: pd.Timestamp(t, unit="s").isoformat()  # noqa: E731
    a, b = courses[0], courses[1]
    # alice: one session across two courses; click_* is not kept; load_video A, problem_get B, pause_video A, pause_video A
    by_course[a]["alice"] = {
        "sess": [["load_video", iso(BASE + 10)], ["pause_video", iso(BASE + 30)], ["pause_video", iso(BASE + 50)], ["click_about", iso(BASE + 90)]]
    }
    by_course[b]["alice"] = {"sess": [["problem_get", iso(BASE + 20)]]}
    return [[c, users] for c, users in by_course.items()]


@pytest.mark.parametrize("unit, kinds", [("event_type", 3), ("prefix", 3)])
def test_activity_import_counts_kept_raw_events(tmp_path, unit, kinds):
    path = tmp_path / "activity.json"
    path.write_text(json.dumps(_activity()))
    ds = importers.import_xuetangx_activity(
        path, name="xt", data_dir=tmp_path, config=pipeline.PipelineConfig(K=1, Q=2), flush_rows=17, bucket_bytes=2000, srs_kinds=unit
    )
    pairs = pd.concat([ds.pairs(s) for s in pipeline.SPLITS])
    alice = pairs[pairs["user_id"] == "alice"]
    assert len(alice) == 2  # A B A
    # 4 kept events (the repeat pause_video counts; click_about is not kept), 50 - 10 s, 3 kinds
    assert set(alice["session_events"]) == {4} and set(alice["session_seconds"]) == {40} and set(alice["session_kinds"]) == {kinds}
    assert ds.srs["components"] == ["intensity", "extent", "composition"]
    expected = (
        ["load", "pause", "problem", "seek"] if unit == "prefix" else ["load_video", "pause_video", "problem_check", "problem_get", "seek_video"]
    )
    assert ds.srs["kinds_seen"] == expected


# ----------------------------------------------------------------------------------------------
# No sessions: refuse before any work


def test_seed_episodes_have_no_srs_and_a_method_needing_it_refuses_in_one_line(tmp_path, capsys):
    one_based_seed_folder(tmp_path / "seed")
    ds = importers.import_seed_episodes(tmp_path / "seed", name="xuetangx-seed", data_dir=tmp_path)
    assert ds.srs_available is False and ds.manifest["srs"]["available"] is False and "episodes-only" in ds.manifest["srs"]["why"]
    with pytest.raises(BenchError) as err:
        ds.require_srs("srs-maml")
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith("dataset xuetangx-seed has no session statistics (an episodes-only import); srs-maml needs them")
    assert "python -m bench data import xuetangx-activity" in line
    with pytest.raises(BenchError, match="has no session statistics"):
        ds.episode_srs("test", 2, 3)
    assert srs_lines(ds.srs)[0].startswith("SRS: unavailable: an episodes-only import")
    assert main(["data", "info", "xuetangx-seed", "--data-dir", str(tmp_path)]) == 0
    assert "SRS: unavailable" in capsys.readouterr().out


def test_a_dataset_built_before_the_srs_key_has_none(tiny_dataset, tmp_path):
    from bench.data.dataset import Dataset

    ds = Dataset(tiny_dataset.root)
    ds.manifest = {k: v for k, v in ds.manifest.items() if k != "srs"}
    assert not ds.srs_available and "before session statistics" in ds.srs["why"]
    with pytest.raises(BenchError, match="srs-maml needs them"):
        ds.require_srs("srs-maml")
    tiny_dataset.require_srs("srs-maml")  # a built dataset has them: no error


# ----------------------------------------------------------------------------------------------
# One SRS per episode: the mean of its support pairs' session SRS


def _hand_episode_srs(ds, split, K, Q, row):
    """By hand, for one held-out episode (one per user, P = K): the user's time-ordered pairs, the K before the last Q."""
    episodes = ds.episodes(split, K, Q)
    user = episodes["user_id"].iloc[row]
    pairs = ds.pairs(split)
    mine = pairs[pairs["user_id"] == user].sort_values("timestamp", kind="stable")
    support = mine.iloc[len(mine) - K - Q : len(mine) - Q]
    assert [int(x) for x in support["label"]] == [int(x) for x in episodes["support_labels"].iloc[row]]  # the same support pairs
    return float(support["session_srs"].mean())


def test_episode_srs_is_the_mean_of_the_support_pairs_session_srs(tiny_dataset):
    for split in ("val", "test"):
        values = tiny_dataset.episode_srs(split, 5, 10)
        assert len(values) == len(tiny_dataset.episodes(split, 5, 10)) and values.dtype == np.float64
        for row in (0, len(values) - 1):
            assert values[row] == pytest.approx(_hand_episode_srs(tiny_dataset, split, 5, 10, row), abs=1e-12)
    # train: sliding windows; row r of user u's windows has support = u's pairs r .. r+K-1
    train = tiny_dataset.episodes("train", 3, 4)
    values = tiny_dataset.episode_srs("train", 3, 4)
    assert len(values) == len(train)
    user = train["user_id"].iloc[0]  # the first user's windows are rows 0, 1, ... (stride 1)
    mine = tiny_dataset.pairs("train")
    mine = mine[mine["user_id"] == user].sort_values("timestamp", kind="stable")
    window = min(2, int((train["user_id"] == user).sum()) - 1)
    assert [int(x) for x in mine["label"].iloc[window : window + 3]] == [int(x) for x in train["support_labels"].iloc[window]]
    assert values[window] == pytest.approx(mine["session_srs"].iloc[window : window + 3].mean(), abs=1e-12)
    # a population K scores the same learners: as many rows as the episodes at that population
    assert len(tiny_dataset.episode_srs("test", 1, 10, population_K=5)) == len(tiny_dataset.episodes("test", 1, 10, population_K=5))


# ----------------------------------------------------------------------------------------------
# The generator's event kinds


def test_synth_event_kinds_follow_their_shares_from_their_own_stream():
    config = synth.SynthConfig(users=2000, seed=1)
    a = synth.generate_interactions(config)
    assert set(a["kind"]) <= set(synth.EVENT_KINDS)
    shares = a["kind"].value_counts(normalize=True)
    total = sum(config.kind_shares())
    for kind, share in zip(synth.EVENT_KINDS, config.kind_shares()):
        assert shares.get(kind, 0.0) == pytest.approx(share / total, abs=0.01)
    # other shares change only the kinds, never the rest of the log
    b = synth.generate_interactions(dataclasses.replace(config, kind_pause_video=0.0, kind_problem_save=1.0))
    pd.testing.assert_frame_equal(a.drop(columns="kind"), b.drop(columns="kind"))
    assert "pause_video" not in set(b["kind"])
    for knob in synth.KIND_KNOBS:
        assert "01_ingest_xuetangx" in synth.KNOB_SOURCES[knob]
    with pytest.raises(BenchError, match="event kind shares"):
        synth.SynthConfig(kind_load_video=-0.1)


def test_synth_dataset_records_kind_knobs_and_srs(tiny_dataset):
    params = tiny_dataset.manifest["source"]["parameters"]
    assert {knob: params[knob] for knob in synth.KIND_KNOBS} == {knob: getattr(synth.SynthConfig(), knob) for knob in synth.KIND_KNOBS}
    assert "01_ingest_xuetangx" in tiny_dataset.manifest["source"]["parameter_sources"]["kind_pause_video"]
    assert tiny_dataset.srs["components"] == ["intensity", "extent", "composition"]
    assert set(tiny_dataset.srs["kinds_seen"]) <= set(synth.EVENT_KINDS)
