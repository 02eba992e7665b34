"""Every parameter checked before any work (declared types and ranges, grid file structure), and a
run that fails at run time reported in one line with its traceback in error.txt."""

from __future__ import annotations

import os

import pytest

from bench.commands.cli import main
from bench.core.errors import BenchError
from bench.core.params import Param
from bench.plan.grid import expand, load_grid, parse_sets

GRID = """
name = "check"
datasets = ["tiny"]
seeds = [0]
shots = [{ K = 3, Q = 4 }]
[params]
embed_dim = 8
hidden_dim = 8
max_epochs = 1
meta_iterations = 2
meta_batch = 2
val_every = 2
val_episodes = 4
inner_steps = 1
[[cells]]
method = "random"
[[cells]]
method = "maml"
init = "random"
"""


def _grid(tmp_path, text=GRID, name="check.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _run(run_data, grid, results, *extra):
    return main(["run", "--grid", str(grid), "--data-dir", str(run_data), "--results", str(results), "--quiet", *extra])


BAD_SETS = [
    ("inner_lr=abc", "inner_lr = 'abc' (from --set): must be a float > 0"),
    ("dropout=2", "dropout = 2 (from --set): must be a float in [0, 1)"),
    ("meta_batch=0", "meta_batch = 0 (from --set): must be an integer >= 1"),
    ("inner_steps=-1", "inner_steps = -1 (from --set): must be an integer >= 0"),
    ("engine=fast", "engine = 'fast' (from --set): must be one of per-task, batched, notebook"),
    ("select_init=yes", "select_init = 'yes' (from --set): must be true or false"),
    ("K=0", "K = 0 (from --set): must be an integer >= 1"),
]


@pytest.mark.parametrize("setting, message", BAD_SETS)
@pytest.mark.parametrize("dry_run", [False, True])
def test_each_bad_set_value_is_refused_in_one_line_before_any_run(run_data, tmp_path, capsys, setting, message, dry_run):
    results = tmp_path / "results"
    code = _run(run_data, _grid(tmp_path), results, "--set", setting, *(["--dry-run"] if dry_run else []))
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [f"error: {message}"]
    assert not results.exists()  # no run folder, not even the store


def test_every_bad_value_of_a_grid_is_named_with_its_source(run_data, tmp_path, capsys):
    text = GRID.replace("inner_steps = 1", "inner_steps = 1\ndropout = 1.5").replace(
        'init = "random"', 'init = "random"\nparams = { meta_batch = 0 }\nsweep = { inner_lr = [0.01, -1.0] }'
    )
    results = tmp_path / "results"
    assert _run(run_data, _grid(tmp_path, text), results, "--set", "engine=fast") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    where = str(tmp_path / "check.toml")
    assert sorted(lines) == sorted(
        [
            f"error: dropout = 1.5 (from {where} [params]): must be a float in [0, 1)",
            f"error: meta_batch = 0 (from {where} cell 2): must be an integer >= 1",
            f"error: inner_lr = -1.0 (from {where} cell 2 sweep): must be a float > 0",
            "error: engine = 'fast' (from --set): must be one of per-task, batched, notebook",
        ]
    )
    assert not results.exists()


@pytest.mark.parametrize(
    "edit, message",
    [
        (('method = "random"', 'method = "random"\ninits = "gru4rec"'), "cell 1: unknown key 'inits'"),
        (("K = 3", "K = 0"), "shots entry 1: K = 0 must be an integer >= 1"),
        (("Q = 4", "Q = -2"), "shots entry 1: Q = -2 must be an integer >= 1"),
        (("seeds = [0]", "seeds = []"), "seeds = [] must be a non-empty list of integers"),
        (('datasets = ["tiny"]', 'datasets = ["no-such-data"]'), "no dataset 'no-such-data'"),
    ],
)
def test_bad_grid_files_are_refused_in_one_line(run_data, tmp_path, capsys, edit, message):
    results = tmp_path / "results"
    assert _run(run_data, _grid(tmp_path, GRID.replace(*edit)), results, "--dry-run") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not results.exists()


def test_preset_grid_errors_name_the_grid_file(monkeypatch, tmp_path):
    import bench.plan.grid

    (tmp_path / "grids").mkdir()
    (tmp_path / "grids" / "broken.toml").write_text(GRID.replace("K = 3", "K = 0"))
    monkeypatch.setattr(bench.plan.grid, "GRID_DIR", tmp_path / "grids")
    with pytest.raises(BenchError, match=r"^grids/broken.toml: shots entry 1"):
        load_grid("broken")


def test_values_parse_by_type_so_one_value_is_one_run():
    grid = load_grid("smoke")
    a = expand(grid, {"d": "h"}, overrides=parse_sets(["outer_lr=1e-3", "grad_clip=10"]))
    b = expand(grid, {"d": "h"}, overrides=parse_sets(["outer_lr=0.001", "grad_clip=10.0"]))
    assert [r.hash for r in a] == [r.hash for r in b]
    maml = next(r for r in a if r.method == "maml").params_dict
    assert maml["grad_clip"] == 10.0 and isinstance(maml["grad_clip"], float)
    assert isinstance(maml["meta_iterations"], int)
    # and a different value is another run
    c = expand(grid, {"d": "h"}, overrides=parse_sets(["outer_lr=0.002"]))
    assert {r.hash for r in c if r.method == "maml"}.isdisjoint(r.hash for r in a)


def test_declared_params_describe_what_they_allow():
    assert Param.float(ge=0, lt=1).allowed() == "a float in [0, 1)"
    assert Param.int(ge=0, optional=True).parse(None) is None and Param.int(ge=0, optional=True).parse("none") is None
    assert Param.int(ge=1).parse(1e3) == 1000 and isinstance(Param.int(ge=1).parse(1e3), int)
    for param, bad in [(Param.int(ge=1), 2.5), (Param.int(ge=1), True), (Param.float(gt=0), float("inf")), (Param.path(), "/no/such/path")]:
        with pytest.raises(ValueError, match="must be"):
            param.parse(bad)


def test_a_run_that_fails_at_run_time_is_one_summary_line_and_an_error_file(run_data, tmp_path, capsys, monkeypatch):
    from bench.methods.registry import METHODS, ZERO_SHOT, MethodSpec

    class Exploding:
        modes = (ZERO_SHOT,)

        def __init__(self, ctx):
            pass

        def fit(self, ctx):
            raise ValueError("boom: a deliberate failure")

    spec = MethodSpec(name="explode", factory=lambda spec, ctx: Exploding(ctx), modes=(ZERO_SHOT,), defaults={}, description="fails")
    monkeypatch.setitem(METHODS, "explode", spec)
    text = GRID.split("[params]")[0] + '[[cells]]\nmethod = "random"\n[[cells]]\nmethod = "explode"\n'
    grid = _grid(tmp_path, text)
    results = tmp_path / "results"
    assert _run(run_data, grid, results) == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if " failed: " in line]
    assert len(failed) == 1
    run_hash = failed[0].split()[1]
    error_file = results / "runs" / run_hash / "error.txt"
    assert failed[0] == f"run {run_hash} (explode, seed 0) failed: ValueError: boom: a deliberate failure; details in {error_file}"
    assert "Traceback" in error_file.read_text() and "boom" in error_file.read_text()
    assert "Traceback" not in out  # the traceback is in the file only
    from bench.store.results import load_results

    assert [r["cell"] for r in load_results(results).runs] == ["random"]  # the grid went on


def test_bench_threads_must_be_a_count_and_empty_means_unset(monkeypatch, capsys):
    monkeypatch.setenv("BENCH_THREADS", "two")
    assert main(["run", "--grid", "no-such-grid"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: BENCH_THREADS='two' is not a thread count (set it to a whole number such as 1 (0: the default), or unset it)"
    )
    monkeypatch.setenv("BENCH_THREADS", "")
    assert main(["run", "--grid", "no-such-grid"]) == 2  # past the check: the grid is what is refused
    assert "unknown grid 'no-such-grid'" in capsys.readouterr().err
    assert "BENCH_THREADS" not in os.environ
