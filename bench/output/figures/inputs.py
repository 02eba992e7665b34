"""What the figures and the HTML page read: the store's complete runs and their curves, the
leaderboard tables, the answers to the grid's declared questions, and each dataset's dataset.json.
Nothing here trains or evaluates a model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.analysis.leaderboard import DEFAULT_METRIC, DEFAULT_REFERENCE, LeaderboardTable, leaderboard
from bench.analysis.select import grid_questions, select_results
from bench.core.errors import BenchError
from bench.data.dataset import open_dataset
from bench.store.results import Results, Store

CURVE_COLUMNS = ("run", "dataset", "dataset_hash", "K", "Q", "cell", "method", "seed", "best_iteration", "stopped_early", "iteration", "val_acc@1")


@dataclass(frozen=True)
class PlotInputs:
    results: Results  # the selected complete runs
    results_dir: Path
    tables: tuple[LeaderboardTable, ...]
    questions: tuple = ()  # bench.analysis.questions.QuestionsTable, one per (dataset, data version, K, Q)
    questions_notice: str | None = None  # why there are no questions, when there are none
    manifests: dict[str, dict] = field(default_factory=dict)  # dataset name -> its dataset.json
    metric: str = DEFAULT_METRIC
    grid: str | None = None

    @property
    def runs_by_hash(self) -> dict[str, dict]:
        return {run["hash"]: run for run in self.results.runs}


def read_manifests(names, data_dir: str | Path | None) -> dict[str, dict]:
    """dataset.json of each named dataset found under ``data_dir`` (a missing one is left out)."""
    manifests = {}
    for name in sorted(set(names)):
        try:
            manifests[name] = open_dataset(name, data_dir).manifest
        except BenchError:
            continue
    return manifests


def load_inputs(
    results_dir: str | Path,
    *,
    grid: str | None = None,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    metric: str = DEFAULT_METRIC,
    reference: str | None = DEFAULT_REFERENCE,
    tables: list[LeaderboardTable] | None = None,
    require_reference: bool = False,
    slice: str = "all",
) -> PlotInputs:
    """Everything a figure or the HTML page reads; ``tables``: the leaderboard already computed for this
    selection; ``slice``: the queries the tables and questions are on (bench.store.results.Results.sliced)."""
    results = select_results(results_dir, grid, dataset).sliced(slice)
    if tables is None:
        tables = leaderboard(results, reference=reference, metric=metric, dataset=dataset, require_reference=require_reference)
    questions, notice = grid_questions(results, grid, metric)
    manifests = read_manifests((run["config"]["dataset"] for run in results.runs), data_dir)
    return PlotInputs(results, Path(results_dir), tuple(tables), questions, notice, manifests, metric, grid)


def curves(inputs: PlotInputs) -> pd.DataFrame:
    """The meta-training validation curves (runs whose fit recorded the chosen ``best_iteration``),
    long form (``CURVE_COLUMNS``; ``stopped_early``: the iteration val_patience stopped the run at,
    None where its budget ended it); runs without a stored curve add nothing."""
    frames = []
    store = Store(inputs.results_dir, create=False)
    for run in inputs.results.runs:
        if "best_iteration" not in (run.get("fit") or {}):
            continue
        curve = store.read_curve(run["hash"])
        if curve.empty or "val_acc@1" not in curve.columns or "iteration" not in curve.columns:
            continue
        config = run["config"]
        frame = curve[["iteration", "val_acc@1"]].copy()
        frame["run"], frame["cell"] = run["hash"], run["cell"]
        for column in ("dataset", "dataset_hash", "K", "Q", "method", "seed"):
            frame[column] = config.get(column)
        fit = run.get("fit") or {}
        frame["best_iteration"] = fit.get("best_iteration")
        frame["stopped_early"] = fit.get("stopped_at") if fit.get("stopped") == "patience" else None  # val_patience's stop
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(CURVE_COLUMNS)]
