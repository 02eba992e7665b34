"""`python -m bench report --html FILE`: the whole report as one self-contained HTML page.

The Questions tables, the leaderboard, the figures (SVG data URIs), the datasets' diagnostics and
each run's provenance, from the same objects the terminal, LaTeX and plot renderers use. No
network, no script: it opens from disk in any browser and prints to PDF (landscape A4).
"""

from __future__ import annotations

import base64
import html
import json
from datetime import UTC, datetime

from bench.core.labels import METRIC_LABELS
from bench.output.cells import DAGGER, Column, leaderboard_columns, question_columns
from bench.output.figures import Drawn, Skipped, svg_bytes
from bench.output.figures.inputs import PlotInputs
from bench.store.results import problem_note

CSS = """
:root { --ink: #1d1d1f; --dim: #666; --rule: #d0d0d0; --pos: #00734d; --neg: #b13c00; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       max-width: 1440px; margin: 0 auto; padding: 1.2rem 1.5rem 3rem; }
h1 { font-size: 1.5rem; margin: 0 0 .2rem; } h2 { font-size: 1.2rem; margin: 2rem 0 .6rem; border-bottom: 2px solid var(--ink); }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
.meta, .note, figcaption, .notice { color: var(--dim); font-size: .85rem; }
.note { margin: .15rem 0; } nav a { margin-right: 1rem; }
.problems { border-left: 4px solid var(--neg); padding: .3rem .8rem; margin: .6rem 0; font-size: .85rem; }
.problems p { margin: .15rem 0; } .problems p:first-child { font-weight: 600; color: var(--neg); }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .82rem; font-variant-numeric: tabular-nums; margin: .3rem 0 .5rem; }
th, td { padding: .22rem .45rem; border-bottom: 1px solid var(--rule); vertical-align: top; }
td { white-space: nowrap; }
th { text-align: left; border-bottom: 1.5px solid var(--ink); vertical-align: bottom; }
td.r, th.r { text-align: right; }
.side { display: flex; flex-wrap: wrap; gap: 0 2rem; align-items: flex-start; }
td.wrap { white-space: normal; min-width: 13rem; max-width: 30rem; overflow-wrap: break-word; }
tr.reference td { font-style: italic; background: #f6f6f6; }
.ci { color: var(--dim); font-size: .92em; }
.pos { color: var(--pos); font-weight: 600; } .neg { color: var(--neg); font-weight: 600; } .sig { font-weight: 600; }
td .ci { display: block; font-size: .85em; } td .notice { font-size: 1em; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .9em; }
figure { margin: 1rem 0 1.6rem; } figure img { display: block; max-width: 100%; height: auto; }
figure.wide img { width: 100%; } figure.narrow img { width: min(100%, 560px); }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; font-size: .85rem; }
dl.kv dt { color: var(--dim); } dl.kv dd { margin: 0; }
@page { size: A4 landscape; margin: 10mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  nav { display: none; } .scroll { overflow: visible; }
  h2, h3 { break-after: avoid; } figure, tr, .keep { break-inside: avoid; }
  table { font-size: 7.5pt; }
}
"""

ALWAYS_SHOWN = ("run", "cell", "seed", "K", "Q")


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: list[tuple[str, str]], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    """An HTML table; ``headers`` (text, CSS class: "l"/"r", plus "wrap" for long text), ``rows`` of cell HTML (escaped)."""
    head = "".join(f'<th class="{a}">{_e(h)}</th>' for h, a in headers)
    body = []
    for i, cells in enumerate(rows):
        klass = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{klass}>" + "".join(f'<td class="{a}">{c}</td>' for (_, a), c in zip(headers, cells)) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _notes(notes) -> str:
    return "".join(f'<p class="note">{_e(n)}</p>' for n in notes)


PROSE_KEYS = frozenset({"question", "verdict"})  # wrapped at spaces; every other column stays on one line


def _cell_html(cell) -> str:
    text = _e(cell.text)
    if cell.emphasis == "best":
        text = f"<strong>{text}</strong>"
    elif cell.emphasis == "second":
        text = f"<u>{text}</u>"
    if cell.dagger:
        text += DAGGER
    if cell.significant:  # a difference in colour by its sign; its p-value (no sign) in bold
        text = f'<span class="{ {1: "pos", -1: "neg"}.get(cell.sign, "sig") }">{text}</span>'
    if cell.detail:
        text += f' <span class="ci">{_e(cell.detail)}</span>'
    return text


def _columns_table(columns: list[Column], row_classes: list[str] | None = None) -> str:
    headers = [(c.header, f"{c.align}{' wrap' if c.key in PROSE_KEYS else ''}") for c in columns]
    rows = [[_cell_html(c.cells[i]) for c in columns] for i in range(len(columns[0].cells))] if columns else []
    return _table(headers, rows, row_classes)


# ------------------------------------------------------------------------------------- sections


def questions_section(inputs: PlotInputs) -> str:
    if not inputs.questions:
        return f'<p class="notice">No declared questions answered: {_e(inputs.questions_notice or "none")}.</p>'
    out = []
    for table in inputs.questions:
        title = f"{table.dataset} · K={table.K} · Q={table.Q} · {METRIC_LABELS.get(table.metric, table.metric)}"
        out.append(f"<h3>{_e(title)}</h3>" + _columns_table(question_columns(table)) + _notes(table.notes))
    return "".join(out)


def leaderboard_section(inputs: PlotInputs) -> str:
    out = []
    for table in inputs.tables:
        classes = ["reference" if ref else "" for ref in table.rows["is_reference"]]
        out.append(f"<h3>{_e(table.title)}</h3>" + _columns_table(leaderboard_columns(table), classes) + _notes(table.notes))
    return "".join(out)


def figures_section(drawn: dict[str, Drawn | Skipped]) -> str:
    out = []
    for name, item in drawn.items():
        if isinstance(item, Skipped):
            out.append(f'<p class="notice">Figure {_e(name)} not drawn: {_e(item.notice)}</p>')
            continue
        data = base64.b64encode(svg_bytes(item)).decode("ascii")
        out.append(
            f'<figure class="{"wide" if item.wide else "narrow"}" id="fig-{_e(name)}">'
            f'<img alt="{_e(name)}" src="data:image/svg+xml;base64,{data}">'
            f'<figcaption>{_e(item.caption)}<br><span class="ci">Drawn from: {_e(item.sources)}</span></figcaption></figure>'
        )
    return "".join(out)


def _flatten(prefix: str, value, out: dict[str, str]) -> None:
    """Scalars of a nested dict as 'a.b' keys; lists (histograms, curves) are left to the figures."""
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    elif not isinstance(value, list):
        out[prefix] = f"{value:.4g}" if isinstance(value, float) else str(value)


DATASET_GROUPS = ("counts", "summaries", "diagnostics")  # dataset.json keys shown, one table each


def datasets_section(inputs: PlotInputs) -> str:
    """One table per dataset.json group (counts, summaries, diagnostics), a column per dataset, side by side."""
    names = sorted({run["config"]["dataset"] for run in inputs.results.runs})
    found = [name for name in names if name in inputs.manifests]
    out = [f'<p class="notice">{_e(name)}: dataset.json not found (check $BENCH_DATA_DIR or --data-dir).</p>' for name in names if name not in found]
    if not found:
        return "".join(out)
    groups: dict[str, dict[str, dict[str, str]]] = {}  # group -> field -> dataset -> value
    for name in found:
        manifest = inputs.manifests[name]
        used = sorted({r["config"].get("dataset_hash", "") for r in inputs.results.runs if r["config"]["dataset"] == name})
        groups.setdefault("version", {}).setdefault("content hash", {})[name] = str(manifest.get("content_hash", "?"))[:12]
        groups["version"].setdefault("data version(s) the runs used", {})[name] = ", ".join(h[:12] for h in used)
        for group in DATASET_GROUPS:
            fields: dict[str, str] = {}
            _flatten("", manifest.get(group, {}), fields)
            for field, value in (fields or {"(not recorded)": "—"}).items():
                groups.setdefault(group, {}).setdefault(field, {})[name] = value
    out.append('<div class="side">')
    for group, fields in groups.items():
        headers = [(group, "l"), *((name, "r") for name in found)]
        rows = [[f'<span class="mono">{_e(field)}</span>', *(_e(values.get(name, "—")) for name in found)] for field, values in fields.items()]
        out.append(_table(headers, rows))
    out.append("</div>")
    return "".join(out)


def _run_fields(run: dict) -> dict[str, str]:
    config = run.get("config", {})
    fields = {
        "run": run["hash"][:12],
        "cell": run.get("cell", ""),
        "seed": config.get("seed"),
        "K": config.get("K"),
        "Q": config.get("Q"),
        "dataset": config.get("dataset"),
        "data version": str(config.get("dataset_hash", ""))[:12],
    }
    git = run.get("git") or {}
    fields["git revision"] = f"{str(git.get('revision', 'unknown'))[:12]}{' (uncommitted changes)' if git.get('dirty') else ''}"
    for key, value in run.items():
        if "fingerprint" in key:  # the code fingerprint, where the run records one
            fields[key] = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value
    for package, version in (run.get("versions") or {}).items():
        fields[package] = version
    fields.update({"device": run.get("device"), "threads": run.get("threads"), "engine": config.get("engine")})
    for key, value in sorted((config.get("params") or {}).items()):
        fields[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
    return {k: "—" if v is None else str(v) for k, v in fields.items()}


def provenance_section(inputs: PlotInputs) -> str:
    runs = sorted(inputs.results.runs, key=lambda r: (r["config"].get("dataset"), r["config"].get("K"), r.get("cell"), r["config"].get("seed")))
    fields = [_run_fields(run) for run in runs]
    keys = list(dict.fromkeys(k for f in fields for k in f))
    shared = {k: fields[0][k] for k in keys if k not in ALWAYS_SHOWN and all(f.get(k) == fields[0].get(k) for f in fields)}
    out = ['<p class="note">Shared by every run below:</p><dl class="kv">']
    out += [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in shared.items()]
    out.append("</dl>")
    headers = [
        ("Run", "l"),
        ("Cell", "l"),
        ("Seed", "r"),
        ("K", "r"),
        ("Q", "r"),
        ("Started (UTC)", "l"),
        ("Wall s", "r"),
        ("Train s", "r"),
        ("Other settings", "l wrap"),
    ]
    rows = []
    for run, f in zip(runs, fields):
        other = "; ".join(f"{k}={v}" for k, v in f.items() if k not in shared and k not in ALWAYS_SHOWN)
        seconds = [run.get(k) for k in ("wall_seconds", "train_seconds")]
        rows.append(
            [
                f'<span class="mono">{_e(f["run"])}</span>',
                _e(f["cell"]),
                _e(f["seed"]),
                _e(f["K"]),
                _e(f["Q"]),
                _e(run.get("started", "—")),
                *("—" if not isinstance(s, (int, float)) else f"{s:.1f}" for s in seconds),
                f'<span class="mono">{_e(other)}</span>',
            ]
        )
    out.append(_table(headers, rows))
    return "".join(out)


# ------------------------------------------------------------------------------------------ page

SECTIONS = (
    ("questions", "Questions", lambda inputs, drawn: questions_section(inputs)),
    ("leaderboard", "Leaderboard", lambda inputs, drawn: leaderboard_section(inputs)),
    ("figures", "Figures", lambda inputs, drawn: figures_section(drawn)),
    ("datasets", "Datasets", lambda inputs, drawn: datasets_section(inputs)),
    ("provenance", "Runs and provenance", lambda inputs, drawn: provenance_section(inputs)),
)


def html_page(inputs: PlotInputs, drawn: dict[str, Drawn | Skipped], title: str = "bench report") -> str:
    """The page as one string: every figure inline, no external reference."""
    datasets = sorted({run["config"]["dataset"] for run in inputs.results.runs})
    meta = (
        f"{len(inputs.results.runs)} complete run(s) from {inputs.results_dir}"
        f"{f' · grid {inputs.grid}' if inputs.grid else ''} · dataset(s) {', '.join(datasets)} · "
        f"generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    nav = " ".join(f'<a href="#{key}">{_e(name)}</a>' for key, name, _ in SECTIONS)
    # each run the tables lack (damaged, failed, missing), above them as in every other output
    problems = "".join(f"<p>{_e(line)}</p>" for line in problem_note(inputs.results.problems))
    problems = f'<div class="problems">{problems}</div>' if problems else ""
    body = "".join(f'<section id="{key}"><h2>{_e(name)}</h2>{render(inputs, drawn)}</section>' for key, name, render in SECTIONS)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
        f'<style>{CSS}</style></head><body><header><h1>{_e(title)}</h1><p class="meta">{_e(meta)}</p><nav>{nav}</nav></header>'
        f"{problems}{body}</body></html>\n"
    )
