"""What `bench perf engines|full|baselines` print: each benchmark's progress lines, its table and its
summary lines, from the figures its measuring function returns (bench/run/perf/) and the progress
events it reports. Nothing here measures; the same figures are the ``--json`` file."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table


def perf_console() -> Console:
    """A console for the benchmarks: the full table in logs (160 columns when not a terminal)."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


# ----------------------------------------------------------------------------------- engines


def engines_header(data: dict) -> str:
    """The line before `bench perf engines` measures (its "start" event)."""
    s = data["settings"]
    return (
        f"bench perf engines: device {data['device']} ({data['device_name']}), torch threads {data['threads']}, torch {data['torch']}; "
        f"meta-batch {s['meta_batch']}, E={s['embed_dim']}, H={s['hidden_dim']}, {s['items']} items, "
        f"K={s['K']}, Q={s['Q']}, {s['inner_steps']} inner steps, prefixes of mean length ~{s['mean_length']:g} (max 50); "
        f"{s['repeats']} alternating rounds"
    )


def engines_round(data: dict) -> str:
    """One row's round (a "round" event)."""
    return (
        f"  round {data['round']}/{data['repeats']} {data['label']:>18}: {data['tasks_per_s']:8.1f} tasks/s, "
        f"{data['eval_episodes_per_s']:8.1f} eval episodes/s"
    )


def print_engines_progress(console: Console):
    """A progress callback for ``measure_engines`` that prints each event on ``console``."""

    def report(kind: str, data: dict) -> None:
        console.print(engines_header(data) if kind == "start" else engines_round(data))

    return report


def engines_table(figures: dict) -> Table:
    """MAML per engine, then each arm per engine: throughput, GFLOP/s and RSS."""
    title = f"bench perf engines ({figures['device']}, {figures['threads']} thread(s); medians of {figures['config']['repeats']} alternating rounds)"
    table = Table(title=title)
    for column in (
        "engine (MAML) / arm (engine)",
        "train tasks/s",
        "s / meta-iter",
        "eval episodes/s",
        "313 eval eps (s)",
        "train GFLOP/s",
        "% of matmul",
        "RSS (MB)",
    ):
        table.add_column(column, justify="right" if not column.startswith("engine") else "left")
    for name, row in [*figures["engines"].items(), *figures["arms"].items()]:
        maml_flops = name in figures["engines"]  # the FLOP count is MAML's: not shown for the other arms
        table.add_row(
            name,
            f"{row['train_tasks_per_s']:.1f}",
            f"{row['meta_iteration_s']:.3f}",
            f"{row['eval_episodes_per_s']:.1f}",
            f"{row['eval_313_s']:.2f}",
            f"{row['train_gflops']:.2f}" if maml_flops else "—",
            f"{100 * row['train_gflops'] / figures['matmul_gflops']:.1f}%" if maml_flops else "—",
            f"{row['rss_mb']:.0f}",
        )
    return table


def engines_lines(figures: dict) -> list[str]:
    """The lines under the table: RSS, FLOPs and the ceilings, speed-ups, each arm against MAML, the long loop."""
    lines = [
        f"RSS (MB): the process's resident size sampled after each engine's rounds (one process, so it "
        f"includes every engine's memory so far); process peak {figures['peak_rss_mb']:.0f} MB",
        f"useful FLOPs per meta-iteration {figures['flops_per_meta_iteration'] / 1e9:.2f} GFLOP (first-order, true lengths); "
        f"matmul 1024^3 on the same threads: {figures['matmul_gflops']:.1f} GFLOP/s; "
        f"GRU4Rec training (baselines.gru4rec.train_gru4rec, batches of 256): {figures['gru4rec_pairs_per_s']:.0f} pairs/s",
    ]
    for key, ratio in figures["ratios"].items():
        if key.startswith("batched/"):
            lines.append(f"speed-up {key}: meta-training {ratio['train']:.2f}x, evaluation {ratio['eval']:.2f}x")
    for name, arm in figures["arms"].items():
        versus = arm["vs_maml_same_engine"]
        lines.append(
            f"{name}: seconds per meta-iteration {versus['meta_iteration']:.2f}x MAML's on {arm['engine']}, evaluation time {versus['eval']:.2f}x"
        )
    rss = figures.get("rss_long_loop")
    if rss:
        lines.append(
            f"RSS over {rss['iterations']} meta-iterations ({rss['engine']}): {rss['at_100']:.0f} MB at iteration "
            f"{min(100, rss['iterations'])}, {rss['at_end']:.0f} MB at the end ({100 * rss['growth']:+.1f}%)"
        )
    return lines


def print_engines_report(console: Console, figures: dict) -> None:
    console.print(engines_table(figures))
    for line in engines_lines(figures):
        console.print(line)


# ----------------------------------------------------------------------------------- full


def full_header(data: dict) -> str:
    """The line before `bench perf full` measures (its "start" event: the figures known by then)."""
    s = data["settings"]
    return (
        f"bench perf full: dataset {data['dataset']} ({data['n_items']} items; {data['train_episodes']} train episodes, "
        f"{data['val_episodes']} val episodes), "
        f"E={s['embed_dim']}, H={s['hidden_dim']}, dropout {s['dropout']}, meta-batch {s['meta_batch']}, K={s['K']}, Q={s['Q']}, "
        f"{s['inner_steps']} inner steps, first-order; {data['repeats'] * data['train_iterations']} sampled meta-batches "
        f"({100 * data['capped_share']:.0f}% reach the {data['max_prefix']}-course prefix cap), "
        f"{data['flops_per_meta_iteration'] / 1e9:.2f} useful GFLOP each; "
        f"engines {', '.join(data['engine_names'])} alternating, {data['repeats']} rounds of {data['train_iterations']} meta-iterations + 1 "
        f"validation; "
        f"torch {data['torch']}"
    )


def full_round(data: dict) -> str:
    """One engine's round at one thread count (a "round" event)."""
    return (
        f"  {data['threads']} thread(s), round {data['round']}/{data['repeats']} {data['engine']:>17}: "
        f"{data['seconds_per_iteration']:.3f} s/meta-iteration, {data['seconds_per_validation']:.2f} s/validation"
    )


def full_table(dataset: str, repeats: int, val_episodes: int, data: dict) -> Table:
    """One thread count's engines (a "threads" event): seconds, GFLOP/s, share of the matmul rate."""
    table = Table(title=f"bench perf full ({dataset}, {data['threads']} thread(s); medians of {repeats} alternating rounds)")
    for column in ("engine", "s / meta-iteration", f"s / validation ({val_episodes} val eps)", "train GFLOP/s", "% of matmul"):
        table.add_column(column, justify="left" if column == "engine" else "right")
    for name, row in data["engines"].items():
        table.add_row(
            name,
            f"{row['seconds_per_iteration']:.3f}",
            f"{row['seconds_per_validation']:.2f}",
            f"{row['gflops']:.1f}",
            f"{100 * row['matmul_share']:.1f}%",
        )
    return table


def full_summary(data: dict) -> str:
    """The speed-up of the compiled kernel at one thread count (a "threads" event)."""
    ratios = data["kernel_ratios"]
    return (
        f"full, {data['threads']} thread(s): batched/batched-segmented speed-up {ratios['iteration']:.2f}x per meta-iteration, "
        f"{ratios['validation']:.2f}x per validation; matmul 1024^3 {data['matmul_gflops']:.1f} GFLOP/s; batched's GRU: {data['kernel']}"
    )


def print_full_progress(console: Console):
    """A progress callback for ``measure_full`` that prints each event on ``console``."""
    start: dict = {}

    def report(kind: str, data: dict) -> None:
        if kind == "start":
            start.update(data)
            console.print(full_header(data))
        elif kind == "round":
            console.print(full_round(data))
        else:
            console.print(full_table(start["dataset"], start["repeats"], start["val_episodes"], data))
            console.print(full_summary(data))

    return report


# ----------------------------------------------------------------------------------- baselines


def baselines_method_line(row: dict) -> str:
    """One memory baseline's fit and scoring seconds (a "method" event)."""
    line = f"{row['method']:6s} fit+val-choice {row['fit_wall_s']:5.1f} s wall {row['fit_cpu_s']:5.1f} s cpu (w={row['support_weight']:g})"
    for mode, m in row["modes"].items():
        line += f" | {mode} {m['episodes']} episodes {m['wall_s']:5.1f} s wall {m['cpu_s']:5.1f} s cpu, Acc@1 {m['acc@1']:.4f}"
    return line


def baselines_training_lines(training: dict) -> list[str]:
    """SASRec's and GRU4Rec's training throughput, their ratio and one epoch's seconds."""
    models = training["models"]
    lines = [
        f"{name:8s} training {row['pairs_per_cpu_s']:8.0f} train pairs per CPU second (median of {training['rounds']}, "
        f"{training['batches']} batches of {training['batch_size']}, {training['threads']} thread(s))"
        for name, row in models.items()
    ]
    sasrec, gru4rec, pairs = models["sasrec"]["pairs_per_cpu_s"], models["gru4rec"]["pairs_per_cpu_s"], training["epoch_pairs"]
    lines.append(
        f"sasrec/gru4rec throughput {sasrec / gru4rec:.2f}; one epoch of {pairs:,} train pairs: sasrec {pairs / sasrec:.0f} s, gru4rec "
        f"{pairs / gru4rec:.0f} s"
    )
    if "gru4rec-fused" in models:
        fused = models["gru4rec-fused"]["pairs_per_cpu_s"]
        lines.append(
            f"gru4rec training forward ({training['gru4rec_kernel']}) vs torch's packed nn.GRU: {training['gru4rec_speedup']:.2f}x "
            f"(medians); one epoch {pairs / fused:.0f} s"
        )
    return lines


def print_baselines_progress(console: Console):
    """A progress callback for ``measure_baselines`` that prints each method's line."""

    def report(kind: str, data: dict) -> None:
        console.print(baselines_method_line(data), soft_wrap=True)  # one line per method, as before

    return report
