"""The tuning summary table (bench.run.studies.CellSummary rows), as markdown text: per tuned cell the
trials run, complete, pruned and failed, how many TPE proposed, the training its trials spent against
what N whole trials would (and the pairs seen), the step from which a trial may be pruned, seconds,
the untuned settings' val score beside the tuned best, and the best params (those that differ from the
grid's marked); below it the sampler, the pruner, and whether every cell had the same budget."""

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


UNITS = {"epochs": "epochs", "meta-iterations": "meta-it"}


def _count(value) -> str:
    """A pair count, short: 1.2M, 34k, 512."""
    if value is None:
        return "-"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return str(value)


def _trained(s) -> str:
    if s.unit is None or s.missing_runs:
        return "-"
    allotted = "?" if s.allotted is None else str(s.allotted)
    return f"{_num(s.spent)}/{allotted} {UNITS.get(s.unit, s.unit)}"


def _judged(s) -> str:
    settings = s.pruner_settings
    if settings.get("name") != "median" or "n_warmup_steps" not in settings:
        return "-"
    return f"step {settings['n_warmup_steps']} of {settings.get('budget', '?')}, after {settings['n_startup_trials']} complete"


def same_budget_line(summaries) -> str:
    """Whether every cell had the same budget (docs/tuning.md: the same N trials, each allowed its
    whole training budget, judged by the same rule from the same share of it), and how they differ if
    not. A cell without a training curve (kNN, SR, fine-tune) has nothing to prune: only its N counts."""
    older = [s.cell for s in summaries if not s.sampler_settings]  # written before budgets were recorded
    if older:
        return f"Same budget: not recorded ({len(older)} studies from before tuning recorded its budget: re-run `tune`)."
    groups = {}
    for s in summaries:
        terms = s.budget_terms if s.unit is not None else (s.target, None, None, None)
        groups.setdefault(terms, []).append(s.cell)
    trained = {terms for terms in groups if terms[1] is not None}
    counts = {terms[0] for terms in groups}
    if len(counts) == 1 and len(trained) <= 1:
        (n,) = counts
        rule = "none trained"
        if trained:
            ((_, name, warmup, complete),) = trained
            rule = "never pruned"
            if name != "none" and warmup is not None:
                rule = f"none judged before {warmup:.0%} of it, at least {complete:.0%} of the trials complete"
        return f"Same budget: yes (every cell {n} trials, each allowed its whole training budget, {rule})."
    parts = []
    for (n, name, warmup, _), cells in groups.items():
        rule = "no training curve" if name is None else f"pruner {name}" + (f" from {warmup:.0%}" if warmup is not None else "")
        parts.append(f"N={n}, {rule}: {', '.join(cells)}")
    return "Same budget: no (" + "; ".join(parts) + ")."


def tuning_markdown(summaries, skipped: list[tuple[str, str]] = ()) -> str:
    """One row per cell's study; ``skipped`` (label, why) listed below the table."""
    if not summaries and not skipped:
        return ""
    lines = [
        "Tuning on val (equal budget: the same N trials per cell; objective val Acc@1, few-shot where the cell adapts)",
        "",
        "| cell | data K/Q | mode | trials | complete | pruned | failed | by TPE | trained | pairs seen | judged from | seconds "
        "| val untuned | val tuned | best params | warm start |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---|",
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
        pairs, seconds = ("-", "-") if s.missing_runs else (_count(s.pairs), f"{s.seconds:.0f}")  # unknown without the runs
        lines.append(
            f"| {s.cell} | {s.dataset} {s.K}/{s.Q} | {s.mode} | {trials} | {s.complete} | {s.pruned} | {s.failed} | {_num(s.by_tpe)} | "
            f"{_trained(s)} | {pairs} | {_judged(s)} | {seconds} | {_score(s.untuned_val)} | {_score(s.best_val)} | "
            f"{params} | {warm} |"
        )
    if summaries:
        pruners = sorted({s.pruner for s in summaries if s.unit is not None or s.pruner != "none"}) or ["none"]
        pruned = (
            "no pruning: every trial ran its full budget"
            if pruners == ["none"]
            else "pruning: " + "; ".join(pruners) + "; a pruned trial counts toward N"
        )
        samplers = sorted({s.sampler for s in summaries if s.sampler})
        lines += [
            "",
            f"Trial 0 of each study is the grid's own settings (val untuned); {pruned}.",
            "Sampler: " + ("; ".join(samplers) or "not recorded") + ".",
            "Trained: the steps its distinct complete and pruned trial runs trained / N x one trial's budget (max_epochs or "
            "meta_iterations); pairs seen by those steps (meta-training's for MAML arms; a warm start's shared GRU4Rec not counted).",
            same_budget_line(summaries),
        ]
        if any(s.missing_runs for s in summaries):
            lines.append(
                'Trained, pairs seen, seconds: "-" where the cell\'s trial runs are not in this store (its journal alone, '
                "e.g. results/reference/tuning/): the counts and values come from the journal, the training spent from the runs."
            )
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
