"""What the figures and the HTML page read: the store's complete runs and their curves, the
leaderboard tables, the answers to the grid's declared questions, and each dataset's dataset.json.
Nothing here trains or evaluates a model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.report import DEFAULT_METRIC, DEFAULT_REFERENCE, LeaderboardTable, leaderboard
from bench.store import Results, load_results

CURVE_COLUMNS = ("run", "dataset", "dataset_hash", "K", "Q", "cell", "method", "seed", "best_iteration", "iteration", "val_acc@1")


@dataclass(frozen=True)
class PlotInputs:
    results: Results  # the selected complete runs
    results_dir: Path
    tables: tuple[LeaderboardTable, ...]
    questions: tuple = ()  # bench.questions.QuestionsTable, one per (dataset, data version, K, Q)
    questions_notice: str | None = None  # why there are no questions, when there are none
    manifests: dict[str, dict] = field(default_factory=dict)  # dataset name -> its dataset.json
    metric: str = DEFAULT_METRIC
    grid: str | None = None

    @property
    def runs_by_hash(self) -> dict[str, dict]:
        return {run["hash"]: run for run in self.results.runs}


def select_results(results_dir: str | Path, grid: str | None = None, dataset: str | None = None) -> Results:
    """The complete runs of ``results_dir``, only ``dataset``'s and only those ``grid`` declares when given."""
    results = load_results(results_dir, dataset=dataset)
    if grid:
        results = results.of_grid(grid, results_dir)
    return results


def declared_questions(results: Results, grid: str | None, metric: str) -> tuple[tuple, str | None]:
    """(QuestionsTables, None), or ((), a one-line reason) when there is nothing to answer."""
    if not grid:
        return (), "no --grid given: the declared questions are a grid's [[compare]] blocks"
    try:
        from bench.questions import answer_questions, questions_for
    except ImportError:  # the statistics work that answers them is not merged yet
        return (), "bench.questions cannot answer questions yet (answer_questions/questions_for missing)"
    questions = questions_for(grid)
    if not questions:
        return (), f"grid {grid!r} declares no questions ([[compare]] blocks)"
    return tuple(answer_questions(results, questions, metric, grid=grid)), None


def read_manifests(names, data_dir: str | Path | None) -> dict[str, dict]:
    """dataset.json of each named dataset found under ``data_dir`` (a missing one is left out)."""
    from bench.data import pipeline

    manifests = {}
    for name in sorted(set(names)):
        path = pipeline.processed_dir(data_dir) / name / pipeline.MANIFEST
        if path.is_file():
            manifests[name] = json.loads(path.read_text())
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
) -> PlotInputs:
    """Everything a figure or the HTML page reads; ``tables``: the leaderboard already computed for this selection."""
    results = select_results(results_dir, grid, dataset)
    if tables is None:
        tables = leaderboard(results, reference=reference, metric=metric, dataset=dataset, require_reference=require_reference)
    questions, notice = declared_questions(results, grid, metric)
    manifests = read_manifests((run["config"]["dataset"] for run in results.runs), data_dir)
    return PlotInputs(results, Path(results_dir), tuple(tables), questions, notice, manifests, metric, grid)


def curves(inputs: PlotInputs) -> pd.DataFrame:
    """The meta-training validation curves (runs whose fit recorded the chosen ``best_iteration``),
    long form (``CURVE_COLUMNS``); runs without a stored curve add nothing."""
    frames = []
    for run in inputs.results.runs:
        if "best_iteration" not in (run.get("fit") or {}):
            continue
        path = inputs.results_dir / "runs" / run["hash"] / "curve.parquet"
        curve = pd.read_parquet(path) if path.is_file() else pd.DataFrame()
        if curve.empty or "val_acc@1" not in curve.columns or "iteration" not in curve.columns:
            continue
        config = run["config"]
        frame = curve[["iteration", "val_acc@1"]].copy()
        frame["run"], frame["cell"] = run["hash"], run["cell"]
        for column in ("dataset", "dataset_hash", "K", "Q", "method", "seed"):
            frame[column] = config.get(column)
        frame["best_iteration"] = (run.get("fit") or {}).get("best_iteration")
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(CURVE_COLUMNS)]
