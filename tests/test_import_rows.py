"""Every importer accounts for every input row: read = kept + dropped by reason; --strict refuses."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.commands.cli import main
from tests.helpers import BASE, error_line, interaction_log, iso_time, no_leftovers, seed_episodes_folder


def _import_json(capsys, argv: list[str], name: str, data_dir) -> tuple[int, str, dict | None]:
    rc = main([*argv, "--name", name, "--data-dir", str(data_dir)])
    out = capsys.readouterr()
    if rc != 0:
        return rc, error_line(out.err), None
    assert main(["data", "info", name, "--data-dir", str(data_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    return rc, out.out, info["source_rows"]


# ----------------------------------------------------------------------------------------------
# Interaction logs


def _dirty_log(tmp_path):
    """The good log with one row of each kind of drop; the duplicate (row 6) is the first offender."""
    log = interaction_log().astype(str)
    good = len(log)
    bad = pd.DataFrame(
        [
            ["", "item-01", str(BASE), "s0-0"],  # missing user
            ["user 0", " ", str(BASE), "s0-0"],  # missing item (blank)
            ["user 0", "item-01", "", "s0-0"],  # missing time
            ["user 0", "item-01", str(BASE + 5), ""],  # missing session
        ],
        columns=log.columns,
    )
    log = pd.concat([log.iloc[:5], log.iloc[[0]], log.iloc[5:], bad], ignore_index=True)  # row 6 repeats row 1
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    return path, good


COLUMNS = ["--user", "user_id:token", "--item", "item_id:token", "--time", "timestamp:float", "--session", "session", "--K", "2", "--Q", "3"]


def test_interactions_count_each_dropped_row_by_reason(tmp_path, capsys):
    path, good = _dirty_log(tmp_path)
    rc, out, rows = _import_json(capsys, ["data", "import", "interactions", str(path), *COLUMNS], "log", tmp_path)
    assert rc == 0
    dropped = {"missing_user": 1, "missing_item": 1, "missing_time": 1, "missing_session": 1, "duplicate": 1}
    assert rows == {"unit": "row", "read": good + 5, "kept": good, "dropped": dropped}
    assert f"input: {good + 5:,} rows read, {good:,} kept; dropped: 1 missing user, 1 missing item, 1 missing time" in out
    assert "1 exact duplicate" in out


def test_interactions_strict_refuses_at_the_first_offending_row(tmp_path, capsys):
    path, _ = _dirty_log(tmp_path)
    rc, err, _ = _import_json(capsys, ["data", "import", "interactions", str(path), *COLUMNS, "--strict"], "log", tmp_path)
    assert rc == 2 and "row 6 of log.csv" in err and "exact duplicate" in err
    assert not (tmp_path / "processed" / "log").exists() and no_leftovers(tmp_path)


# ----------------------------------------------------------------------------------------------
# The seed's raw activity JSON


def _dirty_activity(tmp_path, dirty=True):
    """Kept, distinct events for 30 users, then (``dirty``) one event of each kind of drop."""
    courses = [f"C{c:02d}" for c in range(8)]
    by_course = {c: {} for c in courses}
    good = 0
    for u in range(30):
        t = BASE + u * 500
        for s in range(4):
            for v in range(3):
                by_course[courses[(u + s + v) % 8]].setdefault(f"u{u}", {}).setdefault(f"h{u}-{s}", []).append(["load_video", iso_time(t)])
                good += 1
                t += 30
            t += 7200
    elements = [[c, users] for c, users in by_course.items()]
    if dirty:
        session = by_course["C00"]["u0"]["h0-0"]  # the file's first session, one good event so far
        session.append(["video_play", ""])  # missing time: event 2, the first offender
        session.append(["click_about", iso_time(BASE + 1)])  # kind not kept
        session.append(list(session[0]))  # exact duplicate
        by_course["C01"][""] = {"s": [["load_video", iso_time(BASE)]]}  # missing user
        elements.append(["", {"u1": {"s": [["load_video", iso_time(BASE)]]}}])  # missing course
    path = tmp_path / "activity.json"
    path.write_text(json.dumps(elements))
    return path, good


def test_activity_counts_each_dropped_event_by_reason(tmp_path, capsys):
    path, good = _dirty_activity(tmp_path)
    rc, out, rows = _import_json(capsys, ["data", "import", "xuetangx-activity", str(path), "--K", "1", "--Q", "2"], "xt", tmp_path)
    assert rc == 0
    dropped = {"missing_user": 1, "missing_item": 1, "missing_time": 1, "event_kind_not_kept": 1, "duplicate": 1}
    assert rows == {"unit": "event", "read": good + 5, "kept": good, "dropped": dropped}
    assert f"input: {good + 5:,} events read, {good:,} kept; dropped:" in out


def test_activity_strict_refuses_at_the_first_offending_event(tmp_path, capsys):
    path, _ = _dirty_activity(tmp_path)
    rc, err, _ = _import_json(capsys, ["data", "import", "xuetangx-activity", str(path), "--strict"], "xt", tmp_path)
    assert rc == 2 and "event 2 of activity.json (user 'u0', course 'C00')" in err and "missing time" in err
    assert not (tmp_path / "processed" / "xt").exists() and no_leftovers(tmp_path)


# ----------------------------------------------------------------------------------------------
# The seed's processed episodes


def _dirty_seed(tmp_path):
    root = tmp_path / "seed"
    seed_episodes_folder(root, first_id=1)
    files = sorted((root / "episodes").glob("*.parquet"))
    good = sum(len(pd.read_parquet(f)) for f in files)
    path = root / "episodes" / "episodes_train_K2_Q3.parquet"
    train = pd.read_parquet(path)
    n_train = len(train)
    no_user = train.iloc[[1]].assign(user_id=[None])
    no_item = train.iloc[[2]].copy()
    no_item.at[no_item.index[0], "support_labels"] = [2, None]
    train = pd.concat([train, no_user, no_item, train.iloc[[0]]], ignore_index=True)
    train.to_parquet(path)
    return root, good, n_train


def test_seed_episodes_count_each_dropped_row_by_reason(tmp_path, capsys):
    root, good, _ = _dirty_seed(tmp_path)
    rc, out, rows = _import_json(capsys, ["data", "import", "seed-episodes", str(root)], "seeded", tmp_path)
    assert rc == 0
    assert rows == {"unit": "episode row", "read": good + 3, "kept": good, "dropped": {"missing_user": 1, "missing_item": 1, "duplicate": 1}}
    assert f"input: {good + 3:,} episode rows read, {good:,} kept" in out


def test_seed_episodes_strict_refuses(tmp_path, capsys):
    root, _, n_train = _dirty_seed(tmp_path)
    rc, err, _ = _import_json(capsys, ["data", "import", "seed-episodes", str(root), "--strict"], "seeded", tmp_path)
    assert rc == 2 and f"row {n_train + 1} of episodes_train_K2_Q3.parquet" in err and "missing user" in err
    assert not (tmp_path / "processed" / "seeded").exists() and no_leftovers(tmp_path)


@pytest.mark.parametrize("source", ["interactions", "xuetangx-activity", "seed-episodes"])
def test_clean_input_reports_none_dropped(tmp_path, capsys, source):
    if source == "interactions":
        interaction_log().to_csv(tmp_path / "log.csv", index=False)
        argv = ["data", "import", "interactions", str(tmp_path / "log.csv"), *COLUMNS, "--strict"]
    elif source == "xuetangx-activity":
        path, _ = _dirty_activity(tmp_path, dirty=False)
        argv = ["data", "import", "xuetangx-activity", str(path), "--K", "1", "--Q", "2", "--strict"]
    else:
        seed_episodes_folder(tmp_path / "seed", first_id=1)
        argv = ["data", "import", "seed-episodes", str(tmp_path / "seed"), "--strict"]
    rc, out, rows = _import_json(capsys, argv, "clean", tmp_path)
    assert rc == 0 and "none dropped" in out and rows["kept"] == rows["read"] and not any(rows["dropped"].values())
