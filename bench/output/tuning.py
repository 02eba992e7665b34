"""The tuning summary table (bench.run.studies.CellSummary rows), as markdown text: per tuned cell the
trials run, pruned and failed, seconds spent, the untuned settings' val score beside the tuned best,
and the best params (those that differ from the grid's marked)."""

from __future__ import annotations

import math


def _num(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _score(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def tuning_markdown(summaries, skipped: list[tuple[str, str]] = ()) -> str:
    """One row per cell's study; ``skipped`` (label, why) listed below the table."""
    if not summaries and not skipped:
        return ""
    lines = [
        "Tuning on val (equal budget: the same N trials per cell; objective val Acc@1, few-shot where the cell adapts)",
        "",
        "| cell | data K/Q | mode | trials | pruned | failed | seconds | val untuned | val tuned | best params | warm start |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for s in summaries:
        trials = f"{s.complete + s.pruned}/{s.target}" if s.target is not None else str(s.complete + s.pruned)
        if s.running:
            trials += f" ({s.running} unfinished)"
        if s.timed_out:
            trials += " (timed out)"
        params = ", ".join(f"{k}={_num(v)}" + ("" if s.untuned_params.get(k) != v else " (=grid)") for k, v in s.best_params.items()) or "-"
        warm = "-"
        if s.warm_from:
            warm = f"{s.warm_from} best: " + (", ".join(f"{k}={_num(v)}" for k, v in s.warm_params.items()) or "not tuned yet")
        lines.append(
            f"| {s.cell} | {s.dataset} {s.K}/{s.Q} | {s.mode} | {trials} | {s.pruned} | {s.failed} | {s.seconds:.0f} | "
            f"{_score(s.untuned_val)} | {_score(s.best_val)} | {params} | {warm} |"
        )
    if summaries:
        pruners = sorted({s.pruner for s in summaries})
        pruned = (
            "no pruning: every trial ran its full budget"
            if pruners == ["none"]
            else "pruning: " + "; ".join(pruners) + " on each trial's val curve; a pruned trial counts toward N"
        )
        lines += ["", f"Trial 0 of each study is the grid's own settings (val untuned); {pruned}."]
    for label, why in skipped:
        lines.append(f"not tuned: {label} ({why})")
    return "\n".join(lines)


def _p(value) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3g}"


def _diff(value) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:+.4f}"


def changes_markdown(changes) -> str:
    """The "what tuning changes" table (bench.analysis.tuning.TuningChange rows)."""
    if not changes:
        return ""
    lines = [
        "What tuning changes: each declared question untuned vs tuned (A - B on the same test episodes, Holm p)",
        "",
        "| question | data K/Q | untuned diff | untuned p | tuned diff | tuned p | sign flipped | tuned verdict |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for c in changes:
        lines.append(
            f"| {c.question} | {c.dataset} {c.K}/{c.Q} | {_diff(c.untuned_diff)} | {_p(c.untuned_p_holm)} | "
            f"{_diff(c.tuned_diff)} | {_p(c.tuned_p_holm)} | {'yes' if c.sign_flipped else 'no'} | {c.tuned_verdict} |"
        )
    return "\n".join(lines)
