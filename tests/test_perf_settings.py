"""`bench perf full` (the batched engine against batched-segmented on a dataset's episodes; the old form
`bench perf --settings full`), `bench perf baselines` and
`bench project --speedup-from` (a projection scaled by the batched/batched-v1 ratios of
results/reference/perf-full.json). Not timing tests."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bench.core.errors import BenchError
from bench.plan.grid import expand, load_grid
from bench.run.projection import load_speedup, project_run


def test_perf_full_settings_times_both_engines_on_the_dataset(tiny_dataset, tmp_path):
    from bench.commands.cli import main

    out = tmp_path / "perf.json"
    data_dir = str(tiny_dataset.root.parent.parent)
    argv = [
        "perf",
        "full",
        "--dataset",
        "tiny",
        "--data-dir",
        data_dir,
        "--thread-counts",
        "1",
        "--repeats",
        "1",
        "--train-iterations",
        "1",
        "--val-episodes",
        "4",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    full = json.loads(out.read_text())["full"]
    assert full["settings"]["hidden_dim"] == 128 and full["settings"]["meta_batch"] == 32 and full["val_episodes"] == 4
    assert set(full["engines"]) == {"batched", "batched-segmented"}
    assert full["kernel"] in ("fused C++ kernel", "SegmentedGRU (BENCH_FUSED_GRU=0)") and full["kernel_ratios"]["iteration"] > 0
    for row in full["engines"].values():
        assert row["seconds_per_iteration"] > 0 and row["seconds_per_validation"] > 0 and 0 < row["matmul_share"] < 2
    assert full["threads"]["1"]["kernel_ratios"]["iteration"] > 0
    with pytest.raises(BenchError, match="batched-v1"):  # no batched-v1 measured: no speed-up to project with
        load_speedup(out)
    assert main(argv[:-2] + ["--thread-counts", "x"]) == 2
    old = ["perf", "--settings", "full", *argv[2:-1], str(tmp_path / "old.json")]  # the old form
    assert main(old) == 0 and set(json.loads((tmp_path / "old.json").read_text())["full"]["engines"]) == set(full["engines"])
    assert main(old[:3] + ["--device", "cuda"] + old[3:]) == 2


def test_perf_baselines_writes_its_figures(tiny_dataset, tmp_path):
    """`bench perf baselines` (old name `perf-baselines`): fit and scoring per memory baseline, the
    two trained models' throughput, as JSON (not a timing test)."""
    from bench.commands.cli import main

    out = tmp_path / "baselines.json"
    data_dir = str(tiny_dataset.root.parent.parent)
    argv = [
        "perf",
        "baselines",
        "--dataset",
        "tiny",
        "--data-dir",
        data_dir,
        "--episodes",
        "3",
        "--methods",
        "markov",
        "--batches",
        "1",
        "--rounds",
        "1",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    figures = json.loads(out.read_text())
    assert [row["method"] for row in figures["methods"]] == ["markov"] and figures["methods"][0]["modes"]
    assert set(figures["training"]["models"]) == {"sasrec", "gru4rec", "gru4rec-fused"}  # torch's GRU and the kernel, side by side
    assert all(row["pairs_per_cpu_s"] > 0 for row in figures["training"]["models"].values())
    training = figures["training"]
    assert training["gru4rec_speedup"] == training["models"]["gru4rec-fused"]["pairs_per_cpu_s"] / training["models"]["gru4rec"]["pairs_per_cpu_s"]
    assert main(["perf-baselines", *argv[2:-4], "--batches", "0", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["training"] is None


def _record(run, engine: str, threads: int) -> dict:
    return {
        "config": {**run.identity(), "engine": engine},
        "threads": threads,
        "wall_seconds": 0.0,
        "eval_seconds": 0.5,
        "fit": {"seconds_per_iteration": 1.0, "val_seconds": 6.0},
    }


def test_projection_scales_the_batched_runs_by_the_measured_speedup(tmp_path):
    path = tmp_path / "perf.json"
    path.write_text(
        json.dumps(
            {
                "full": {
                    "thread_count": 1,
                    "threads": {"1": {"ratios": {"iteration": 2.0, "validation": 3.0}}, "2": {"ratios": {"iteration": 4.0, "validation": 1.5}}},
                }
            }
        )
    )
    speedup = load_speedup(path)
    run = next(r for r in expand(load_grid("smoke"), {"d": "h"}) if r.method == "maml")
    target = dataclasses.replace(run, params=tuple(sorted({**run.params_dict, "meta_iterations": 100, "val_every": 50}.items())))
    plain = project_run(target, _record(run, "batched", 1), curve_rows=3)
    assert plain.projected_s == pytest.approx(100 * 1.0 + 3 * 2.0 + 0.5)
    assert project_run(target, _record(run, "batched", 1), 3, speedup).projected_s == pytest.approx(100 / 2.0 + 3 * 2.0 / 3.0 + 0.5)
    assert project_run(target, _record(run, "batched", 2), 3, speedup).projected_s == pytest.approx(100 / 4.0 + 3 * 2.0 / 1.5 + 0.5)
    assert project_run(target, _record(run, "batched", 8), 3, speedup).projected_s == pytest.approx(
        100 / 2.0 + 3 * 2.0 / 3.0 + 0.5
    )  # the file's first
    assert "perf speed-up" in project_run(target, _record(run, "batched", 1), 3, speedup).how
    assert project_run(target, _record(run, "per-task", 1), 3, speedup).projected_s == pytest.approx(plain.projected_s)  # other engines as measured
    on_kernel = {**_record(run, "batched", 1), "gru_kernel": "fused C++ kernel"}  # today's engine already
    assert project_run(target, on_kernel, 3, speedup).projected_s == pytest.approx(plain.projected_s)
    path.write_text("{}")
    with pytest.raises(BenchError):
        load_speedup(path)


def test_projection_reads_the_reference_perf_file():
    """results/reference/perf-full.json keeps the batched/batched-v1 ratios batched-v1 left behind."""
    from pathlib import Path

    speedup = load_speedup(Path(__file__).parent.parent / "results" / "reference" / "perf-full.json")
    assert speedup["default"] == 1 and set(speedup["by_threads"]) == {1, 2}
    assert all(ratio["iteration"] > 1 and ratio["validation"] > 1 for ratio in speedup["by_threads"].values())


def test_measuring_returns_figures_and_leaves_the_printing_to_the_output_layer(capsys):
    """measure_engines prints nothing: it reports progress events and returns the figures, which
    bench/output/perf.py words (the table and the lines under it)."""
    from bench.output.perf import engines_lines, engines_round, engines_table
    from bench.run.perf.engines import EnginesSettings, measure_engines

    events = []
    settings = EnginesSettings(
        engines=["batched", "per-task"],
        arms=[],
        threads=1,
        items=30,
        embed_dim=8,
        hidden_dim=8,
        meta_batch=2,
        eval_episodes=3,
        repeats=1,
        train_iterations=1,
        inner_steps=1,
        rss_iterations=0,
    )
    figures = measure_engines(settings, lambda kind, data: events.append((kind, data)))
    assert capsys.readouterr().out == ""
    assert [kind for kind, _ in events] == ["start", "round", "round"] and events[0][1]["threads"] == 1
    assert "batched" in engines_round(events[1][1]) and engines_table(figures).row_count == 2
    assert set(figures["ratios"]) == {"batched/per-task", "per-task/batched"} and "rss_long_loop" not in figures
    assert any(line.startswith("speed-up batched/per-task") for line in engines_lines(figures))
