"""How much room LaTeX text takes, estimated before TeX runs: the layouts' geometry, Computer Modern glyph
widths, cell and caption sizes, and how a tall table is cut into floats (bench/output/latex.py uses them)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bench.output import cells as C


@dataclass(frozen=True)
class Layout:
    environment: str
    width: str  # the length the table must fit
    font: str
    tabcolsep: str
    name_limit: int  # cell names longer than this get a key explained in the caption
    question_width: str
    max_rows: int  # rows per float: a longer leaderboard continues in further floats, none taller than a page
    fit_pt: float  # the narrowest `width` the table is made to fit (pt): an article's, narrower than acmart's or IEEEtran's
    font_pt: float  # the size `font` stands for in a 10pt document


LAYOUTS = {
    # 229.5pt: \columnwidth of a two-column 10pt article; 345pt: \textwidth of a one-column one (table* spans it there)
    "column": Layout("table", r"\columnwidth", r"\footnotesize", "3pt", 16, r"\columnwidth", 12, 229.5, 8.0),
    "page": Layout("table*", r"\textwidth", r"\small", "4pt", 28, r"\textwidth", 12, 345.0, 9.0),
}
TEXT_HEIGHT_PT = 550.0  # an article's \textheight (one- and two-column)
FLOAT_HEIGHT_PT = 0.7 * TEXT_HEIGHT_PT  # LaTeX's \topfraction: a taller [t] float finds no place at the top of a page
BASELINE = {8.0: 9.5, 9.0: 11.0}  # \footnotesize / \small baselineskip (pt)
FIT_MARGIN_PT = 1.0  # what the width estimate keeps free, for the glyphs and kerns it does not model

# Glyph widths (pt) of Computer Modern at 10pt (pdflatex's default font), measured with \settowidth: enough to
# tell, before TeX runs, whether a table fits its width. An unknown character counts as wide as an "m".
_CM10 = {
    **dict.fromkeys("0123456789ago/*", 5.0),
    **dict.fromkeys("bdhnpqu", 5.56),
    **dict.fromkeys("kvxy", 5.28),
    **dict.fromkeys("ilj.,;:[]'!", 2.78),
    "c": 4.44,
    "e": 4.44,
    "z": 4.44,
    "f": 3.06,
    "m": 8.33,
    "r": 3.92,
    "s": 3.94,
    "t": 3.89,
    "w": 7.22,
    **dict.fromkeys("ABCDEGHKNOQRTUVXY", 7.78),
    **dict.fromkeys("FLPSZIJ", 6.81),
    "M": 9.17,
    "W": 10.28,
    " ": 3.33,
    "-": 3.33,
    "(": 3.89,
    ")": 3.89,
    "_": 3.6,
    "?": 4.72,
    "=": 7.78,
    "+": 7.78,
    "−": 7.78,
    "<": 7.78,
    ">": 7.78,
    "@": 7.78,
    "&": 7.78,
    "%": 8.33,
    "Δ": 8.33,
    "—": 10.0,
    "·": 2.78,
    "±": 7.78,
    "†": 4.44,
    "α": 6.4,
}
# CM's smaller optical sizes are wider per em than cmr10 scaled down (measured, rounded up); bold is wider still
_OPTICAL = {6.0: 1.22, 7.0: 1.15, 8.0: 1.07, 9.0: 1.04, 10.0: 1.0}
_BOLD = 1.16
SCRIPT_PT = 7.0  # \scriptsize, the CIs under the numbers
SUPERSCRIPT_PT = 6.0  # math superscripts under \footnotesize and \small


def text_width(text: str, size_pt: float, bold: bool = False) -> float:
    """Estimated natural width (pt) of plain ``text`` set in Computer Modern at ``size_pt`` (6-10pt)."""
    scale = size_pt / 10 * _OPTICAL.get(size_pt, 1.0) * (_BOLD if bold else 1.0)
    return scale * sum(_CM10.get(ch, _CM10["m"]) for ch in str(text))


def _cell_parts(cell: C.Cell, layout: Layout) -> tuple[float, float]:
    """Estimated widths of a rendered cell's text (bold when best, dagger after) and of its CI (0 without one)."""

    def signed(text: str) -> str:  # as _number sets them: a sign before a digit is a math minus or plus
        return re.sub(r"(?<![A-Za-z])-(?=\d)", "−", text) if cell.numeric else text

    main = text_width(signed(cell.text), layout.font_pt, bold=cell.emphasis == "best") + (3.0 if cell.dagger else 0.0)
    detail = text_width(signed(cell.detail.replace("+", "")), SCRIPT_PT) if cell.detail else 0.0
    return main, detail


def cell_width(cell: C.Cell, layout: Layout) -> float:
    """Estimated width of a rendered cell: its text, its CI stacked under it."""
    return max(_cell_parts(cell, layout))


def inline_width(cell: C.Cell, layout: Layout) -> float:
    """Estimated width of a cell set on one line: its text, then its CI beside it (the Questions table's numbers)."""
    main, detail = _cell_parts(cell, layout)
    return main + text_width(" ", layout.font_pt) + detail if cell.detail else main


def separators_width(layout: Layout, columns: int) -> float:
    """The inter-column space of a ``@{}...@{}`` tabular of ``columns`` columns (pt)."""
    return 2 * float(layout.tabcolsep.removesuffix("pt")) * (columns - 1)


def marks_width(marks: str, layout: Layout) -> float:
    """Estimated width of a name's superscript marks ("w=0.01,*"), math italics and spacing included."""
    return 2.0 + 1.05 * text_width(marks, SUPERSCRIPT_PT) if marks else 0.0


def line_count(latex_text: str, size_pt: float, width_pt: float, ragged: float = 1.15) -> int:
    """Estimated number of lines ``latex_text`` takes in a paragraph ``width_pt`` wide (commands dropped;
    ``ragged``: what line breaks waste)."""
    plain = re.sub(r"\\[A-Za-z]+\*?|[{}$^]", "", latex_text)
    return max(1, math.ceil(ragged * text_width(plain, size_pt) / width_pt))


def caption_height(caption: str, spec: Layout) -> float:
    """A float's caption: its lines plus "Table N:" and the skips around it (pt, estimated)."""
    return line_count("Table 99: " + caption, spec.font_pt, spec.fit_pt) * BASELINE[spec.font_pt] + 14.0


def pack_floats(heights: list[float], first: float, rest: float, most: int | None = None) -> list[list[int]]:
    """Item indices cut, in order, into floats whose estimated heights stay under FLOAT_HEIGHT_PT: ``first``
    and ``rest`` are the fixed heights (caption, heading row, rules) of the first and later floats."""
    parts: list[list[int]] = [[]]
    used = first
    for i, height in enumerate(heights):
        if parts[-1] and (used + height > FLOAT_HEIGHT_PT or (most is not None and len(parts[-1]) >= most)):
            parts.append([])
            used = rest
        parts[-1].append(i)
        used += height
    return parts
