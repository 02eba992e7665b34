"""Markdown pipe tables (GitHub style): every column, plain text that needs no terminal width."""

from __future__ import annotations

from bench.analysis.leaderboard import LeaderboardTable
from bench.analysis.questions import QuestionsTable
from bench.output import cells as C
from bench.output.cells import DAGGER


def _cell(cell: C.Cell) -> str:
    text = cell.text
    if cell.emphasis == "best":
        text = f"**{text}**"
    elif cell.emphasis == "second":
        text = f"<u>{text}</u>"
    if cell.dagger:
        text += DAGGER
    if cell.detail:
        text += f" {cell.detail}" if cell.numeric else f"<br>{cell.detail}"
    return text.replace("|", r"\|")


def _table(title: str, columns: list[C.Column], notes) -> list[str]:
    out = [f"### {title}", ""]
    out.append("| " + " | ".join(c.header.replace("|", r"\|") for c in columns) + " |")
    out.append("|" + "|".join("---:" if c.align == "r" else ":---" for c in columns) + "|")
    for cells in zip(*(c.cells for c in columns)):
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    out.append("")
    out += [f"_{note}_  " for note in notes]
    out.append("")
    return out


def header_to_markdown(lines) -> str:
    """The dataset header (lines of phrases, ``bench.analysis.select.dataset_header``), one line per
    line with a hard break, then a blank line; "" without lines."""
    return "".join(f"{' '.join(items)}  \n" for items in lines) + ("\n" if lines else "")


def to_markdown(tables: list[LeaderboardTable]) -> str:
    """Pipe tables, one per leaderboard, each with its notes below it."""
    return "\n".join(line for table in tables for line in _table(table.title, C.leaderboard_columns(table), table.notes))


def questions_to_markdown(tables: list[QuestionsTable]) -> str:
    """The Questions tables in the same form (empty text when there are none)."""
    return "\n".join(line for table in tables for line in _table(C.questions_title(table), C.question_columns(table), table.notes))


def notes_to_markdown(lines: list[str]) -> str:
    """The note naming each run the tables lack (bench.store.results.problem_note), as a block quote above them."""
    return "".join(f"> {line.replace('|', chr(92) + '|')}  \n" for line in lines) + ("\n" if lines else "")
