"""`python -m bench tune` on the tiny grid: val only, the same N per cell, resume without recomputing,
`run --tuned` changes run identities, methods without a search space skipped with a notice."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.commands.cli import main
from bench.core.params import Space
from bench.methods.registry import METHODS, PARAMS
from bench.plan.grid import expand, load_grid
from bench.run import tune
from tests.helpers import TUNED_CELLS, count_computed, run_tune, tuning_studies

REPO = Path(__file__).resolve().parent.parent


def test_search_spaces_agree_with_the_declared_params():
    for method, spec in METHODS.items():
        assert bool(spec.space) != bool(spec.not_tuned), f"{method}: a search space, or why it has none"
        for key, sp in spec.space.items():
            assert key in spec.defaults, (method, key)
            values = list(sp.choices) if sp.kind == "choice" else [sp.low, sp.high]
            for value in values:
                PARAMS[key].parse(int(value) if sp.kind == "int" else value)  # raises if out of the declared range
            assert isinstance(sp, Space)
        for budget in ("max_epochs", "meta_iterations"):  # budgets are never tuned
            assert budget not in spec.space, (method, budget)


def test_eval_split_joins_the_identity_only_for_trials(run_data, tune_grid_file):
    grid = load_grid(str(tune_grid_file))
    run = expand(grid, {"tiny": "h"})[0]
    assert "eval_split" not in run.identity()  # every existing run hash unchanged
    trial = dataclasses.replace(run, eval_split="val")
    assert trial.identity()["eval_split"] == "val" and trial.hash != run.hash


def test_tune_reads_val_only_same_n_per_cell_and_resumes_without_recomputing(run_data, tune_grid_file, tmp_path, monkeypatch, capsys):
    from bench.data.dataset import Dataset

    splits = []
    episodes = Dataset.episodes

    def recording(self, split, *args, **kwargs):
        splits.append(split)
        return episodes(self, split, *args, **kwargs)

    monkeypatch.setattr(Dataset, "episodes", recording)
    computed = count_computed(monkeypatch)

    results = tmp_path / "results"
    assert run_tune(run_data, tune_grid_file, results, 2) == 0
    out = capsys.readouterr().out
    assert "not tuned: random (no parameter)" in out and "not tuned: popularity (no parameter)" in out
    assert "val" in splits and "test" not in splits  # no trial, no check, ever opens a test episode
    studies = tuning_studies(results)
    assert set(studies) == TUNED_CELLS
    assert all([state for state, _, _ in trials] == ["COMPLETE"] * 2 for trials in studies.values())  # the same N per cell
    assert len(computed) == 6
    assert not (results / "runs").exists()  # trials live in results/tuning, apart from the test runs
    for run_json in (results / "tuning" / "runs").glob("*/run.json"):
        record = json.loads(run_json.read_text())
        assert record["config"]["eval_split"] == "val" and record["eval_split"] == "val"

    # resume with a larger N: the first 2 trials of each cell are not recomputed
    computed.clear()
    assert run_tune(run_data, tune_grid_file, results, 3) == 0
    assert "test" not in splits
    assert len(computed) <= 3  # one new trial per cell (fewer if TPE repeats a stored config: read, not run)
    resumed = tuning_studies(results)
    assert all(len(trials) == 3 and all(s == "COMPLETE" for s, _, _ in trials) for trials in resumed.values())
    for cell, trials in resumed.items():
        assert trials[:2] == studies[cell]
    # the same study as an uninterrupted one (the sampler is reseeded from the trials so far)
    fresh = tmp_path / "fresh"
    assert run_tune(run_data, tune_grid_file, fresh, 3) == 0
    assert tuning_studies(fresh) == resumed

    # the journals alone (as results/reference/tuning/ commits them): the training spent is unknown, shown "-", not 0
    import shutil

    from bench.output.tuning import tuning_markdown
    from bench.run.studies import grid_study_summaries

    grid_name = load_grid(str(tune_grid_file)).name
    journals = tmp_path / "journals"
    shutil.copytree(results / "tuning" / grid_name, journals / "tuning" / grid_name)
    with_runs = {s.cell: s for s in grid_study_summaries(grid_name, results)}
    alone = {s.cell: s for s in grid_study_summaries(grid_name, journals)}
    assert set(alone) == set(with_runs) and all(s.missing_runs == 0 and s.seconds > 0 for s in with_runs.values())
    assert all(s.missing_runs == 3 and (s.best_val, s.complete) == (with_runs[c].best_val, with_runs[c].complete) for c, s in alone.items())

    def rows(summaries):
        return [line.split(" | ") for line in tuning_markdown(summaries).splitlines() if line.startswith("| ") and "data K/Q" not in line]

    assert rows(list(alone.values())) and all(row[8] == row[9] == row[11] == "-" for row in rows(list(alone.values())))  # trained, pairs, seconds
    assert all(row[11] != "-" for row in rows(list(with_runs.values())))


def test_trial_zero_is_the_grid_settings_and_tuned_runs_have_other_hashes(run_data, tune_grid_file, tmp_path, monkeypatch, capsys):
    grid = load_grid(str(tune_grid_file))
    from bench.data.dataset import open_dataset

    data_hash = open_dataset("tiny", str(run_data)).content_hash
    untuned = expand(grid, {"tiny": data_hash}, [0])
    untuned_trials = {dataclasses.replace(r, eval_split="val").hash for r in untuned}
    # a score that makes every non-default trial beat the grid's settings (the real tiny scores tie at 0)
    monkeypatch.setattr(tune, "val_score", lambda store, run_hash, mode: 0.0 if run_hash in untuned_trials else 1.0)
    results = tmp_path / "results"
    base = ["run", "--grid", str(tune_grid_file), "--data-dir", str(run_data), "--results", str(results), "--dry-run"]
    assert main(base + ["--tuned"]) == 2  # no study yet: refused in one line
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "no finished tuning study" in err

    assert run_tune(run_data, tune_grid_file, results, 2) == 0
    studies = tuning_studies(results)
    for trials in studies.values():
        assert trials[0][2] == 0.0 and trials[1][2] == 1.0  # trial 0 ran the grid's own settings
    capsys.readouterr()
    assert main(base) == 0
    plain = _dry_hashes(capsys.readouterr().out)
    assert main(base + ["--tuned"]) == 0
    tuned = _dry_hashes(capsys.readouterr().out)
    assert plain["random"] == tuned["random"] and plain["popularity"] == tuned["popularity"]
    for cell in TUNED_CELLS:
        assert plain[cell] != tuned[cell]
    assert main(base + ["--tuned", "--set", "inner_lr=0.5"]) == 2  # a tuned value overridden: refused
    assert "--set inner_lr with --tuned" in capsys.readouterr().err
    # the warm start's GRU4Rec takes the tuned gru4rec's best lr and dropout, into its init entries only
    best = {cell: trials[1][1] for cell, trials in studies.items()}
    for key in ("lr", "dropout"):
        assert best["maml[gru4rec]"]["init_" + key] == best["gru4rec"][key]
    assert best["maml[gru4rec]"]["dropout"] == 0.2  # meta-training's dropout stays its own (the grid's)
    # the untuned and tuned grids run (on test, in results/); report --grid shows the tuning summary and
    # each declared question untuned vs tuned
    report = ["report", "--grid", str(tune_grid_file), "--results", str(results), "--data-dir", str(run_data)]
    assert main(base[:-1] + ["--quiet"]) == 0
    capsys.readouterr()
    assert main(report) == 0
    shown = capsys.readouterr().out
    assert "Tuning on val" in shown and "| maml[gru4rec] |" in shown and "2/2" in shown
    assert "what tuning changes: not shown (no tuned runs yet" in shown
    assert main(base[:-1] + ["--tuned", "--quiet"]) == 0
    capsys.readouterr()
    assert main(report) == 0
    shown = capsys.readouterr().out
    assert "What tuning changes" in shown and "| Does a warm start help MAML? | tiny 3/4 |" in shown
    assert "Not in this table" not in shown
    # the grid's cells also run on a dataset it was never tuned on (as `scenarios` puts default's cells on
    # other datasets): the table still shows the tuned dataset, and names the other as left out
    import shutil

    from bench.data.synth import make_synthetic_dataset

    both = tmp_path / "both"
    shutil.copytree(run_data, both)
    make_synthetic_dataset(both, name="tiny2", users=300, seed=1)
    assert main(["run", "--grid", str(tune_grid_file), "--data-dir", str(both), "--results", str(results), "--dataset", "tiny2", "--quiet"]) == 0
    capsys.readouterr()
    assert main(report[:-1] + [str(both)]) == 0
    shown = capsys.readouterr().out
    changes = shown[shown.index("What tuning changes") :]
    assert "Dataset tiny2" in shown[: shown.index("What tuning changes")]  # the report itself has both datasets
    assert "| tiny 3/4 |" in changes and "| tiny2 3/4 |" not in changes
    assert "Not in this table (grid not tuned on them): tiny2." in changes


def _dry_hashes(out: str) -> dict:
    hashes = {}
    for line in out.splitlines():
        if line.endswith(")") and "seed=" in line:
            parts = line.split("  ")
            hashes[parts[4]] = parts[0]
    return hashes


def _complete(runs: Path) -> dict:
    """run.json bytes of every complete run, by hash (a run.json being replaced is skipped)."""
    out = {}
    for path in runs.glob("*/run.json"):
        try:
            data = path.read_bytes()
            if json.loads(data)["status"] == "complete":
                out[path.parent.name] = data
        except (OSError, ValueError):
            pass
    return out


def test_kill_dash_nine_mid_study_then_resume(run_data, tune_grid_file, tmp_path):
    """A real kill -9 while a study runs; the resumed study completes with N trials per cell, and
    the trials completed before the kill are not rerun (their run.json is untouched)."""
    results = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "tune",
        "--grid",
        str(tune_grid_file),
        "--data-dir",
        str(run_data),
        "--results",
        str(results),
        "--trials",
        "3",
    ]
    env = {**os.environ, "BENCH_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = results / "tuning" / "runs"
    deadline = time.time() + 120
    while time.time() < deadline and len(_complete(runs)) < 4:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _complete(runs)
    assert 4 <= len(before) < 9, "the kill should land mid-study"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    studies = tuning_studies(results)
    assert set(studies) == TUNED_CELLS
    assert all([s for s, _, _ in trials] == ["COMPLETE"] * 3 for trials in studies.values())
    for run_hash, data in before.items():
        assert (runs / run_hash / "run.json").read_bytes() == data


def test_failed_trials_are_reported_not_counted_and_a_timed_out_study_is_not_finished(run_data, tune_grid_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_FAIL_CELL", "gru4rec")  # every gru4rec trial raises (bench.run.execute's fault injection)
    results = tmp_path / "results"
    assert run_tune(run_data, tune_grid_file, results, 2, "--timeout-per-cell", "0.01") == 1
    out = capsys.readouterr().out
    assert "tune gru4rec: trial 0 failed: RuntimeError: injected failure" in out
    assert "tune gru4rec: 2 trials failed; stopped at 0 of 2" in out
    assert "the gru4rec cell has no tuned best" in out
    assert "--timeout-per-cell 0.01 s reached after 1 of 2 trials" in out
    studies = tuning_studies(results)
    assert [s for s, _, _ in studies["gru4rec"]] == ["FAIL", "FAIL"]
    assert [s for s, _, _ in studies["maml[random]"]] == ["COMPLETE"]
    assert "| gru4rec | tiny 3/4 | zero-shot | 0/2 | 0 | 0 | 2 |" in out and "1/2 (timed out)" in out
    monkeypatch.delenv("BENCH_FAIL_CELL")
    base = ["run", "--grid", str(tune_grid_file), "--data-dir", str(run_data), "--results", str(results), "--dry-run", "--tuned"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "cell gru4rec of grid tinytune has no finished tuning study (0 of 2 trials" in err


def test_a_warm_start_takes_the_gru4rec_cell_trained_as_its_init_is():
    from bench.run.tune import warm_source

    assert warm_source("maml", "gru4rec") == "gru4rec"
    assert warm_source("maml", "gru4rec-episode-users") == "gru4rec train_users=episode-users"
    assert warm_source("sasrec-finetune", None) == "sasrec" and warm_source("maml", "random") is None
    # and the default grid's tuning finds that cell: the warm start takes its best lr and dropout (init entries)
    from bench.run.tune import tune_cells

    grid = load_grid("default")
    cells, _ = tune_cells(grid, expand(grid, dict.fromkeys(grid.datasets, "h"), [grid.seeds[0]]))
    warm = {c.base.cell: (c.warm_from, c.warm_keys) for c in cells}
    assert warm["maml[gru4rec-episode-users]"] == ("gru4rec train_users=episode-users", ("init_lr", "init_dropout"))
    assert warm["maml[gru4rec]"] == ("gru4rec", ("init_lr", "init_dropout")) and warm["maml[random]"] == (None, ())
    order = [c.base.cell for c in cells]
    assert order.index("gru4rec train_users=episode-users") < order.index("maml[gru4rec-episode-users]")


def test_tpe_leaves_its_start_up_at_the_requested_trials():
    from bench.run.studies import make_sampler, sampler_settings, startup_trials

    # trial 0 (the grid's settings, enqueued) counts toward the start-up: with N trials numbered 0..N-1,
    # TPE proposes those numbered from its start-up count on; at least two of them from N = 4 on
    for n in range(4, 201):
        assert 2 <= startup_trials(n) < n - 1, n
    assert startup_trials(8) == 2 and startup_trials(30) == 10 and startup_trials(300) == 10
    settings = sampler_settings(8)
    sampler = make_sampler(settings, seed=1)
    assert sampler._n_startup_trials == settings["n_startup_trials"] == 2 and sampler._multivariate is True


def test_trials_after_the_start_up_are_proposed_by_tpe_from_every_finished_trial(tune_grid_file, tmp_path, monkeypatch):
    """The sampler is made anew at each ask (reseeded); TPE still reads every finished trial from the
    study: its model (``_sample``) runs for every trial after the start-up and never before."""
    import optuna
    from optuna.samplers import TPESampler

    from bench.run.studies import open_study, sampler_settings

    grid = load_grid(str(tune_grid_file))
    cells, _ = tune.tune_cells(grid, expand(grid, {"tiny": "h"}, [0]))
    cell = next(c for c in cells if c.base.cell == "maml[random]")
    modelled = []
    sample = TPESampler._sample

    def spying(self, study, trial, search_space):
        finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        modelled.append((trial.number, len(finished), sorted(search_space)))
        return sample(self, study, trial, search_space)

    monkeypatch.setattr(TPESampler, "_sample", spying)
    n = 6
    settings = sampler_settings(n)
    study = open_study(tmp_path / "study.log", cell.key)
    tune.describe_study(study, cell, grid.name, n, None, {"name": "none"}, settings)
    for number in range(n):
        (pending,) = tune.ask(study, cell, grid.name, cell.base.params_dict, 1, settings)
        assert pending.number == number
        study.tell(number, 0.1 * ((number * 7) % 5))  # any objective: the test is who proposes
    assert settings["n_startup_trials"] == 2
    # one joint (multivariate) TPE proposal per trial after the start-up, built on all trials before it
    assert modelled == [(k, k, sorted(cell.space)) for k in range(2, n)]
    assert [t.user_attrs["sampled_by"] for t in study.trials] == ["grid", "random"] + ["tpe"] * (n - 2)
    assert study.user_attrs["sampler"] == settings
