"""Declared questions: the paired comparisons a grid asks (its ``[[compare]]`` blocks).

A grid fixes its family of questions here; :mod:`bench.analysis.questions` answers them (Holm
over exactly that family, never over whatever happens to be in the store).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import BenchError
from bench.core.metrics import SLICES


@dataclass(frozen=True)
class Question:
    """One declared comparison: A minus B on the same test episodes."""

    question: str  # plain words, e.g. "Does a warm start help MAML?"
    a: str  # "CELL:MODE", e.g. "maml[gru4rec]:few-shot"
    b: str  # "CELL:MODE", e.g. "maml[random]:few-shot"
    slice: str = "all"  # the queries it is asked on (bench.core.metrics.SLICES): all, repeat or explore

    @property
    def sides(self) -> str:
        """ "A − B", with the slice in brackets when it is not "all" (e.g. "a − b [explore]")."""
        return f"{self.a} − {self.b}" + (f" [{self.slice}]" if self.slice != "all" else "")


COMPARE_KEYS = ("question", "a", "b")
OPTIONAL_KEYS = ("slice",)


def parse_compare(blocks: list, produced: set[str], path) -> tuple[Question, ...]:
    """The grid's ``[[compare]]`` blocks as Questions; an unknown key, a missing key, a side the grid
    cannot produce (``produced``: every "CELL:MODE" its runs make) or a repeated question is refused."""
    if not blocks:
        return ()
    questions: list[Question] = []
    for i, block in enumerate(blocks, 1):
        where = f"grid file {path}, [[compare]] #{i}"
        if not isinstance(block, dict):
            raise BenchError(f"{where} is not a table", 'write question = "...", a = "CELL:MODE", b = "CELL:MODE"')
        unknown = sorted(set(block) - set(COMPARE_KEYS) - set(OPTIONAL_KEYS))
        missing = [k for k in COMPARE_KEYS if k not in block]
        if unknown or missing:
            problem = f"unknown key(s) {', '.join(map(repr, unknown))}" if unknown else f"lacks {', '.join(map(repr, missing))}"
            raise BenchError(
                f"{where} {problem}", f"a [[compare]] block has the keys {', '.join(COMPARE_KEYS)} and optionally {', '.join(OPTIONAL_KEYS)}"
            )
        if block.get("slice", "all") not in SLICES:
            raise BenchError(f"{where}: unknown slice {block['slice']!r}", f"write slice = one of {', '.join(map(repr, SLICES))}")
        question = Question(*(str(block[k]) for k in COMPARE_KEYS), slice=str(block.get("slice", "all")))
        for side in (question.a, question.b):
            if side not in produced:
                raise BenchError(f"{where}: the grid makes no {side!r}", f"choose CELL:MODE among {', '.join(sorted(produced))}")
        if question.a == question.b:
            raise BenchError(f"{where} compares {question.a!r} with itself", "choose two different CELL:MODE")
        if any((q.a, q.b, q.slice) == (question.a, question.b, question.slice) for q in questions):
            raise BenchError(f"{where} repeats {question.sides}", "declare each comparison once (per slice)")
        questions.append(question)
    return tuple(questions)
