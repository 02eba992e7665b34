"""CSV: the numbers unformatted, one column per quantity, for spreadsheets and plotting scripts."""

from __future__ import annotations

import dataclasses
import io

import pandas as pd

from bench.analysis.leaderboard import LeaderboardTable
from bench.analysis.questions import QuestionsTable


def to_frame(tables: list[LeaderboardTable]) -> pd.DataFrame:
    """All tables' rows in one DataFrame (numbers unformatted), with the sort metric and reference."""
    frames = []
    for table in tables:
        frame = table.rows.copy()
        frame.insert(2, "dataset_hash", table.dataset_hash)
        frame.insert(3, "slice", table.slice)  # the queries the means are over (repeat_mean, explore_mean: always those slices)
        frame["sort_metric"] = table.metric
        frame["reference"] = table.reference if table.has_reference else ""
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _text(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def to_csv(tables: list[LeaderboardTable]) -> str:
    """CSV with separate numeric columns per metric (``<metric>_mean``, ``_ci_low``, ``_ci_high``, ``_seed_std``)."""
    return _text(to_frame(tables))


def questions_to_frame(tables: list[QuestionsTable]) -> pd.DataFrame:
    """One row per (table, question): the QuestionResult fields, per-seed differences joined by ';'."""
    rows = []
    for table in tables:
        for result in table.rows:
            fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name != "question"}
            fields["per_seed_diffs"] = ";".join(repr(float(d)) for d in result.per_seed_diffs)
            rows.append(
                {
                    "grid": table.grid,
                    "dataset": table.dataset,
                    "dataset_hash": table.dataset_hash,
                    "K": table.K,
                    "Q": table.Q,
                    "question": result.question.question,
                    "a": result.question.a,
                    "b": result.question.b,
                    **fields,  # slice: the queries the question was answered on
                }
            )
    return pd.DataFrame(rows)


def questions_to_csv(tables: list[QuestionsTable]) -> str:
    return _text(questions_to_frame(tables))
