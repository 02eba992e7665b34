"""What tuning changes: each declared question's answer on the untuned grid beside its answer on the
tuned grid (``run --tuned``), paired by (dataset, data version, K, Q, question). Pure: it reads
bench.analysis.questions.QuestionsTable objects, computes no new statistic."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TuningChange:
    question: str
    dataset: str
    K: int
    Q: int
    untuned_diff: float
    untuned_p_holm: float
    untuned_verdict: str
    tuned_diff: float | None  # None: the tuned grid has no answer for it (runs missing)
    tuned_p_holm: float | None
    tuned_verdict: str

    @property
    def sign_flipped(self) -> bool:
        return self.tuned_diff is not None and self.untuned_diff * self.tuned_diff < 0


def tuning_changes(untuned, tuned, alpha: float = 0.05) -> list[TuningChange]:
    """One row per question of the ``untuned`` tables; the matching ``tuned`` answer beside it."""
    found = {}
    for table in tuned:
        for row in table.rows:
            found[(table.dataset, table.dataset_hash, table.K, table.Q, row.question.question)] = row
    rows = []
    for table in untuned:
        for row in table.rows:
            other = found.get((table.dataset, table.dataset_hash, table.K, table.Q, row.question.question))
            ok = other is not None and other.status == "ok"
            rows.append(
                TuningChange(
                    row.question.question,
                    table.dataset,
                    table.K,
                    table.Q,
                    row.diff,
                    row.p_holm,
                    row.verdict,
                    other.diff if ok else None,
                    other.p_holm if ok else None,
                    other.verdict if ok else "no tuned answer",
                )
            )
    return rows
