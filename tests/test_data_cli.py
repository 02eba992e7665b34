"""`python -m bench data ...` through bench.commands.cli.main: synth defaults, --if-missing, info, exit codes."""

from __future__ import annotations

import json

from bench.commands.cli import main
from bench.data.dataset import open_dataset
from tests.helpers import outside_bands


def test_default_synth_meets_the_benchmark_targets(tmp_path, capsys):
    """The Makefile's dataset: every statistic in its XuetangX band (so >= 300 test episodes), and
    >= 1,000 train users with episodes. The one full-size build of the suite (~15 s of CPU)."""
    assert main(["data", "synth", "--name", "xuetangx-synth", "--data-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["data", "info", "xuetangx-synth", "--json", "--data-dir", str(tmp_path)]) == 0
    info = json.loads(capsys.readouterr().out)
    splits = info["counts"]["splits"]
    assert splits["test"]["episodes"] >= 300
    assert splits["train"]["episode_users"] >= 1000
    assert info["counts"]["items"] == 1518
    assert info["cached_episodes"]["test_K5_Q10"] == splits["test"]["episodes"]
    ds = open_dataset("xuetangx-synth", tmp_path)
    assert ds.manifest["source"]["parameters"]["users"] == 180000
    assert outside_bands(info["diagnostics"]) == []


def test_if_missing_keeps_and_force_rebuilds(tmp_path, capsys):
    args = ["data", "synth", "--name", "s", "--users", "400", "--sessions-tail", "0.7", "--switch-tail", "1.6", "--data-dir", str(tmp_path)]
    assert main(args) == 0
    ds = open_dataset("s", tmp_path)
    first = ds.content_hash
    mtime = (ds.root / "dataset.json").stat().st_mtime_ns
    assert main(args + ["--if-missing", "--seed", "9"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (ds.root / "dataset.json").stat().st_mtime_ns == mtime
    assert main(args) == 2  # exists, no --force
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--force", "--seed", "9"]) == 0
    rebuilt = open_dataset("s", tmp_path)
    assert rebuilt.content_hash != first and rebuilt.manifest["source"]["parameters"]["seed"] == 9
    assert sorted(p.name for p in (tmp_path / "processed").iterdir()) == ["s"]


def test_info_table_and_unknown_name(tmp_path, capsys):
    assert (
        main(
            [
                "data",
                "synth",
                "--name",
                "t",
                "--users",
                "400",
                "--sessions-tail",
                "0.7",
                "--switch-tail",
                "1.6",
                "--K",
                "3",
                "--Q",
                "4",
                "--p-return",
                "0.5",
                "--data-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["data", "info", "t", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "splits (episodes at K=3, Q=4)" in out and "users dropped" in out and "prefix length" in out
    assert open_dataset("t", tmp_path).manifest["source"]["parameters"]["p_return"] == 0.5
    assert main(["data", "info", "nope", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no dataset 'nope'" in err and "present: t" in err


def test_bad_synth_parameter_exits_2(tmp_path, capsys):
    assert main(["data", "synth", "--name", "x", "--p-return", "1.5", "--data-dir", str(tmp_path)]) == 2
    assert "probabilities" in capsys.readouterr().err
    assert not (tmp_path / "processed" / "x").exists()


def test_data_dir_defaults_to_env(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    assert main(["data", "synth", "--name", "e", "--users", "400", "--sessions-tail", "0.7", "--switch-tail", "1.6"]) == 0
    assert (tmp_path / "processed" / "e" / "dataset.json").is_file()
    assert open_dataset("e").root == tmp_path / "processed" / "e"
