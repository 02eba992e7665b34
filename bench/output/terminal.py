"""The terminal tables (rich), fitted to the terminal's width without cutting a number.

Columns are kept in priority order (``cells.leaderboard_priority``) while the table fits: first
with each CI beside its number, then with the CI under it, then with long names wrapped. A line
under the table names the columns left out. Output that is not a terminal gets the markdown
tables instead, whose layout does not depend on a guessed width.
"""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bench.analysis.leaderboard import LeaderboardTable
from bench.analysis.questions import QuestionsTable
from bench.output import cells as C
from bench.output import markdown
from bench.output.cells import DAGGER

# (CI under its number, width long names wrap at); tried in order until the required columns fit
_LAYOUTS = ((False, None), (True, None), (True, 22), (True, 16), (True, 12), (True, 8))
_PROSE = {"question", "verdict"}  # wrapped at spaces; cell names wrap at [ - , and spaces
_PROSE_WIDTH = 34
_NAME_BREAKS = re.compile(r"(?<=[\[\-,: ])|(?=\[)")  # where a cell name may break: after [ - , : or a space
_REQUIRED = {"leaderboard": 7, "questions": 4}  # how many of the priority columns must be shown


@dataclass(frozen=True)
class Fitted:
    table: Table
    left_out: tuple[str, ...]  # headers of the columns not shown


def wrap_name(name: str, width: int | None) -> str:
    """A cell name on lines of at most ``width`` characters, broken after ``[``, ``-``, ``,``, ``:`` or a space, never cut."""
    if width is None or len(name) <= width:
        return name
    pieces = [p for p in _NAME_BREAKS.split(name) if p]
    lines, line = [], ""
    for piece in pieces:
        while len(piece) > width:  # a piece longer than the line: continue it on the next line
            if line:
                lines.append(line)
                line = ""
            lines.append(piece[:width])
            piece = piece[width:]
        if len(line) + len(piece) > width and line:
            lines.append(line.rstrip())
            line = ""
        line += piece
    if line:
        lines.append(line.rstrip())
    return "\n".join(lines)


def wrap_prose(text: str, width: int) -> str:
    """Prose on lines of at most ``width`` characters, packed greedily: broken at spaces, and inside a
    cell:mode label (a word holding ``[`` or ``:``) longer than the line also after ``[``, ``-``,
    ``,`` or ``:``; never cut inside a plain word (so "warm-start" stays whole)."""
    lines, line = [], ""
    for word in text.split():
        label_too_long = len(word) > width and ("[" in word or ":" in word)
        pieces = [p for p in _NAME_BREAKS.split(word) if p] if label_too_long else [word]
        for n, piece in enumerate(pieces):
            joined = line + (" " if n == 0 and line else "") + piece
            if line and len(joined) > width:
                lines.append(line)
                line = piece
            else:
                line = joined
    if line:
        lines.append(line)
    return "\n".join(wrap_name(line, width) for line in lines)  # a piece still longer than the line


def _wrap(key: str, text: str, width: int | None) -> str:
    """Names and prose wrap (prose always, at a readable measure); numbers and CIs never do."""
    if key in _PROSE and text:
        return wrap_prose(text, max(width or _PROSE_WIDTH, 12))
    if key != "cell" or width is None or not text:
        return text
    return wrap_name(text, width)


def _text(key: str, cell: C.Cell, stacked: bool, width: int | None) -> Text:
    style = {"best": "bold", "second": "underline"}.get(cell.emphasis or "", "")
    if cell.significant:
        style = f"bold {'green' if cell.sign >= 0 else 'red'}"
    text = Text(_wrap(key, cell.text, width), style=style)
    if cell.dagger:
        text.append(DAGGER, style=style)
    if cell.detail:
        detail = _wrap(key, cell.detail, width)
        text.append(("\n" if stacked or "\n" in detail or not cell.numeric else " ") + detail, style="dim")
    return text


def _header(column: C.Column, texts: list[Text]) -> str:
    """The header wrapped to its column's data width (a single long word stays whole)."""
    data = max((len(line) for t in texts for line in t.plain.split("\n")), default=1)
    return textwrap.fill(column.header, width=max(data, 8), break_long_words=False)


def _build(columns: list[C.Column], title: str, stacked: bool, width: int | None, row_styles=None) -> Table:
    out = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False, title_justify="left")
    rows = []
    for column in columns:
        texts = [_text(column.key, cell, stacked, width) for cell in column.cells]
        out.add_column(_header(column, texts), justify="right" if column.align == "r" else "left", no_wrap=True, overflow="fold")
        rows.append(texts)
    for i, cells in enumerate(zip(*rows)):
        out.add_row(*cells, style=(row_styles or {}).get(i))
    return out


def _width(console: Console, table: Table) -> int:
    """The table's natural width; measured unbounded, since rich clamps a measurement to the console."""
    return console.measure(table, options=console.options.update_width(100_000)).maximum


def fit(
    columns: list[C.Column],
    priority: list[str],
    required: int,
    title: str,
    console: Console,
    width: int | None = None,
    row_styles=None,
    wide: bool = False,
) -> Fitted:
    """The widest layout of ``columns`` that fits ``width`` (default: the console's), by ``priority``."""
    width = width or console.width
    by_key = {c.key: c for c in columns}
    order = [k for k in priority if k in by_key]
    if wide:
        return Fitted(_build(columns, title, False, None, row_styles), ())
    chosen: list[str] = order[:required]
    layout = _LAYOUTS[-1]
    for stacked, name_width in _LAYOUTS:
        if _width(console, _build([by_key[k] for k in order if k in chosen], title, stacked, name_width)) <= width:
            layout = (stacked, name_width)
            break
    else:  # not even the required columns fit: keep as many of them as do
        while len(chosen) > 1 and _width(console, _build([by_key[k] for k in order if k in chosen], title, *layout)) > width:
            chosen.pop()
    for key in order[required:]:
        trial = [*chosen, key]
        if _width(console, _build([by_key[k] for k in order if k in trial], title, *layout)) <= width:
            chosen = trial
    shown = [by_key[k] for k in [c.key for c in columns] if k in chosen]  # display order, not priority order
    left_out = tuple(by_key[k].header for k in order if k not in chosen)
    return Fitted(_build(shown, title, *layout, row_styles), left_out)


def _left_out_line(left_out: tuple[str, ...]) -> str:
    return (
        f"Not shown at this width: {', '.join(h.split(' (')[0] for h in left_out)}. "
        "See every column with --wide (or `export markdown`); --metric NAME puts another metric first."
    )


def leaderboard_renderable(table: LeaderboardTable, console: Console, width: int | None = None, wide: bool = False):
    """The leaderboard fitted to ``width``, with its left-out line and notes below it."""
    from rich.console import Group

    styles = {i: "italic" for i, ref in enumerate(table.rows["is_reference"]) if ref}
    fitted = fit(C.leaderboard_columns(table), C.leaderboard_priority(table), _REQUIRED["leaderboard"], table.title, console, width, styles, wide)
    parts = [fitted.table]
    if fitted.left_out:
        parts.append(Text(_left_out_line(fitted.left_out), style="yellow"))
    parts += [Text(note, style="dim") for note in table.notes]
    return Group(*parts), fitted


def questions_renderable(table: QuestionsTable, console: Console, width: int | None = None, wide: bool = False):
    from rich.console import Group

    fitted = fit(C.question_columns(table), list(C.QUESTION_PRIORITY), _REQUIRED["questions"], C.questions_title(table), console, width, wide=wide)
    parts = [fitted.table]
    if fitted.left_out:
        parts.append(Text(_left_out_line(fitted.left_out), style="yellow"))
    parts += [Text(note, style="dim") for note in table.notes]
    return Group(*parts), fitted


HEADER_INDENT = "  "  # continuation lines of a wrapped header line


def wrap_items(items: tuple[str, ...], width: int, indent: str = HEADER_INDENT) -> list[str]:
    """One header line's phrases packed greedily into lines of at most ``width`` characters, broken only
    between phrases (a phrase wider than a line alone is broken between its words, never inside one);
    continuation lines start with ``indent``."""
    lines: list[str] = []
    for item in items:
        room = width - (len(indent) if lines else 0)
        if lines and len(lines[-1]) + 1 + len(item) <= width:
            lines[-1] += " " + item
        elif len(item) <= room:
            lines.append((indent if lines else "") + item)
        else:
            first = indent if lines else ""
            parts = textwrap.wrap(item, max(width, 8), initial_indent=first, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
            lines += parts
    return lines


def print_header(console: Console, header) -> None:
    """The dataset header (lines of phrases) wrapped to the console's width between phrases, then a blank line."""
    for items in header:
        for line in wrap_items(tuple(items), console.width):
            console.print(line, markup=False, highlight=False, soft_wrap=True)  # already fitted: no rich re-wrap
    if header:
        console.print()


def print_report(
    tables: list[LeaderboardTable], console: Console | None = None, questions: list[QuestionsTable] = (), wide: bool = False, header=()
) -> None:
    """``header`` lines (dataset diagnostics, each a tuple of phrases), the Questions tables, then the
    leaderboards: fitted to a terminal, markdown when not a terminal."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # a pipe, a file, a CI log: plain markdown, no guessed width
            sys.stdout.write(markdown.header_to_markdown(header) + markdown.questions_to_markdown(list(questions)) + markdown.to_markdown(tables))
            return
    print_header(console, header)
    for qtable in questions:
        _print(console, *questions_renderable(qtable, console, wide=wide), wide)
    for table in tables:
        _print(console, *leaderboard_renderable(table, console, wide=wide), wide)


def _print(console: Console, renderable, fitted: Fitted, wide: bool) -> None:
    """--wide prints at the table's own width, even beyond the terminal's (which then wraps the lines)."""
    saved = console.width
    if wide:  # rich clamps print(width=...) to the console's width, so widen the console itself
        console.width = max(saved, _width(console, fitted.table))
    try:
        console.print(renderable)
        console.print()
    finally:
        console.width = saved
