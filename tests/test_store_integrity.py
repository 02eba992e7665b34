"""A store that checks itself (issue 37): every kind of damage is named by report (no traceback), fails
--strict, is moved aside and recomputed by run, and the healed store's tables equal an undamaged one's;
never-run and failed cells are named; `store verify` checks runs, cached models and tuning journals."""

from __future__ import annotations

import errno
import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.analysis.leaderboard import leaderboard
from bench.analysis.select import select_results
from bench.commands.cli import main
from bench.store.results import Store, load_results

GRID = """
name = "cheap"
datasets = ["tiny"]
seeds = [0]
shots = [{ K = 3, Q = 4 }]
[[cells]]
method = "popularity"
[[cells]]
method = "recency"
[[cells]]
method = "markov"
"""
TIMING = ["train_seconds"]  # the one column a recomputation may change


@pytest.fixture(scope="module")
def base(run_data, tmp_path_factory):
    """An undamaged store of the cheap grid, and (data_dir, grid path, its leaderboard rows)."""
    root = tmp_path_factory.mktemp("integrity")
    grid = root / "cheap.toml"
    grid.write_text(GRID)
    results = root / "base"
    assert main(["run", "--grid", str(grid), "--data-dir", str(run_data), "--results", str(results), "--quiet"]) == 0
    return run_data, grid, results, _rows(results, grid)


def _rows(results, grid) -> pd.DataFrame:
    (table,) = leaderboard(select_results(results, str(grid)), n_resamples=200)
    return table.rows.drop(columns=TIMING).sort_values(["cell", "mode"]).reset_index(drop=True)


def _copy(base, tmp_path):
    data_dir, grid, results, rows = base
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    return data_dir, grid, copy, rows


def _run_of(results, cell: str) -> str:
    """The hash of the run of ``cell`` (read before it is damaged)."""
    return next(json.loads(p.read_text())["hash"] for p in (results / "runs").glob("*/run.json") if json.loads(p.read_text())["cell"] == cell)


def _valid_but_edited(path, column="acc@1"):
    frame = pd.read_parquet(path)
    frame[column] = 1 - frame[column]  # a whole, readable parquet file with other numbers: only the checksum tells
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    path.write_bytes(buffer.getvalue())


DAMAGE = {
    "run.json truncated": lambda f: (f / "run.json").write_bytes((f / "run.json").read_bytes()[:200]),
    "run.json zero bytes": lambda f: (f / "run.json").write_bytes(b""),
    "episodes truncated": lambda f: (f / "episodes.parquet").write_bytes((f / "episodes.parquet").read_bytes()[:300]),
    "episodes zero bytes": lambda f: (f / "episodes.parquet").write_bytes(b""),
    "episodes garbage": lambda f: (f / "episodes.parquet").write_bytes(b"\x00garbage" * (len((f / "episodes.parquet").read_bytes()) // 8)),
    "curve truncated": lambda f: (f / "curve.parquet").write_bytes((f / "curve.parquet").read_bytes()[:100]),
    "curve zero bytes": lambda f: (f / "curve.parquet").write_bytes(b""),
    "curve garbage": lambda f: (f / "curve.parquet").write_bytes(b"PAR1 not parquet at all PAR1"),
    "checksum mismatch": lambda f: _valid_but_edited(f / "episodes.parquet"),
    "missing file": lambda f: (f / "episodes.parquet").unlink(),
    "queries truncated": lambda f: (f / "queries.parquet").write_bytes((f / "queries.parquet").read_bytes()[:300]),
    "queries checksum mismatch": lambda f: _valid_but_edited(f / "queries.parquet", "rank"),
    "queries missing": lambda f: (f / "queries.parquet").unlink(),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_each_kind_of_damage_is_named_refused_by_strict_and_healed_by_run(base, tmp_path, capsys, kind):
    data_dir, grid, results, rows = _copy(base, tmp_path)
    run_hash = _run_of(results, "markov")
    DAMAGE[kind](results / "runs" / run_hash)
    report = ["report", "--results", str(results), "--grid", str(grid), "--data-dir", str(data_dir)]
    capsys.readouterr()

    assert main(report) == 0
    out = capsys.readouterr()
    note = [line for line in out.out.splitlines() if run_hash in line]
    assert len(note) == 1 and note[0].startswith("- damaged run") and "markov seed 0" in note[0] and "repair: python -m bench run --grid" in note[0]
    assert "Traceback" not in out.out + out.err
    assert out.out.index(run_hash) < out.out.index("### tiny")  # above the tables
    assert main([*report, "--strict"]) == 1
    assert "--strict" in capsys.readouterr().err

    assert main(["run", "--grid", str(grid), "--data-dir", str(data_dir), "--results", str(results), "--dry-run"]) == 0
    assert "(damaged: " in next(line for line in capsys.readouterr().out.splitlines() if line.startswith(run_hash))

    assert main(["run", "--grid", str(grid), "--data-dir", str(data_dir), "--results", str(results), "--quiet"]) == 0
    assert "moved to" in capsys.readouterr().out
    (aside,) = (results / "damaged").iterdir()
    assert aside.name.startswith(f"{run_hash}-")  # kept, never deleted
    assert Store(results).is_complete(run_hash)
    assert main([*report, "--strict"]) == 0
    assert run_hash not in capsys.readouterr().out
    pd.testing.assert_frame_equal(_rows(results, grid), rows)


def test_a_never_run_cell_is_named_in_every_output(base, tmp_path, capsys):
    _, _, results, _ = _copy(base, tmp_path)
    bigger = tmp_path / "bigger.toml"
    bigger.write_text(GRID + '[[cells]]\nmethod = "random"\n')
    capsys.readouterr()
    assert main(["report", "--results", str(results), "--grid", str(bigger)]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("- missing run")]
    assert " random seed 0 (tiny K=3): never run; repair: python -m bench run --grid" in line
    assert main(["report", "--results", str(results), "--grid", str(bigger), "--strict"]) == 1
    capsys.readouterr()
    for fmt, mark in (("markdown", "> - missing run"), ("latex", "% - missing run")):
        assert main(["export", fmt, "--results", str(results), "--grid", str(bigger)]) == 0
        assert mark in capsys.readouterr().out
    assert main(["export", "csv", "--results", str(results), "--grid", str(bigger), "--out", str(tmp_path / "t.csv")]) == 0
    assert "- missing run" in capsys.readouterr().err
    assert main(["report", "--results", str(results), "--grid", str(bigger), "--html", str(tmp_path / "r.html")]) == 0
    assert 'class="problems"' in (tmp_path / "r.html").read_text() and "never run" in (tmp_path / "r.html").read_text()


def test_runs_stored_before_checksums_still_read_as_complete(base, tmp_path):
    _, _, results, _ = _copy(base, tmp_path)
    for path in (results / "runs").glob("*/run.json"):
        record = json.loads(path.read_text())
        del record["files"]
        path.write_text(json.dumps(record))
    store = Store(results)
    assert all(state.state == "complete" for state in store.scan())
    assert len(load_results(results).runs) == 3 and not load_results(results).problems
    markov = _run_of(results, "markov")
    (store.run_dir(markov) / "episodes.parquet").write_bytes(b"PAR1")  # a legacy file can still be seen to be broken
    assert store.inspect(markov).state == "damaged"


def test_a_failed_run_with_no_room_to_write_still_says_what_failed(base, tmp_path, capsys, monkeypatch):
    data_dir, grid, results, _ = _copy(base, tmp_path)
    markov = _run_of(results, "markov")
    shutil.rmtree(results / "runs" / markov)
    monkeypatch.setenv("BENCH_FAIL_CELL", "markov")

    from bench.store import results as store_module

    write = store_module.atomic_write_text

    def full(path, text):  # the disk fills up between run.json and the traceback
        if Path(path).name == "error.txt":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write(path, text)

    monkeypatch.setattr("bench.store.results.atomic_write_text", full)
    capsys.readouterr()
    assert main(["run", "--grid", str(grid), "--data-dir", str(data_dir), "--results", str(results), "--quiet"]) == 1
    (line,) = [line for line in capsys.readouterr().out.splitlines() if f"run {markov}" in line]
    assert "failed: RuntimeError: injected failure for cell markov" in line and "no error.txt" in line and "details in" not in line
    monkeypatch.undo()
    monkeypatch.setenv("BENCH_FAIL_CELL", "markov")  # now with room: the error line points to the file it wrote
    assert main(["run", "--grid", str(grid), "--data-dir", str(data_dir), "--results", str(results), "--quiet"]) == 1
    (line,) = [line for line in capsys.readouterr().out.splitlines() if f"run {markov}" in line]
    details = line.split("details in ")[1]
    assert (results / "runs" / markov / "error.txt").samefile(details)
    assert main(["report", "--results", str(results), "--grid", str(grid)]) == 0
    assert f"- failed run {markov} markov seed 0 (tiny K=3): failed: RuntimeError: injected failure" in capsys.readouterr().out


def test_store_verify_checks_runs_cache_and_journals_and_repairs(base, tmp_path, capsys):
    import torch

    data_dir, grid, results, rows = _copy(base, tmp_path)
    store = Store(results)
    entry = store.cache_dir / "gru4rec" / ("a" * 64)
    entry.mkdir(parents=True)
    (entry / "info.json").write_text("{}")
    torch.save({"w": torch.arange(1000.0)}, entry / "model.pt")
    journal = results / "tuning" / "cheap" / "markov.log"
    journal.parent.mkdir(parents=True)
    journal.write_text('{"op_code": 0}\n{"op_code": 1}\n')
    verify = ["store", "verify", "--results", str(results), "--data-dir", str(data_dir)]
    capsys.readouterr()
    assert main(verify) == 0
    assert (
        "3 run(s): 3 complete, 0 damaged, 0 failed, 0 orphaned; 1 cached model(s), 0 damaged; 1 tuning journal(s), 0 damaged"
        in capsys.readouterr().out
    )

    markov, recency = _run_of(results, "markov"), _run_of(results, "recency")
    DAMAGE["run.json truncated"](store.run_dir(markov))
    DAMAGE["checksum mismatch"](store.run_dir(recency))
    (entry / "model.pt").write_bytes((entry / "model.pt").read_bytes()[:-200])
    journal.write_bytes(journal.read_bytes() + b'{"op_co')
    assert main(verify) == 1
    out = capsys.readouterr().out
    assert "3 run(s): 1 complete, 2 damaged, 0 failed, 0 orphaned; 1 cached model(s), 1 damaged; 1 tuning journal(s), 1 damaged" in out
    assert f"damaged run {markov}: run.json does not parse" in out and f"damaged run {recency} recency seed 0" in out
    assert "damaged cache" in out and "damaged journal" in out and "line 3 of 3" in out

    assert main([*verify, "--repair", "--grid", str(grid)]) == 0  # the grid finds the run whose run.json is unreadable
    out = capsys.readouterr().out
    assert f"run {markov} (markov, seed 0): recomputed" in out and f"run {recency} (recency, seed 0): recomputed" in out
    assert main(verify) == 0
    assert "3 complete, 0 damaged" in capsys.readouterr().out
    assert journal.read_text() == '{"op_code": 0}\n{"op_code": 1}\n' and not entry.exists()
    assert len(list((results / "damaged").iterdir())) == 4  # two runs, the model, the journal: moved, never deleted
    pd.testing.assert_frame_equal(_rows(results, grid), rows)


def test_without_a_grid_the_report_names_damaged_runs_and_the_api_sees_them(base, tmp_path, capsys):
    _, _, results, _ = _copy(base, tmp_path)
    markov = _run_of(results, "markov")
    DAMAGE["run.json zero bytes"](results / "runs" / markov)
    capsys.readouterr()
    assert main(["report", "--results", str(results)]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if markov in line]
    assert "run.json is empty (0 bytes)" in line and f"repair: python -m bench store verify --results {results} --repair" in line
    selected = select_results(results)  # the Python API: the same note, as objects
    assert [(p.hash, p.state) for p in selected.problems] == [(markov, "damaged")] and markov not in set(selected.episodes["run"])


def test_store_verify_names_a_damaged_or_missing_queries_table(base, tmp_path, capsys):
    data_dir, _, results, _ = _copy(base, tmp_path)
    store = Store(results)
    popularity, recency = _run_of(results, "popularity"), _run_of(results, "recency")
    DAMAGE["queries checksum mismatch"](store.run_dir(popularity))
    DAMAGE["queries missing"](store.run_dir(recency))
    capsys.readouterr()
    assert main(["store", "verify", "--results", str(results), "--data-dir", str(data_dir)]) == 1
    out = capsys.readouterr().out
    assert "3 run(s): 1 complete, 2 damaged" in out
    assert "queries.parquet fails its checksum" in out and "queries.parquet is missing" in out
