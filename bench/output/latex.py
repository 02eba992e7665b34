"""LaTeX tables for a paper: booktabs only, sized for a column or a page without hand editing.

The default table has the columns a results table in a paper shows (cell, mode, the primary metric
with its CI, two secondary metrics, Δ with its CI and significance mark); ``columns`` or
``all_columns`` choose others. ``layout="column"`` fits ``\\columnwidth`` of a two-column paper,
``"page"`` is a ``table*`` across ``\\textwidth``. CIs sit under their numbers; the widths are
estimated in Computer Modern before TeX runs, so a cell name too wide for what the other columns leave
breaks once or is replaced by a short key explained in the caption; a table too tall for the top of a
page continues in further floats; nothing is scaled unless ``scale``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bench.analysis.leaderboard import LeaderboardTable
from bench.analysis.questions import QuestionsTable
from bench.core.errors import BenchError
from bench.core.labels import METRIC_LABELS, PERCENT_METRICS
from bench.core.metrics import METRICS
from bench.output import cells as C

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    # OT1 text fonts print "<", ">" and "|" as "¡", "¿" and an em dash (the notes' "p < 0.05", "|Δ|")
    "<": "$<$",
    ">": "$>$",
    "|": "$|$",
}
# every non-ASCII sign the analysis and cells text uses (pdflatex stops on an unmapped one: α/m is in the questions' notes)
_UNICODE = {
    "Δ": r"$\Delta$",
    "—": "---",
    "†": r"$^\dagger$",
    "·": r"$\cdot$",
    "±": r"$\pm$",
    "−": "$-$",
    "α": r"$\alpha$",
    "×": r"$\times$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
}

# secondary metrics of the paper table, in order of preference (the primary metric is skipped)
PAPER_SECONDARY = ("recall@10", "ndcg@10", "mrr", "recall@5", "acc@1")
SHORT_METRIC = {"acc@1": "Acc@1", "recall@5": "R@5", "recall@10": "R@10", "mrr": "MRR", "ndcg@10": "N@10"}


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


def _cell_width(cell: C.Cell, layout: Layout) -> float:
    """Estimated width of a rendered cell: its text (bold when best, dagger after), its CI stacked under it."""

    def signed(text: str) -> str:  # as _number sets them: a sign before a digit is a math minus or plus
        return re.sub(r"(?<![A-Za-z])-(?=\d)", "−", text) if cell.numeric else text

    main = text_width(signed(cell.text), layout.font_pt, bold=cell.emphasis == "best") + (3.0 if cell.dagger else 0.0)
    detail = text_width(signed(cell.detail.replace("+", "")), SCRIPT_PT) if cell.detail else 0.0
    return max(main, detail)


def _marks_width(marks: str, layout: Layout) -> float:
    """Estimated width of a name's superscript marks ("w=0.01,*"), math italics and spacing included."""
    return 2.0 + 1.05 * text_width(marks, SUPERSCRIPT_PT) if marks else 0.0


HEADER = [
    "% generated by `python -m bench export latex`",
    "% needs only \\usepackage{booktabs} (every TeX distribution has it; amssymb is not needed)",
]


def latex_escape(text: str) -> str:
    """Text safe in LaTeX: the ten special characters escaped, the few non-ASCII signs we use spelled out."""
    escaped = "".join(_SPECIAL.get(ch, ch) for ch in str(text))
    return "".join(_UNICODE.get(ch, ch) for ch in escaped)


def _number(text: str) -> str:
    # a text-mode hyphen is not a minus sign, and "<" is not a less-than sign in OT1 fonts
    return re.sub(r"(?<![A-Za-z])([-+])(?=\d)", r"$\1$", latex_escape(text))


def _cell(cell: C.Cell, stacked: bool) -> str:
    text = _number(cell.text) if cell.numeric else latex_escape(cell.text)
    if cell.emphasis == "best":
        text = rf"\textbf{{{text}}}"
    elif cell.emphasis == "second":
        text = rf"\underline{{{text}}}"
    if cell.dagger:
        text += r"$^\dagger$"
    if cell.detail:
        detail = rf"{{\scriptsize {_number(cell.detail.replace('+', ''))}}}"  # a CI's bounds need no plus sign: narrower
        text = rf"\begin{{tabular}}[t]{{@{{}}r@{{}}}}{text}\\ {detail}\end{{tabular}}" if stacked else f"{text} {detail}"
    return text


def _remarks(row) -> tuple[str, str]:
    """What a row says about itself, as plain text: its val-chosen support weight ("w=0.01"; "w=0": the
    zero-shot model) and "*" where its training was still improving at the end of its budget."""
    weight = row.get("support_weight")
    return ("" if C.missing(weight) else f"w={weight:g}"), ("*" if row.get("n_still_improving") else "")


def _name_lines(name: str, row, layout_name: str, budget: float) -> list[str] | None:
    """A cell name as the lines of LaTeX it is shown in, or None where it cannot be shown within ``budget``
    (pt, estimated). "*" is a superscript; the support weight is one too in the page layout, and in the
    column layout a line of its own under the name (as a CI under its number): the width a two-column
    paper lacks. A name too wide for one line breaks once, after its last space or hyphen or before its
    last "[" that leaves both lines within the budget."""
    spec = LAYOUTS[layout_name]
    weight, star = _remarks(row)
    under = weight if layout_name == "column" else ""
    sup = star if layout_name == "column" else ",".join(m for m in (weight, star) if m)
    sup_tex, sup_width = (rf"$^{{{sup}}}$", _marks_width(sup, spec)) if sup else ("", 0.0)

    def fits(text: str, extra: float = 0.0) -> bool:
        return text_width(text, spec.font_pt) + extra <= budget

    if under and text_width(under, SCRIPT_PT) > budget:
        return None
    below = [rf"{{\scriptsize {latex_escape(under)}}}"] if under else []
    if fits(name, sup_width):
        return [latex_escape(name) + sup_tex] + below
    for cut in sorted({m.end() for m in re.finditer(r"[ -]", name)} | {m.start() for m in re.finditer(r"\[", name)}, reverse=True):
        first, second = name[:cut].rstrip(), name[cut:]
        if first and second and fits(first) and fits(second, sup_width):
            return [latex_escape(first), latex_escape(second) + sup_tex] + below
    return None


def _stack(lines: list[str]) -> str:
    # "\\{}": a line starting with "[" ("[random]") is not read as \\'s optional skip
    return lines[0] if len(lines) == 1 else r"\begin{tabular}[t]{@{}l@{}}" + r"\\{}".join(lines) + r"\end{tabular}"


def _marks_legend(table: LeaderboardTable, layout_name: str = "column") -> str:
    rows = table.rows
    parts = []
    if "support_weight" in rows.columns and rows["support_weight"].notna().any():
        where = "$w$ under a name" if layout_name == "column" else "$^{w}$"
        parts.append(rf"{where}: the support weight chosen on val ($w=0$: the zero-shot model, no adaptation kept)")
    if "n_still_improving" in rows.columns and rows["n_still_improving"].fillna(0).astype(int).any():
        parts.append(r"$^{*}$: still improving at the end of its budget (best checkpoint at its last validation or epoch)")
    return ("; ".join(parts) + ".") if parts else ""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def paper_keys(table: LeaderboardTable) -> list[str]:
    """The default columns: cell, primary metric, two secondary metrics, Δ (when compared); the
    mode is a heading over its block of rows, which saves a column a two-column paper lacks."""
    secondary = [m for m in PAPER_SECONDARY if m != table.metric][:2]
    return ["cell", table.metric, *secondary, *(["delta"] if table.has_reference else [])]


def parse_columns(text: str) -> list[str]:
    """``--columns a,b,c`` -> keys, refused with the choices when one is unknown."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in C.LEADERBOARD_KEYS]
    if unknown or not keys:
        raise BenchError(f"unknown column(s) {', '.join(unknown) or '(none given)'} in --columns", f"choose from: {', '.join(C.LEADERBOARD_KEYS)}")
    return keys


def _lines(latex_text: str, size_pt: float, width_pt: float, ragged: float = 1.15) -> int:
    """Estimated number of lines ``latex_text`` takes in a paragraph ``width_pt`` wide (commands dropped;
    ``ragged``: what line breaks waste)."""
    plain = re.sub(r"\\[A-Za-z]+\*?|[{}$^]", "", latex_text)
    return max(1, math.ceil(ragged * text_width(plain, size_pt) / width_pt))


def _caption_height(caption: str, spec: Layout) -> float:
    """A float's caption: its lines plus "Table N:" and the skips around it (pt, estimated)."""
    return _lines("Table 99: " + caption, spec.font_pt, spec.fit_pt) * BASELINE[spec.font_pt] + 14.0


def _pack(heights: list[float], first: float, rest: float, most: int | None = None) -> list[list[int]]:
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


def _shown(column: C.Column, i: int, layout_name: str) -> C.Cell:
    """Row ``i`` of ``column`` as the table shows it (a cell name before its key replaces it)."""
    cell = column.cells[i]
    if column.key == "mode" and layout_name == "column":
        return C.Cell(cell.text.removesuffix("-shot"), numeric=False)
    return cell


def _name_budget(table: LeaderboardTable, chosen: list[C.Column], layout_name: str, metric: str) -> float:
    """The width (pt, estimated) left for the cell-name column once every other column is as wide as its
    widest entry or heading, so that the tabular fits the layout's narrowest width."""
    spec = LAYOUTS[layout_name]
    others = 0.0
    for column in chosen:
        if column.key == "cell":
            continue
        heading = text_width(_header(column, layout_name, metric).replace(r"$\Delta$", "Δ").replace("\\", ""), spec.font_pt)
        others += max([heading] + [_cell_width(_shown(column, i, layout_name), spec) for i in range(len(column.cells))])
    separators = 2 * float(spec.tabcolsep.removesuffix("pt")) * (len(chosen) - 1)
    return spec.fit_pt - FIT_MARGIN_PT - separators - others


def _abbreviations(tables: list[LeaderboardTable], budgets: list[float | None], layout_name: str) -> dict[str, str]:
    """Cell names -> C1, C2, ... (in order of first appearance) where a name is longer than the layout's
    ``name_limit`` or cannot be shown, with its remarks, in the width the other columns leave (``budgets``,
    per table; None: no cell column), estimated in Computer Modern: so every table fits its column."""
    spec = LAYOUTS[layout_name]
    names = []
    for table, budget in zip(tables, budgets):
        if budget is None:
            continue
        for i, name in enumerate(table.rows["cell"]):
            shown = _name_lines(str(name), table.rows.iloc[i], layout_name, budget)
            if (len(str(name)) > spec.name_limit or shown is None) and name not in names:
                names.append(str(name))
    ordered = [str(n) for table in tables for n in table.rows["cell"]]  # keys numbered in order of appearance
    names.sort(key=ordered.index)
    return {name: f"C{i}" for i, name in enumerate(names, 1)}


def _header(column: C.Column, layout_name: str, metric: str) -> str:
    if column.key in METRICS:
        return latex_escape(SHORT_METRIC[column.key] if layout_name == "column" else METRIC_LABELS[column.key])
    if column.key == "delta":
        return rf"$\Delta$ {latex_escape(SHORT_METRIC[metric] if layout_name == 'column' else METRIC_LABELS[metric])}"
    return latex_escape(column.header.split(" (")[0])


def _caption(
    table: LeaderboardTable, keys: list[str], abbreviations: dict[str, str], layout_name: str, questions: list[QuestionsTable]
) -> tuple[str, str]:
    """(what the table shows, the legend of its abbreviations); a caption given by the user keeps the legend."""
    rows = table.rows
    episodes = sorted(set(int(n) for n in rows["n_episodes"]))
    seeds = sorted(set(int(n) for n in rows["n_seeds"]))
    learners = sorted(
        {q.n_learners for qt in questions for q in qt.rows if q.status == "ok" and (qt.dataset, qt.K, qt.Q) == (table.dataset, table.K, table.Q)}
    )
    n = f"{episodes[0]:,}" if len(episodes) == 1 else f"{episodes[0]:,}--{episodes[-1]:,}"
    description = [
        rf"{latex_escape(table.dataset)}, $K={table.K}$ support and $Q={table.Q}$ query pairs per learner: means over $n={n}$ test episodes"
        + (f" ({learners[0]:,} learners)" if len(learners) == 1 else "")
        + rf", {'/'.join(map(str, seeds))} seed{'s' if seeds != [1] else ''} averaged per episode;"
        + rf" {latex_escape(f'{table.confidence:.0%}')} percentile bootstrap CIs over episodes ({table.n_resamples:,} resamples) under the means.",
    ]
    parts: list[str] = []
    metrics = [k for k in keys if k in METRICS]
    percent = [METRIC_LABELS[m] for m in metrics if m in PERCENT_METRICS]
    legend: list[str] = []
    if layout_name == "column" and any(SHORT_METRIC[m] != METRIC_LABELS[m] for m in metrics):
        legend.append("; ".join(f"{SHORT_METRIC[m]}: {latex_escape(METRIC_LABELS[m])}" for m in metrics if SHORT_METRIC[m] != METRIC_LABELS[m]) + ".")
    if percent:
        parts.append(rf"{', '.join(latex_escape(p) for p in percent)} in \%.")
    parts.append("Best in bold, second underlined.")
    if "delta" in keys and table.has_reference:
        parts.append(
            rf"$\Delta$: {latex_escape(METRIC_LABELS[table.metric])} minus the reference {latex_escape(table.reference)} on the same episodes, "
            r"bootstrap CI, descriptive (no test; the declared questions are tested in their own table)."
        )
    if "mode" not in keys:
        description.append("Rows are grouped by mode (zero-shot: support set unused; few-shot: adapted on the $K$ support pairs).")
    elif layout_name == "column":
        legend.append("Mode: zero = zero-shot, few = adapted on the $K$ support pairs.")
    if abbreviations:
        legend.append("; ".join(f"{key}: {latex_escape(name)}" for name, key in abbreviations.items()) + ".")
    if "cell" in keys and _marks_legend(table, layout_name):
        legend.append(_marks_legend(table, layout_name))
    return " ".join(description + parts), " ".join(legend)


def _begin(layout: Layout, caption: str, label: str | None) -> list[str]:
    out = [
        rf"\begin{{{layout.environment}}}[t]",
        r"\centering",
        layout.font,
        rf"\setlength{{\tabcolsep}}{{{layout.tabcolsep}}}",
        rf"\caption{{{caption}}}",
    ]
    return out + ([rf"\label{{{label}}}"] if label else [])


def to_latex(
    tables: list[LeaderboardTable],
    caption: str | None = None,
    label: str | None = None,
    *,
    columns: list[str] | None = None,
    all_columns: bool = False,
    layout: str = "column",
    scale: bool = False,
    questions: list[QuestionsTable] = (),
) -> str:
    """booktabs tables: the Questions tables first (each its own small table), then one per leaderboard.

    ``caption`` is LaTeX (passed through as given); names from the results are escaped. With
    several tables the caption gets the table's setting and the label a suffix ``:<dataset>-K<K>-Q<Q>``.
    """
    if layout not in LAYOUTS:
        raise BenchError(f"unknown layout {layout!r}", f"choose one of: {', '.join(LAYOUTS)}")
    spec = LAYOUTS[layout]
    header = list(HEADER) + ([r"% --scale: also needs \usepackage{graphicx} for \resizebox"] if scale else [])
    out = [*header, ""]
    out += questions_to_latex(list(questions), layout=layout, label=label, header=False)
    prepared = []  # (table, its chosen keys, their columns)
    for table in tables:
        by_key = {c.key: c for c in C.leaderboard_columns(table)}
        keys = list(by_key) if all_columns else [k for k in (columns or paper_keys(table)) if k in by_key]
        prepared.append((table, keys, [by_key[k] for k in keys]))
    budgets = [_name_budget(table, chosen, layout, table.metric) if "cell" in keys else None for table, keys, chosen in prepared]
    # where the other columns alone leave no room even for a key (--all-columns), no key would make the table
    # fit (--scale does): names are then keyed by length only, as before widths were estimated
    budgets = [b if b is None or b >= text_width("C00*", spec.font_pt) else math.inf for b in budgets]
    abbreviations = _abbreviations(tables, budgets, layout)
    for (table, keys, chosen), budget in zip(prepared, budgets):
        setting = rf"{latex_escape(table.dataset)}, $K={table.K}$, $Q={table.Q}$"
        description, legend = _caption(table, keys, abbreviations, layout, list(questions))
        text = description if caption is None else (caption if len(tables) == 1 else f"{caption} ({setting})")
        text = f"{text} {legend}".strip()
        suffix = "" if len(tables) == 1 else f":{_slug(f'{table.dataset}-K{table.K}-Q{table.Q}')}"
        align = "".join(c.align for c in chosen)
        head = [
            r"\begin{tabular}{@{}" + align + "@{}}",
            r"\toprule",
            " & ".join(_header(c, layout, table.metric) for c in chosen) + r" \\",
            r"\midrule",
        ]
        modes = list(dict.fromkeys(table.rows["mode"]))  # in order of each mode's best row
        blocks = (
            [(m, [i for i, row_mode in enumerate(table.rows["mode"]) if row_mode == m]) for m in modes]
            if "mode" not in keys
            else [(None, list(range(len(table.rows))))]
        )
        # (mode heading or None, row index) in print order, cut into floats of at most max_rows rows and at
        # most FLOAT_HEIGHT_PT each (a long caption, its legend of keys, leaves room for fewer rows)
        lines = [(mode if j == 0 else None, i, b > 0 and j == 0) for b, (mode, indices) in enumerate(blocks) for j, i in enumerate(indices)]
        names: dict[int, list[str]] = {}  # row -> the lines of its shown name (key or name, remarks)
        if budget is not None:
            for i, name in enumerate(table.rows["cell"]):
                shown, row = abbreviations.get(str(name), str(name)), table.rows.iloc[i]
                # a key too wide for the budget (nothing else left room) is still shown, on one line
                names[i] = _name_lines(shown, row, layout, budget) or _name_lines(shown, row, layout, math.inf)
        line = BASELINE[spec.font_pt]
        stacked = any(column.cells[i].detail for column in chosen for i in range(len(column.cells)))
        heights = [
            max(2 if stacked else 1, len(names.get(i, ()))) * line + (line if mode is not None else 0.0) + (4.0 if spaced else 0.0)
            for mode, i, spaced in lines
        ]
        fixed = 2 * line + 12.0  # the heading row, the rules, a continued mode's heading
        parts = [[lines[k] for k in part] for part in _pack(heights, _caption_height(text, spec) + fixed, 3 * line + 12.0 + fixed, spec.max_rows)]
        current_mode = None
        for p, part in enumerate(parts):
            if p == 0:
                out += _begin(spec, text, f"{label}{suffix}" if label else None)
            else:  # a continuation: the same columns, a short caption pointing back to the first part
                more = rf"\ref{{{label}{suffix}}}" if label else f"{latex_escape(table.dataset)}, $K={table.K}$, $Q={table.Q}$"
                out += _begin(spec, rf"Continued from Table~{more} (part {p + 1} of {len(parts)}).", None)
            tabular = list(head)
            for n, (mode, i, spaced) in enumerate(part):
                if mode is None and n == 0 and current_mode is not None and "mode" not in keys:
                    mode = f"{current_mode} (continued)"
                if mode is not None:
                    current_mode = mode.removesuffix(" (continued)")
                    tabular += ([r"\addlinespace"] if spaced and n else []) + [
                        rf"\multicolumn{{{len(chosen)}}}{{@{{}}l}}{{\emph{{{latex_escape(mode)}}}}} \\"
                    ]
                cells = []
                for column in chosen:
                    cells.append(_stack(names[i]) if column.key == "cell" else _cell(_shown(column, i, layout), stacked=True))
                tabular.append(" & ".join(cells) + r" \\")
            tabular += [r"\bottomrule", r"\end{tabular}"]
            if scale:
                tabular = [rf"\resizebox{{{spec.width}}}{{!}}{{%", *tabular, "}"]
            out += [*tabular, rf"\end{{{spec.environment}}}", ""]
    return "\n".join(out)


def questions_to_latex(tables: list[QuestionsTable], *, layout: str = "column", label: str | None = None, header: bool = True) -> list[str]:
    """The Questions tables as LaTeX lines: per question a line of text across the table, then its numbers, then the verdict."""
    spec = LAYOUTS[layout]
    out = [*HEADER, ""] if header and tables else []
    for table in tables:
        columns = {c.key: c for c in C.question_columns(table)}
        numbers = [columns[k] for k in ("delta", "p", "wtl", "mde", "seeds")]
        n = len(numbers)
        wide = rf"\multicolumn{{{n}}}{{@{{}}p{{{spec.question_width}}}@{{}}}}"
        caption = (
            rf"Declared questions of grid {latex_escape(table.grid)} ({latex_escape(table.dataset)}, $K={table.K}$, $Q={table.Q}$): "
            + " ".join(latex_escape(note) for note in table.notes)
            + r" $\Delta$: A minus B; MDE: minimum detectable $|\Delta|$ at 80\% power; seeds: sign of $\Delta$ per seed; $^\dagger$: Holm $p<0.05$."
        )
        heads = [rf"$\Delta$ {latex_escape(SHORT_METRIC[table.metric])}", r"Holm $p$", "W/T/L", "MDE", "Seeds"]
        head = [r"\begin{tabular}{@{}" + "r" * n + "@{}}", r"\toprule", " & ".join(heads) + r" \\", r"\midrule"]
        entries = []  # per question: its three rows, and their estimated height
        line = BASELINE[spec.font_pt]
        for i in range(len(table.rows)):
            q = columns["question"].cells[i]
            verdict = columns["verdict"].cells[i]
            # \raggedright: a justified narrow cell stretches its spaces; it stays local to the cell
            asked = rf"\textbf{{Q{i + 1}.}} {latex_escape(q.text)} {{\scriptsize({latex_escape(q.detail)})}}"
            said = rf"\emph{{{latex_escape(verdict.text)}}}{(' ' + latex_escape(verdict.detail)) if verdict.detail else ''}"
            rows = [
                rf"{wide}{{\raggedright{asked}}} \\",
                " & ".join(_cell(c.cells[i], stacked=False) if c.key != "seeds" else _number(c.cells[i].text).replace("−", "$-$") for c in numbers)
                + r" \\",
                rf"{wide}{{\raggedright{said}}} \\",
            ]
            lines = _lines(asked, spec.font_pt, spec.fit_pt) + 1 + _lines(said, spec.font_pt, spec.fit_pt)
            entries.append((rows, lines * line + 4.0))
        fixed = 2 * line + 12.0  # the heading row and the rules
        parts = _pack([h for _, h in entries], _caption_height(caption, spec) + fixed, 3 * line + 12.0 + fixed)
        for p, part in enumerate(parts):
            if p == 0:
                out += _begin(spec, caption, f"{label}:questions" if label else None)
            else:  # a continuation: the same columns, a short caption pointing back to the first part
                more = rf"Table~\ref{{{label}:questions}}" if label else f"the declared questions of grid {latex_escape(table.grid)}"
                out += _begin(spec, rf"Continued from {more} (part {p + 1} of {len(parts)}).", None)
            out += head
            for k, i in enumerate(part):
                out += entries[i][0] + ([r"\addlinespace"] if k + 1 < len(part) else [])
            out += [r"\bottomrule", r"\end{tabular}", rf"\end{{{spec.environment}}}", ""]
    return out


def notes_to_latex(lines: list[str]) -> str:
    """The note naming each run the tables lack (bench.store.results.problem_note), as comment lines above them."""
    return "".join(f"% {line}\n" for line in lines)
