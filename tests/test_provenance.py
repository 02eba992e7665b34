"""Results tied to code: the code fingerprint covers what can change a number (and only that), is
part of every run's identity and of the GRU4Rec cache key, and report refuses to pool code versions."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

import baselines.gru4rec
from bench.analysis.leaderboard import leaderboard
from bench.commands.cli import main
from bench.core import provenance
from bench.core.errors import BenchError
from bench.core.metrics import METRICS
from bench.plan.grid import expand, grid_run_labels, load_grid
from bench.store.results import Store, load_results


@pytest.fixture
def source_copy(tmp_path):
    """A copy of the repository's bench/, baselines/ and meta/ sources."""
    for package in ("bench", "baselines", "meta"):
        shutil.copytree(provenance.REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    return tmp_path


def test_fingerprint_covers_numbers_code_and_new_modules_but_not_reports(source_copy):
    root = source_copy
    base = provenance.code_fingerprint(root)
    assert base == provenance.code_fingerprint()  # the copy is this checkout
    changes = {
        "bench/analysis/leaderboard.py": False,
        "bench/commands/run.py": False,
        "bench/store/results.py": False,
        "bench/commands/data.py": False,
        "bench/core/metrics.py": True,
        "bench/methods/registry.py": True,
        "bench/data/pipeline.py": True,
        "baselines/gru4rec.py": True,
        "meta/maml.py": True,
        "meta/new_method.py": True,
        "baselines/sasrec/model.py": True,  # modules other helpers add
    }
    for path, counts in changes.items():
        target = root / path
        original = target.read_bytes() if target.exists() else None
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((original or b"") + b"\nEDITED = 1\n")
        assert (provenance.code_fingerprint(root) != base) == counts, path
        if original is None:
            target.unlink()
        else:
            target.write_bytes(original)
    assert provenance.code_fingerprint(root) == base


def test_the_fingerprint_is_part_of_the_run_identity():
    grid = load_grid("smoke")
    current = expand(grid, {"d": "h1"})
    assert {r.code for r in current} == {provenance.code_fingerprint()}
    other = expand(grid, {"d": "h1"}, code="another-version")
    assert not {r.hash for r in current} & {r.hash for r in other}
    # runs stored before fingerprints existed (code "") keep the hashes they were stored under
    legacy = {r.cell: r.hash for r in expand(grid, {"d": "h1"}, code="")}
    # (each changed once, deliberately, when its declared params grew: gru4rec's train_users, issue 22;
    # MAML's val_patience, issue 38)
    assert legacy["maml[random]"] == "0a61509531806250" and legacy["gru4rec"] == "ef58bf556b82d5ed"


def test_gru4rec_cache_key_changes_with_the_code(monkeypatch):
    key = baselines.gru4rec.cache_key("data", {}, 0)
    monkeypatch.setattr(baselines.gru4rec, "code_fingerprint", lambda: "another-version")
    assert baselines.gru4rec.cache_key("data", {}, 0) != key


def _store_run(store: Store, run_hash: str, seed: int, code: str, finished: str, value: float) -> None:
    config = {"dataset": "d", "dataset_hash": "h", "method": "popularity", "init": None, "seed": seed, "K": 5, "Q": 10, "params": {}, "code": code}
    record = {"hash": run_hash, "cell": "popularity", "config": config, "finished": finished}
    episodes = pd.DataFrame({"episode": range(20), "user_id": [f"u{i}" for i in range(20)], "mode": "zero-shot"})
    for metric in METRICS:
        episodes[metric] = np.full(20, value)
    store.start_run(run_hash, record)
    store.finish_run(run_hash, record, episodes, pd.DataFrame({"iteration": [0]}))


def test_report_refuses_to_pool_code_versions_unless_allowed(tmp_path, capsys):
    store = Store(tmp_path / "results")
    _store_run(store, "run-a-seed0", 0, "aaaa", "2026-01-01T00:00:00", 0.1)
    _store_run(store, "run-b-seed1", 1, "bbbb", "2026-01-02T00:00:00", 0.3)
    results = load_results(store.root)
    with pytest.raises(BenchError, match=r"cell popularity \(d, K=5\) has runs made by 2 versions of the code .*--allow-mixed-code"):
        leaderboard(results, reference=None)
    assert main(["report", "--results", str(store.root)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1

    [table] = leaderboard(results, reference=None, allow_mixed_code=True)
    assert any("--allow-mixed-code" in note and "popularity" in note for note in table.notes)
    assert table.rows.iloc[0]["acc@1_mean"] == pytest.approx(0.2)  # both seeds pooled

    # one seed run by two code versions: only its newest run counts
    _store_run(store, "run-c-seed0", 0, "cccc", "2026-01-03T00:00:00", 0.5)
    [table] = leaderboard(load_results(store.root), reference=None, allow_mixed_code=True)
    assert table.rows.iloc[0]["acc@1_mean"] == pytest.approx(0.4)
    assert main(["report", "--results", str(store.root), "--allow-mixed-code"]) == 0
    assert "--allow-mixed-code" in capsys.readouterr().out


def test_report_grid_shows_the_current_codes_runs_unless_mixed_code_is_allowed():
    runs = [{"config": {"dataset": "d", "dataset_hash": "h1", "code": "old"}}]
    current = set(grid_run_labels(load_grid("smoke"), runs))
    assert current == {r.hash for r in expand(load_grid("smoke"), {"d": "h1"})}
    assert set(grid_run_labels(load_grid("smoke"), runs, any_code=True)) == {r.hash for r in expand(load_grid("smoke"), {"d": "h1"}, code="old")}
