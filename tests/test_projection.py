"""`python -m bench project`: a grid's cost scaled from the measured runs of a cheaper grid."""

import dataclasses

import pandas as pd
import pytest

from bench.core.errors import BenchError
from bench.plan.grid import expand, load_grid
from bench.run.projection import project_grid, project_run, schedule
from bench.store.results import EPISODE_COLUMNS, Store


def _record(run, *, wall, train, evaluation, fit):
    return {
        "hash": run.hash,
        "config": {**run.identity(), "cell": run.cell},
        "wall_seconds": wall,
        "train_seconds": train,
        "eval_seconds": evaluation,
        "fit": fit,
    }


def _store_of(grid_name: str, root, skip: str | None = None) -> dict:
    """A store holding a fake complete record of each run of ``grid_name`` (but ``skip``'s method):
    meta-learned runs 2 s per iteration and 1 s per validation, GRU4Rec 10 s per epoch."""
    store, runs = Store(root), {}
    for run in expand(load_grid(grid_name), {"xuetangx-synth": "h"}):
        if run.method == skip:
            continue
        p = run.params_dict
        if "meta_iterations" in p:
            rows = 1 + p["meta_iterations"] // p["val_every"]
            fit = {"seconds_per_iteration": 2.0, "val_seconds": 1.0 * rows}
            record = _record(run, wall=2.0 * p["meta_iterations"] + rows + 3, train=2.0 * p["meta_iterations"] + rows, evaluation=3.0, fit=fit)
        elif run.method == "gru4rec":
            rows = p["max_epochs"]
            record = _record(run, wall=10.0 * rows + 1, train=10.0 * rows, evaluation=1.0, fit={})
        else:
            rows = 0
            record = _record(run, wall=7.0, train=5.0, evaluation=2.0, fit={})
        store.start_run(run.hash, record)
        store.finish_run(run.hash, record, pd.DataFrame({c: [] for c in EPISODE_COLUMNS}), pd.DataFrame({"iteration": range(rows)}))
        runs[run.hash] = run
    return runs


def test_schedule_is_longest_first_to_the_least_loaded():
    assert schedule([3, 5, 3, 4], 2) == 8  # 5 | 4, then 3 on 4 -> 7, then 3 on 5 -> 8
    assert schedule([3, 5, 3, 4], 1) == 15
    assert schedule([3, 5, 3, 4], 8) == 5  # the longest run is a floor


def test_meta_epoch_and_fixed_runs_scale_by_their_own_budget(tmp_path):
    target = tmp_path / "big.toml"
    target.write_text('extends = "smoke"\n[params]\nmeta_iterations = 40\nval_every = 10\nmax_epochs = 5\n')
    _store_of("smoke", tmp_path / "store")
    projected = {(r.cell, r.seed): r for r in project_grid(str(target), "smoke", str(tmp_path / "store"))}
    maml = projected[("maml[random]", 0)]
    assert maml.projected_s == pytest.approx(40 * 2.0 + (1 + 40 // 10) * 1.0 + 3.0)
    assert maml.measured_s == pytest.approx(2.0 * 4 + 3 + 3)
    gru = projected[("gru4rec", 0)]
    assert gru.projected_s == pytest.approx(5 * 10.0 + 1.0)  # smoke ran 1 epoch of 10 s; big allows 5
    assert projected[("random", 0)].projected_s == pytest.approx(7.0)  # no budget parameter: as measured
    assert len(projected) == len(expand(load_grid(str(target)), {"xuetangx-synth": "h"}))


def test_a_target_run_without_a_measured_counterpart_is_refused(tmp_path):
    _store_of("smoke", tmp_path / "store", skip="gru4rec")
    with pytest.raises(BenchError, match="1 run\\(s\\) of grid 'smoke' have no complete counterpart in grid 'smoke': gru4rec seed=0"):
        project_grid("smoke", "smoke", str(tmp_path / "store"))
    other_seed = tmp_path / "seed9.toml"  # same runs but the seed: not the same runs
    other_seed.write_text('extends = "smoke"\nseeds = [9]\n')
    _store_of("smoke", tmp_path / "full-store")
    with pytest.raises(BenchError, match="no complete counterpart"):
        project_grid(str(other_seed), "smoke", str(tmp_path / "full-store"))


def test_project_run_reads_the_source_runs_own_validation_count():
    run = next(r for r in expand(load_grid("smoke"), {"d": "h"}) if r.method == "maml")
    record = _record(run, wall=0.0, train=0.0, evaluation=0.5, fit={"seconds_per_iteration": 1.0, "val_seconds": 6.0})
    bigger = dataclasses.replace(run, params=tuple(sorted({**run.params_dict, "meta_iterations": 100, "val_every": 50}.items())))
    assert project_run(bigger, record, curve_rows=3).projected_s == pytest.approx(100 * 1.0 + 3 * (6.0 / 3) + 0.5)


def test_seeds_project_the_other_seeds_from_the_first_ones_runs(tmp_path):
    _store_of("smoke", tmp_path / "store")  # smoke runs seed 0 only
    three = tmp_path / "three.toml"
    three.write_text('extends = "smoke"\nseeds = [0, 1, 2]\n[params]\nmeta_iterations = 40\nval_every = 10\n')
    with pytest.raises(BenchError, match="no complete counterpart"):  # without --seeds, seeds 1 and 2 are missing
        project_grid(str(three), "smoke", str(tmp_path / "store"))
    projected = project_grid(str(three), "smoke", str(tmp_path / "store"), seeds=[0])
    by = {(r.cell, r.seed): r for r in projected}
    assert {seed for _, seed in by} == {0, 1, 2}
    assert by[("maml[random]", 2)].projected_s == by[("maml[random]", 0)].projected_s == pytest.approx(40 * 2.0 + 5 * 1.0 + 3.0)
    assert "seed 0's run" in by[("maml[random]", 1)].how and "seed 0's run" not in by[("maml[random]", 0)].how


@pytest.mark.parametrize("command", [["project", "--grid", "full", "--from", "full-short"], ["run", "--grid", "smoke", "--dry-run"]])
def test_bad_seeds_are_refused_in_one_line_by_run_and_project(command, tmp_path, capsys):
    from bench.commands.cli import main

    assert main([*command, "--seeds", "0,x", "--results", str(tmp_path / "r")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --seeds '0,x' is not a comma-separated list of integers (write e.g. --seeds 0,1,2)"]
    assert not (tmp_path / "r").exists()


def test_early_stopping_projects_from_measured_stop_points(tmp_path, capsys):
    """A target with val_patience 2 projected from runs without it: a run whose measured curve shows
    two validations without a new best within the target's budget stops there; the others run it all."""
    from bench.commands.cli import main

    source = tmp_path / "src.toml"
    source.write_text('extends = "smoke"\n[params]\nmeta_iterations = 60\nval_every = 10\n')
    target = tmp_path / "patient.toml"
    target.write_text('extends = "smoke"\n[params]\nmeta_iterations = 60\nval_every = 10\nval_patience = 2\n')
    store = Store(tmp_path / "store")
    peaked, rising = [0.1, 0.2, 0.3, 0.25, 0.2, 0.4, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]  # validations at 0, 10, ..., 60
    for run in expand(load_grid(str(source)), {"xuetangx-synth": "h"}):
        fit, curve = {}, pd.DataFrame({"iteration": range(1)})
        if run.method in ("maml", "anil", "metasgd"):
            accs = peaked if run.cell == "maml[random]" else rising
            fit = {"seconds_per_iteration": 2.0, "val_seconds": 7.0}
            curve = pd.DataFrame({"iteration": range(0, 70, 10), "val_acc@1": accs})
        record = _record(run, wall=130.0, train=127.0, evaluation=3.0, fit=fit)
        store.start_run(run.hash, record)
        store.finish_run(run.hash, record, pd.DataFrame({c: [] for c in EPISODE_COLUMNS}), curve)
    projected = {r.cell: r for r in project_grid(str(target), str(source), str(tmp_path / "store"))}
    stopped, full = projected["maml[random]"], projected["maml[gru4rec]"]
    assert stopped.projected_s == pytest.approx(40 * 2.0 + (1 + 4) * 1.0 + 3.0)  # best at 20, none better at 30 and 40
    assert stopped.stop == "projected from measured stop points" and "stops at 40 of 60" in stopped.how
    assert full.projected_s == pytest.approx(60 * 2.0 + 7 * 1.0 + 3.0) and full.stop == "no measured stop point: the full budget"
    assert projected["gru4rec"].stop is None and projected["random"].stop is None  # no meta-training: no early stopping
    without = {r.cell: r for r in project_grid(str(source), str(source), str(tmp_path / "store"))}
    assert without["maml[random]"].projected_s == pytest.approx(60 * 2.0 + 7 * 1.0 + 3.0) and without["maml[random]"].stop is None
    assert main(["project", "--grid", str(target), "--from", str(source), "--results", str(tmp_path / "store")]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    n_meta = sum(r.stop is not None for r in projected.values())
    assert f"early stopping (val_patience): 1 of {n_meta} runs projected from measured stop points" in printed


def test_patience_replay_counts_the_runs_a_patience_cuts_and_what_they_lose_on_val(tmp_path, capsys):
    """--patience replays each val_patience on the source runs' measured curves: a run whose curve later
    beats its best up to the stop is cut (lost = the difference); one that only declines is stopped, not
    cut; one still rising is not stopped; a curve that ends before the target's budget is unmeasured."""
    from bench.commands.cli import main
    from bench.run.projection import replay_patience, val_lost

    source = tmp_path / "src.toml"
    source.write_text('extends = "smoke"\n[params]\nmeta_iterations = 60\nval_every = 10\n')
    curves = {
        "maml[random]": [0.1, 0.2, 0.3, 0.25, 0.2, 0.4, 0.5],  # P=2 stops at 40 (best 0.3), later 0.5: cut, lost 0.2
        "anil[random]": [0.1, 0.3, 0.3, 0.2, 0.25, 0.2, 0.1],  # P=2 stops at 30 (a tie is no new best), never better: not cut
    }
    store = Store(tmp_path / "store")
    for run in expand(load_grid(str(source)), {"xuetangx-synth": "h"}):
        fit, curve = {}, pd.DataFrame({"iteration": range(1)})
        if run.method in ("maml", "anil", "metasgd"):
            accs = curves.get(run.cell, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])  # rising: never stopped
            fit = {"seconds_per_iteration": 2.0, "val_seconds": 7.0}
            curve = pd.DataFrame({"iteration": range(0, 70, 10), "val_acc@1": accs})
        record = _record(run, wall=130.0, train=127.0, evaluation=3.0, fit=fit)
        store.start_run(run.hash, record)
        store.finish_run(run.hash, record, pd.DataFrame({c: [] for c in EPISODE_COLUMNS}), curve)
    unset, two, five = replay_patience(str(source), str(source), [2, 5], str(tmp_path / "store"))
    meta = unset.meta_runs
    assert meta >= 3 and unset.patience is None and not unset.stopped and unset.trained == unset.budget == 60 * meta
    assert {(r.cell, r.stop_at) for r in two.stopped} == {("maml[random]", 40), ("anil[random]", 30)}
    assert [(r.cell, r.lost) for r in two.cut] == [("maml[random]", pytest.approx(0.2))] and two.unknown == 0
    assert two.trained == 60 * meta - 20 - 30 and sum(two.durations) < sum(unset.durations)
    assert not five.stopped and five.trained == five.budget
    frame = pd.DataFrame({"iteration": range(0, 70, 10), "val_acc@1": curves["maml[random]"]})
    assert val_lost(frame, 40, 60) == pytest.approx(0.2) and val_lost(frame, 40, 100) is None  # the curve ends at 60 of 100
    high_start = frame.assign(**{"val_acc@1": [0.9, 0.2, 0.3, 0.25, 0.2, 0.4, 0.5]})
    assert val_lost(high_start, 40, 60) == pytest.approx(0.2)  # the start is no candidate without select_init
    assert val_lost(high_start, 40, 60, select_init=True) == 0  # with it, the start stays the best
    bigger = tmp_path / "bigger.toml"
    bigger.write_text('extends = "smoke"\n[params]\nmeta_iterations = 100\nval_every = 10\n')
    assert replay_patience(str(bigger), str(source), [2], str(tmp_path / "store"))[1].unknown == 2  # stopped within 60 of 100
    assert main(["project", "--grid", str(source), "--from", str(source), "--results", str(tmp_path / "store"), "--patience", "2,5"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "PATIENCE REPLAY" in printed and "val_patience 2 cuts: maml[random] seed 0 at 40 (-20.00)" in printed
    with pytest.raises(SystemExit):
        main(["project", "--grid", str(source), "--from", str(source), "--results", str(tmp_path / "store"), "--patience", "0"])
    assert "a patience is at least 1 validation" in capsys.readouterr().err
