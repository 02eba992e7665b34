"""Result store atomicity/schema and grid expansion (no training here)."""

import json

import pandas as pd
import pytest

from bench.core.errors import BenchError, BenchErrors
from bench.core.metrics import METRICS
from bench.plan.grid import RunConfig, available_grids, expand, load_grid, parse_sets
from bench.store.results import SCHEMA, Store, load_results


def _episodes(n=3):
    frame = pd.DataFrame({"episode": range(n), "user_id": [f"u{i}" for i in range(n)], "mode": "zero-shot"})
    for i, metric in enumerate(METRICS):
        frame[metric] = 0.1 * (i + 1)
    return frame


def _record(run_hash, dataset="d"):
    return {"hash": run_hash, "cell": "gru4rec", "config": {"dataset": dataset, "method": "gru4rec", "init": None, "seed": 0, "K": 5, "Q": 10}}


def test_store_only_reports_complete_runs(tmp_path):
    store = Store(tmp_path / "r")
    store.start_run("aaa", _record("aaa"))
    assert not store.is_complete("aaa")
    store.start_run("bbb", _record("bbb"))
    store.finish_run("bbb", _record("bbb"), _episodes(), pd.DataFrame({"iteration": [1]}))
    assert store.is_complete("bbb") and not store.is_complete("aaa")
    results = load_results(tmp_path / "r")
    assert [r["hash"] for r in results.runs] == ["bbb"]
    assert len(results.episodes) == 3 and set(results.episodes["run"]) == {"bbb"}
    assert set(results.episodes["cell"]) == {"gru4rec"}


def test_restarting_a_run_clears_leftovers(tmp_path):
    store = Store(tmp_path / "r")
    store.start_run("aaa", _record("aaa"))
    (store.run_dir("aaa") / "episodes.parquet").write_bytes(b"half-written")
    store.start_run("aaa", _record("aaa"))
    assert sorted(p.name for p in store.run_dir("aaa").iterdir()) == ["run.json"]


def test_store_refuses_other_schema(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "store.json").write_text(json.dumps({"schema": SCHEMA + 1}))
    with pytest.raises(BenchError, match="schema"):
        Store(root)


def test_load_results_without_runs_is_a_clear_error(tmp_path):
    with pytest.raises(BenchError, match="no results"):
        load_results(tmp_path / "nothing")
    Store(tmp_path / "empty")
    with pytest.raises(BenchError, match="no complete runs"):
        load_results(tmp_path / "empty")


def test_presets_exist_and_load():
    assert {"smoke", "default", "full", "shots", "notebook"} <= set(available_grids())
    full = load_grid("full")
    assert full.seeds == (0, 1, 2) and full.shots == ((5, 10),)
    assert load_grid("shots").shots == ((1, 10), (3, 10), (5, 10), (10, 10))


def test_unknown_grid_lists_presets():
    with pytest.raises(BenchError, match="smoke"):
        load_grid("nope")


def test_full_grid_uses_the_seed_settings():
    runs = expand(load_grid("full"), {"xuetangx-synth": "h"})
    maml = [r for r in runs if r.method == "maml"]
    assert {r.init for r in maml} == {"random", "gru4rec", "gru4rec-frozen-embed", "gru4rec-episode-users", "gru4rec-repeat"}
    assert {r.seed for r in maml} == {0, 1, 2}
    params = maml[0].params_dict
    assert params["meta_iterations"] == 3000 and params["meta_batch"] == 32
    assert params["inner_lr"] == 0.01 and params["inner_steps"] == 5 and params["outer_lr"] == 1e-3
    gru = [r for r in runs if r.method == "gru4rec"][0].params_dict
    assert (gru["embed_dim"], gru["hidden_dim"], gru["dropout"], gru["lr"], gru["batch_size"], gru["max_epochs"]) == (64, 128, 0.2, 1e-3, 256, 10)


def test_full_short_is_full_at_defaults_budget_and_shares_defaults_runs():
    full, short, default = (expand(load_grid(name), {"xuetangx-synth": "h"}) for name in ("full", "full-short", "default"))

    def strip(r):
        return r.method, r.init, r.seed, tuple((k, v) for k, v in r.params if k not in ("meta_iterations", "val_every", "max_epochs"))

    assert sorted(map(strip, short)) == sorted(map(strip, full))  # every arm, init, sweep and seed of full
    budget = {(k, v) for r in short for k, v in r.params if k in ("meta_iterations", "val_every", "max_epochs")}
    assert budget == {("meta_iterations", 200), ("val_every", 50), ("max_epochs", 10)}  # the seed's epochs, early stopping
    assert {r.hash for r in default} <= {r.hash for r in short}  # seed 0 is default's runs, not re-run
    assert load_grid("full-short").compare == load_grid("full").compare


def test_extends_merges_params_and_replaces_what_the_file_declares(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('extends = "smoke"\nseeds = [7]\n[params]\nmeta_iterations = 3\n')
    base, mine = load_grid("smoke"), load_grid(str(path))
    assert mine.name == "mine" and mine.seeds == (7,) and mine.cells == base.cells and mine.shots == base.shots
    assert mine.params == {**base.params, "meta_iterations": 3}
    path.write_text('extends = "nope"\n')
    with pytest.raises(BenchError, match="extends = 'nope' names no preset grid"):
        load_grid(str(path))
    path.write_text('extends = "smoke"\nseeds = []\n')
    with pytest.raises(BenchErrors, match="seeds = \\[\\] must be a non-empty list"):
        load_grid(str(path))


def test_expand_hashes_are_stable_and_distinct():
    grid = load_grid("smoke")
    first = expand(grid, {"d": "h1"})
    again = expand(grid, {"d": "h1"})
    assert [r.hash for r in first] == [r.hash for r in again]
    assert len({r.hash for r in first}) == len(first)
    other_data = expand(grid, {"d": "h2"})
    assert not {r.hash for r in first} & {r.hash for r in other_data}


def test_set_overrides_and_refuses_unknown_keys():
    grid = load_grid("smoke")
    runs = expand(grid, {"d": "h"}, seeds=[3, 4], overrides=parse_sets(["meta_iterations=7", "K=3"]))
    maml = [r for r in runs if r.method == "maml"]
    assert all(r.params_dict["meta_iterations"] == 7 for r in maml)
    assert {r.K for r in runs} == {3} and {r.seed for r in runs} == {3, 4}
    with pytest.raises(BenchError, match="unknown parameter 'no_such_knob'"):
        expand(grid, {"d": "h"}, overrides={"no_such_knob": 1})


def test_set_values_parse_as_toml_scalars():
    assert parse_sets(["a=1", "b=0.5", "c=true", "d=batched"]) == {"a": 1, "b": 0.5, "c": True, "d": "batched"}
    with pytest.raises(BenchError):
        parse_sets(["novalue"])


def test_run_config_identity_excludes_label():
    a = RunConfig("d", "h", "maml", "random", 0, 5, 10, (("x", 1),), cell="one")
    b = RunConfig("d", "h", "maml", "random", 0, 5, 10, (("x", 1),), cell="two")
    assert a.hash == b.hash


def test_live_display_keeps_bracketed_cell_labels():
    # rich reads "[random]" as a markup tag; the progress lines must show the label as written
    from rich.console import Console

    from bench.commands.run import _markup

    for label in ("maml[random]", "maml[gru4rec-frozen-embed]"):
        console = Console(record=True, force_terminal=True, width=120)
        config = RunConfig("d", "h", "maml", "random", 0, 5, 10, (), cell=label)
        console.print(f"done {_markup(config)}: 1.0 s")
        assert f"done {label} seed=0 K=5: 1.0 s" in console.export_text()


def test_a_grid_shows_a_shared_run_under_its_own_label(tmp_path):
    """default's anil[gru4rec] is full-short's anil[gru4rec] outer_lr=0.001 (one hash): stored under
    default's label, it must join full-short's other seeds of that cell, not form a cell of its own."""
    shared = next(r for r in expand(load_grid("default"), {"xuetangx-synth": "h"}) if r.cell == "anil[gru4rec]")
    store = Store(tmp_path)
    record = {"hash": shared.hash, "cell": shared.cell, "config": shared.identity()}
    episodes = pd.DataFrame({"episode": [0], "user_id": [1], "mode": ["few-shot"], **{m: [0.5] for m in METRICS}})
    store.start_run(shared.hash, record)
    store.finish_run(shared.hash, record, episodes, pd.DataFrame({"iteration": [0]}))
    results = load_results(tmp_path)
    assert results.runs[0]["cell"] == "anil[gru4rec]"
    short = results.of_grid("full-short", tmp_path)
    assert [r["cell"] for r in short.runs] == ["anil[gru4rec] outer_lr=0.001"]
    assert set(short.episodes["cell"]) == {"anil[gru4rec] outer_lr=0.001"}
    assert results.of_grid("default", tmp_path).runs[0]["cell"] == "anil[gru4rec]"
    with pytest.raises(BenchError, match="no complete runs of grid 'smoke'"):
        results.of_grid("smoke", tmp_path)
