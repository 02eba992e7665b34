"""Selecting what a report shows: one way to pick a grid's runs from a store, answer the grid's
declared questions on them, and find the diagnostics of their datasets. Every command and output
(terminal, export, figures, HTML, the Python API) selects through here."""

from __future__ import annotations

from pathlib import Path

from bench.analysis.questions import QuestionsTable, answer_questions
from bench.core.errors import BenchError
from bench.data import diagnostics
from bench.data.dataset import open_dataset
from bench.plan.grid import questions_for
from bench.store.results import Results, load_results

Shots = tuple[tuple[int, int], ...]  # (K, Q) pairs, as `--shots` gives them


def select_results(
    results_dir: str | Path, grid: str | None = None, dataset: str | None = None, any_code: bool = False, shots: Shots | None = None
) -> Results:
    """The complete runs of ``results_dir``, only ``dataset``'s and only those ``grid`` declares when
    given (relabelled with that grid's cell labels), every file checked; ``problems`` names each run they
    lack: damaged ones, and with ``grid`` its runs that failed or never ran. ``shots`` ((K, Q) pairs,
    `--shots`): only runs at those shots; with ``grid``, the grid's runs with its shots replaced by
    them, as `run --shots` makes them."""
    results = load_results(results_dir, dataset=dataset)
    if grid:
        return results.of_grid(grid, results_dir, any_code=any_code, dataset=dataset, shots=shots)
    if shots:
        results = results.only({r["hash"] for r in results.runs if (r["config"]["K"], r["config"]["Q"]) in set(shots)})
    return results


def grid_questions(results: Results, grid: str | None, metric: str, dataset: str | None = None) -> tuple[tuple[QuestionsTable, ...], str | None]:
    """(the grid's declared questions answered on ``results``, None), or ((), a one-line reason)."""
    if not grid:
        return (), "no --grid given: the declared questions are a grid's [[compare]] blocks"
    questions = questions_for(grid)
    if not questions:
        return (), f"grid {grid!r} declares no questions ([[compare]] blocks)"
    return tuple(answer_questions(results, questions, metric, dataset=dataset, grid=grid)), None


def dataset_header(tables, data_dir) -> list[tuple[str, ...]]:
    """Diagnostics lines of each table's dataset, when the same data version is in ``data_dir``
    (reports read the store; a dataset moved away or rebuilt simply has no header). Each line is a
    tuple of phrases (``bench.data.diagnostics.summary_items``): renderers wrap between them only."""
    lines: list[tuple[str, ...]] = []
    for name, version in dict.fromkeys((t.dataset, t.dataset_hash) for t in tables):
        try:
            dataset = open_dataset(name, data_dir)
        except BenchError:
            continue
        if dataset.content_hash != version or "diagnostics" not in dataset.manifest:
            continue
        lines += [(f"Dataset {name} (data {version[:8]}),", "model-free diagnostics:"), *diagnostics.summary_items(dataset.manifest)]
    return lines
