"""`python -m bench perf`: inner-loop engine throughput on generated episodes (a benchmark, not a test).

In one process, on the same generated episodes and config, engines measured in alternation
(A, B, C, A, B, C, ...), MAML on each engine and the other arms (``--arms``: ANIL, Meta-SGD) on the
engines that implement them, medians reported: meta-training tasks/s, few-shot evaluation episodes/s,
GRU4Rec training pairs/s, sampled peak RSS; the ratios between engines; achieved GFLOP/s (useful
first-order FLOPs counted analytically from the true prefix lengths) next to a plain matmul's
GFLOP/s on the same threads; RSS over a long loop. What a grid would cost is `python -m bench project`
(bench/run/projection.py), from measured runs, not from these figures.

``--settings full`` (``perf_full``) times instead the batched engine at the `full` grid's settings on
real train episodes of a dataset: today's engine ("batched", its one-layer GRU on the compiled
kernel of meta/fused.py) against the one before the kernel ("batched-segmented", SegmentedGRU),
alternating in one process, at each of ``--thread-counts``: seconds per meta-iteration, per
validation (the dataset's val episodes, few-shot, scored in chunks as meta/maml.py scores them)
and the share of the matmul rate.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from bench.core.errors import BenchError
from bench.core.threads import configure_threads

DEFAULT_ENGINES = "per-task,batched,notebook"
DEFAULT_ARMS = "anil,metasgd"  # measured beside MAML on each of --engines that implements them
MEAN_LENGTH = 10.0  # prefix length 1 + geometric (mean about 10 by default), capped at 50: skewed short
MAX_PREFIX = 50


# ----------------------------------------------------------------------------------- inputs


def synthetic_tasks(n: int, K: int, Q: int, n_items: int, seed: int, device="cpu", mean_length: float = MEAN_LENGTH) -> list:
    """``n`` generated episodes: random items, prefix lengths 1 + geometric (mean ``mean_length``), capped at 50."""
    from baselines.batching import pad_prefixes
    from meta.tasks import Task

    generator = torch.Generator().manual_seed(seed)
    geometric = torch.distributions.Geometric(probs=torch.tensor(1.0 / max(mean_length, 1.0)))

    def prefixes(count: int):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        lengths = (1 + geometric.sample((count,)).long()).clamp(max=MAX_PREFIX)
        items = [torch.randint(1, n_items + 1, (int(length),), generator=generator).tolist() for length in lengths]
        return pad_prefixes(items, device)

    tasks = []
    for _ in range(n):
        sp, sl = prefixes(K)
        qp, ql = prefixes(Q)
        tasks.append(
            Task(
                sp,
                sl,
                torch.randint(1, n_items + 1, (K,), generator=generator).to(device),
                qp,
                ql,
                torch.randint(1, n_items + 1, (Q,), generator=generator).to(device),
            )
        )
    return tasks


def build_maml(args, seed: int, algorithm: str = "maml"):
    """The GRURecommender wrapped by ``algorithm`` (meta/algorithms.py: maml, anil, metasgd), inner lr 0.01."""
    from baselines.model import GRURecommender, ModelConfig
    from meta.algorithms import wrap

    torch.manual_seed(seed)
    model = GRURecommender(ModelConfig(args.items, args.embed_dim, args.hidden_dim, 1, 0.2)).to(args.device)
    model.train()
    return wrap(algorithm, model, 0.01, False)


# ----------------------------------------------------------------------------------- FLOPs


def sequence_flops(length: int, E: int, H: int, V: int) -> float:
    """Forward FLOPs of one prefix through one GRU layer and the output layer (matmuls only)."""
    return length * (2 * E * 3 * H + 2 * H * 3 * H) + 2 * H * V


def task_flops(task, E: int, H: int, V: int, inner_steps: int, train: bool) -> float:
    """Useful FLOPs for one task: each inner step forward + backward (3x forward), then the query
    set forward (+ backward when meta-training). Counted at the true lengths, padding excluded."""
    support = sum(sequence_flops(int(n), E, H, V) for n in task.support_lengths.tolist())
    query = sum(sequence_flops(int(n), E, H, V) for n in task.query_lengths.tolist())
    return 3 * inner_steps * support + (3 if train else 1) * query


def matmul_gflops(device: str, size: int = 1024, repeats: int = 5) -> float:
    """Plain float32 matmul GFLOP/s on the current threads: the practical ceiling."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


# ----------------------------------------------------------------------------------- measuring


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def current_rss_mb() -> float:
    """Resident set size now (MB), from /proc where there is one, else the process peak."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_step(engine, maml, optimizer, tasks, inner_steps: int) -> float:
    optimizer.zero_grad()
    loss = engine.meta_gradient(maml, tasks, inner_steps)
    torch.nn.utils.clip_grad_norm_(maml.parameters(), 10.0)
    optimizer.step()
    return loss


def time_training(engine, maml, optimizer, batches, args) -> float:
    _sync(args.device)
    start = time.perf_counter()
    for tasks in batches:
        train_step(engine, maml, optimizer, tasks, args.inner_steps)
    _sync(args.device)
    return time.perf_counter() - start


def time_evaluation(engine, maml, tasks, args, chunk: int = 64) -> float:
    _sync(args.device)
    start = time.perf_counter()
    for first in range(0, len(tasks), chunk):
        engine.query_scores(maml, tasks[first : first + chunk], args.inner_steps)
    _sync(args.device)
    return time.perf_counter() - start


def gru4rec_pairs_per_second(args, n_batches: int = 16) -> float:
    """Pairs/s of GRU4Rec training (baselines.gru4rec.train_gru4rec, one epoch on generated pairs)."""
    import pandas as pd

    from baselines.gru4rec import train_gru4rec

    generator = torch.Generator().manual_seed(args.seed + 1)
    geometric = torch.distributions.Geometric(probs=torch.tensor(1.0 / max(args.mean_length, 1.0)))

    def pairs(count: int) -> pd.DataFrame:
        lengths = (1 + geometric.sample((count,)).long()).clamp(max=MAX_PREFIX).tolist()
        prefixes = [torch.randint(1, args.items + 1, (n,), generator=generator).tolist() for n in lengths]
        labels = torch.randint(1, args.items + 1, (count,), generator=generator).tolist()
        return pd.DataFrame({"user_id": list(range(count)), "prefix": prefixes, "label": labels})

    splits = {"train": pairs(256 * n_batches), "val": pairs(256)}

    class GeneratedPairs:  # the two things train_gru4rec reads from a dataset
        n_items = args.items

        def pairs(self, split: str) -> pd.DataFrame:
            return splits[split]

    params = {"embed_dim": args.embed_dim, "hidden_dim": args.hidden_dim, "n_layers": 1, "dropout": 0.2, "batch_size": 256, "max_epochs": 1}
    _sync(args.device)
    start = time.perf_counter()
    _, info = train_gru4rec(GeneratedPairs(), params, args.seed, device=args.device)
    _sync(args.device)
    return info["n_train_pairs"] / (time.perf_counter() - start)


def rss_over_long_loop(engine, args) -> dict:
    """RSS (MB) at iteration 100 and at the end of ``--rss-iterations`` meta-iterations (fresh batches)."""
    maml = build_maml(args, args.seed)
    optimizer = torch.optim.Adam(maml.parameters(), lr=1e-3)
    pool = synthetic_tasks(8 * args.meta_batch, args.K, args.Q, args.items, args.seed + 7, args.device, args.mean_length)
    samples = {}
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for iteration in range(1, args.rss_iterations + 1):
        pick = torch.randperm(len(pool), generator=generator)[: args.meta_batch].tolist()
        train_step(engine, maml, optimizer, [pool[i] for i in pick], args.inner_steps)
        if iteration == min(100, args.rss_iterations):
            samples["at_100"] = current_rss_mb()
    samples["at_end"] = current_rss_mb()
    samples["iterations"] = args.rss_iterations
    samples["growth"] = samples["at_end"] / samples["at_100"] - 1
    samples["seconds"] = time.perf_counter() - start
    return samples


# ----------------------------------------------------------------------------------- command


def perf_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from meta.algorithms import ALGORITHMS, get_algorithm
    from meta.engines import ENGINES, get_engine

    warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor that is not a leaf Tensor is being accessed")
    if getattr(args, "settings", "synthetic") == "full":
        return perf_full(args)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)  # the full table in logs
    if args.device == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda but no CUDA device is visible", "use --device cpu")
    engines = [name.strip() for name in args.engines.split(",") if name.strip()]
    unknown = [name for name in engines if name not in ENGINES]
    if unknown or not engines:
        raise BenchError(f"unknown engine(s) {unknown}", f"choose from {', '.join(ENGINES)}")
    arms = [name.strip() for name in args.arms.split(",") if name.strip()]
    unknown = [name for name in arms if name not in ALGORITHMS or name == "maml"]
    if unknown:
        raise BenchError(f"unknown arm(s) {unknown}", f"choose from {', '.join(a for a in ALGORITHMS if a != 'maml')} (MAML is always measured)")
    if args.repeats < 1 or args.meta_batch < 1 or args.eval_episodes < 1 or args.train_iterations < 1:
        raise BenchError("--repeats, --meta-batch, --eval-episodes and --train-iterations must be at least 1", "give positive counts")
    threads = configure_threads(args.threads)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({os.cpu_count()} cores visible)"
    console.print(
        f"bench perf: device {args.device} ({device_name}), torch threads {threads}, torch {torch.__version__}; "
        f"meta-batch {args.meta_batch}, E={args.embed_dim}, H={args.hidden_dim}, {args.items} items, "
        f"K={args.K}, Q={args.Q}, {args.inner_steps} inner steps, prefixes of mean length ~{args.mean_length:g} (max 50); "
        f"{args.repeats} alternating rounds"
    )

    V, E, H = args.items + 1, args.embed_dim, args.hidden_dim
    train_batches = [
        synthetic_tasks(args.meta_batch, args.K, args.Q, args.items, args.seed * 1000 + b, args.device, args.mean_length)
        for b in range(args.train_iterations * args.repeats)
    ]
    eval_tasks = synthetic_tasks(args.eval_episodes, args.K, args.Q, args.items, args.seed * 1000 + 999, args.device, args.mean_length)
    train_flops = [sum(task_flops(t, E, H, V, args.inner_steps, True) for t in batch) for batch in train_batches]
    eval_flops = sum(task_flops(t, E, H, V, args.inner_steps, False) for t in eval_tasks)

    # Rows: MAML on every engine (named by the engine), then each arm on the engines that implement it.
    rows = [(name, "maml", name) for name in engines]
    rows += [(f"{arm} ({name})", arm, name) for arm in arms for name in engines if name in get_algorithm(arm).engines]
    state = {label: {"engine": get_engine(name), "train_s": [], "eval_s": [], "train_gflops": [], "eval_gflops": [], "rss_mb": 0.0} for label, _, name in rows}
    models = {}
    for label, algorithm, _ in rows:
        maml = build_maml(args, args.seed, algorithm)  # same initial weights for every row
        models[label] = (maml, torch.optim.Adam(maml.parameters(), lr=1e-3))
        time_training(state[label]["engine"], *models[label], train_batches[:1], args)  # warm-up
    pairs_per_s: list[float] = []
    matmul: list[float] = []
    for round_index in range(args.repeats):
        batches = train_batches[round_index * args.train_iterations : (round_index + 1) * args.train_iterations]
        flops = sum(train_flops[round_index * args.train_iterations : (round_index + 1) * args.train_iterations])
        for name, _, _ in rows:
            entry, (maml, optimizer) = state[name], models[name]
            seconds = time_training(entry["engine"], maml, optimizer, batches, args)
            entry["train_s"].append(seconds / (len(batches) * args.meta_batch))
            entry["train_gflops"].append(flops / seconds / 1e9)
            seconds = time_evaluation(entry["engine"], maml, eval_tasks, args)
            entry["eval_s"].append(seconds / len(eval_tasks))
            entry["eval_gflops"].append(eval_flops / seconds / 1e9)
            entry["rss_mb"] = max(entry["rss_mb"], current_rss_mb())
            console.print(
                f"  round {round_index + 1}/{args.repeats} {name:>18}: {1 / entry['train_s'][-1]:8.1f} tasks/s, "
                f"{1 / entry['eval_s'][-1]:8.1f} eval episodes/s"
            )
        pairs_per_s.append(gru4rec_pairs_per_second(args))
        matmul.append(matmul_gflops(args.device))

    figures: dict = {
        "device": args.device,
        "device_name": device_name,
        "threads": threads,
        "torch": torch.__version__,
        "config": {k: getattr(args, k) for k in ("meta_batch", "embed_dim", "hidden_dim", "items", "K", "Q", "inner_steps", "repeats", "train_iterations", "eval_episodes", "mean_length", "seed")},
        "flops_per_meta_iteration": statistics.mean(train_flops),
        "matmul_gflops": statistics.median(matmul),
        "gru4rec_pairs_per_s": statistics.median(pairs_per_s),
        "engines": {},  # MAML per engine
        "arms": {},  # the other algorithms, "arm (engine)"; GFLOP/s there count MAML's FLOPs (not theirs)
    }
    for name, algorithm, engine in rows:
        entry = state[name]
        figures["engines" if algorithm == "maml" else "arms"][name] = {
            "train_tasks_per_s": 1 / statistics.median(entry["train_s"]),
            "meta_iteration_s": statistics.median(entry["train_s"]) * args.meta_batch,
            "eval_episodes_per_s": 1 / statistics.median(entry["eval_s"]),
            "eval_313_s": statistics.median(entry["eval_s"]) * 313,
            "train_gflops": statistics.median(entry["train_gflops"]),
            "eval_gflops": statistics.median(entry["eval_gflops"]),
            "rss_mb": entry["rss_mb"],
        }

    table = Table(title=f"bench perf ({args.device}, {threads} thread(s); medians of {args.repeats} alternating rounds)")
    for column in ("engine (MAML) / arm (engine)", "train tasks/s", "s / meta-iter", "eval episodes/s", "313 eval eps (s)", "train GFLOP/s", "% of matmul", "RSS (MB)"):
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
    console.print(table)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(
        f"RSS (MB): the process's resident size sampled after each engine's rounds (one process, so it "
        f"includes every engine's memory so far); process peak {figures['peak_rss_mb']:.0f} MB"
    )
    console.print(
        f"useful FLOPs per meta-iteration {figures['flops_per_meta_iteration'] / 1e9:.2f} GFLOP (first-order, true lengths); "
        f"matmul 1024^3 on the same threads: {figures['matmul_gflops']:.1f} GFLOP/s; "
        f"GRU4Rec training (baselines.gru4rec.train_gru4rec, batches of 256): {figures['gru4rec_pairs_per_s']:.0f} pairs/s"
    )

    ratios = {}
    for a in engines:
        for b in engines:
            if a != b:
                ra, rb = figures["engines"][a], figures["engines"][b]
                ratios[f"{a}/{b}"] = {
                    "train": ra["train_tasks_per_s"] / rb["train_tasks_per_s"],
                    "eval": ra["eval_episodes_per_s"] / rb["eval_episodes_per_s"],
                }
    figures["ratios"] = ratios
    for key in [k for k in ratios if k.startswith("batched/")]:
        console.print(f"speed-up {key}: meta-training {ratios[key]['train']:.2f}x, evaluation {ratios[key]['eval']:.2f}x")
    for name, algorithm, engine in rows[len(engines) :]:  # each arm against MAML on the same engine
        arm, maml_row = figures["arms"][name], figures["engines"][engine]
        arm["vs_maml_same_engine"] = {"meta_iteration": arm["meta_iteration_s"] / maml_row["meta_iteration_s"], "eval": maml_row["eval_episodes_per_s"] / arm["eval_episodes_per_s"]}
        console.print(
            f"{name}: seconds per meta-iteration {arm['vs_maml_same_engine']['meta_iteration']:.2f}x MAML's on {engine}, "
            f"evaluation time {arm['vs_maml_same_engine']['eval']:.2f}x"
        )

    if args.rss_iterations > 0:
        fastest = max(engines, key=lambda n: figures["engines"][n]["train_tasks_per_s"])
        rss = rss_over_long_loop(state[fastest]["engine"], args)
        rss["engine"] = fastest
        figures["rss_long_loop"] = rss
        console.print(
            f"RSS over {rss['iterations']} meta-iterations ({fastest}): {rss['at_100']:.0f} MB at iteration "
            f"{min(100, rss['iterations'])}, {rss['at_end']:.0f} MB at the end ({100 * rss['growth']:+.1f}%)"
        )

    if args.json_path:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=2, sort_keys=True))
        console.print(f"figures written to {path}")
    return 0


# ----------------------------------------------------------------------------------- --settings full

FULL_SETTINGS = {"embed_dim": 64, "hidden_dim": 128, "dropout": 0.2, "meta_batch": 32, "K": 5, "Q": 10, "inner_steps": 5, "inner_lr": 0.01}
# The engine before the compiled kernel, today's. (The first one, batched-v1, is gone: its figures
# stay in results/reference/perf-full.json, which `bench project --speedup-from` reads.)
FULL_ENGINES = ("batched-segmented", "batched")


def full_engine(name: str):
    """"batched": the registry's engine (meta/engines.py); "batched-segmented":
    meta.batched.SegmentedBatchedMAML (SegmentedGRU, no compiled kernel)."""
    from meta.batched import SegmentedBatchedMAML
    from meta.engines import get_engine

    if name == "batched-segmented":
        return SegmentedBatchedMAML()
    return get_engine(name)


def validation_seconds(engine, maml, episodes, inner_steps: int) -> float:
    """One validation as meta/maml.py runs it: few-shot scores chunk by chunk (tasks built from the
    episode rows, padding masked), then mean Acc@1."""
    from baselines.model import mask_padding
    from baselines.simple import CHUNK
    from meta.maml import mean_acc1
    from meta.tasks import tasks_from_episodes

    start = time.perf_counter()
    chunks = []
    for first in range(0, len(episodes), CHUNK):
        tasks = tasks_from_episodes(episodes.iloc[first : first + CHUNK])
        chunks.append(mask_padding(engine.query_scores(maml, tasks, inner_steps)).cpu())
    mean_acc1(chunks, episodes)
    return time.perf_counter() - start


def perf_full(args: argparse.Namespace) -> int:
    """`bench perf --settings full`: the batched engine against batched-segmented at the `full` grid's settings."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from baselines.model import GRURecommender, ModelConfig
    from bench.data.dataset import open_dataset
    from meta.algorithms import wrap
    from meta.fused import kernel_status
    from meta.tasks import tasks_from_episodes

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    if args.device != "cpu":
        raise BenchError("--settings full measures the CPU engines", "drop --device, or use --settings synthetic")
    try:
        counts = [int(part) for part in args.thread_counts.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise BenchError(f"--thread-counts {args.thread_counts!r} is not a list of thread counts", "give e.g. 1,2")
    if args.repeats < 1 or args.train_iterations < 1:
        raise BenchError("--repeats and --train-iterations must be at least 1", "give positive counts")
    s = FULL_SETTINGS
    dataset = open_dataset(args.dataset, args.data_dir)
    train = dataset.episodes("train", s["K"], s["Q"])
    val = dataset.episodes("val", s["K"], s["Q"])
    if args.val_episodes:
        val = val.iloc[: args.val_episodes]
    rng = np.random.default_rng(args.seed)
    iterations = args.train_iterations * args.repeats
    batches = [tasks_from_episodes(train.iloc[rng.choice(len(train), size=min(s["meta_batch"], len(train)), replace=False)]) for _ in range(iterations + 1)]
    V, E, H = dataset.n_items + 1, s["embed_dim"], s["hidden_dim"]
    flops = [sum(task_flops(t, E, H, V, s["inner_steps"], True) for t in batch) for batch in batches[1:]]
    capped = sum(1 for batch in batches[1:] if max(int(t.support_lengths.max()) for t in batch) >= MAX_PREFIX) / iterations
    console.print(
        f"bench perf --settings full: dataset {args.dataset} ({dataset.n_items} items; {len(train)} train episodes, {len(val)} val episodes), "
        f"E={E}, H={H}, dropout {s['dropout']}, meta-batch {s['meta_batch']}, K={s['K']}, Q={s['Q']}, {s['inner_steps']} inner steps, first-order; "
        f"{iterations} sampled meta-batches ({100 * capped:.0f}% reach the {MAX_PREFIX}-course prefix cap), {statistics.mean(flops) / 1e9:.2f} useful GFLOP each; "
        f"engines {', '.join(FULL_ENGINES)} alternating, {args.repeats} rounds of {args.train_iterations} meta-iterations + 1 validation; torch {torch.__version__}"
    )
    figures: dict = {
        "dataset": args.dataset,
        "n_items": dataset.n_items,
        "settings": dict(s),
        "val_episodes": len(val),
        "flops_per_meta_iteration": statistics.mean(flops),
        "capped_share": capped,
        "repeats": args.repeats,
        "train_iterations": args.train_iterations,
        "threads": {},
    }
    for threads in counts:
        configure_threads(threads)
        state = {}
        for name in FULL_ENGINES:
            torch.manual_seed(args.seed)  # the same initial weights for both engines
            model = GRURecommender(ModelConfig(dataset.n_items, E, H, 1, s["dropout"])).train()
            maml = wrap("maml", model, s["inner_lr"], False)
            engine = full_engine(name)
            optimizer = torch.optim.Adam(maml.parameters(), lr=1e-3)
            train_step(engine, maml, optimizer, batches[0], s["inner_steps"])  # warm-up
            validation_seconds(engine, maml, val.iloc[:8], s["inner_steps"])
            state[name] = {"engine": engine, "maml": maml, "optimizer": optimizer, "iteration_s": [], "validation_s": [], "gflops": []}
        matmul = []
        for round_index in range(args.repeats):
            part = slice(1 + round_index * args.train_iterations, 1 + (round_index + 1) * args.train_iterations)
            round_flops = sum(flops[part.start - 1 : part.stop - 1])
            for name in FULL_ENGINES:
                entry = state[name]
                start = time.perf_counter()
                for tasks in batches[part]:
                    train_step(entry["engine"], entry["maml"], entry["optimizer"], tasks, s["inner_steps"])
                seconds = time.perf_counter() - start
                entry["iteration_s"].append(seconds / args.train_iterations)
                entry["gflops"].append(round_flops / seconds / 1e9)
                entry["validation_s"].append(validation_seconds(entry["engine"], entry["maml"], val, s["inner_steps"]))
                console.print(
                    f"  {threads} thread(s), round {round_index + 1}/{args.repeats} {name:>10}: {entry['iteration_s'][-1]:.3f} s/meta-iteration, "
                    f"{entry['validation_s'][-1]:.2f} s/validation"
                )
            matmul.append(matmul_gflops("cpu"))
        rate = statistics.median(matmul)
        engines = {}
        for name in FULL_ENGINES:
            entry = state[name]
            gflops = statistics.median(entry["gflops"])
            engines[name] = {
                "seconds_per_iteration": statistics.median(entry["iteration_s"]),
                "seconds_per_validation": statistics.median(entry["validation_s"]),
                "gflops": gflops,
                "matmul_share": gflops / rate,
                "rounds": {"seconds_per_iteration": entry["iteration_s"], "seconds_per_validation": entry["validation_s"]},
            }
        middle, new = (engines[name] for name in FULL_ENGINES)
        kernel_ratios = {"iteration": middle["seconds_per_iteration"] / new["seconds_per_iteration"], "validation": middle["seconds_per_validation"] / new["seconds_per_validation"]}
        figures["threads"][str(threads)] = {"matmul_gflops": rate, "engines": engines, "kernel_ratios": kernel_ratios, "kernel": kernel_status()}
        table = Table(title=f"bench perf --settings full ({args.dataset}, {threads} thread(s); medians of {args.repeats} alternating rounds)")
        for column in ("engine", "s / meta-iteration", f"s / validation ({len(val)} val eps)", "train GFLOP/s", "% of matmul"):
            table.add_column(column, justify="left" if column == "engine" else "right")
        for name, row in engines.items():
            table.add_row(name, f"{row['seconds_per_iteration']:.3f}", f"{row['seconds_per_validation']:.2f}", f"{row['gflops']:.1f}", f"{100 * row['matmul_share']:.1f}%")
        console.print(table)
        console.print(
            f"full, {threads} thread(s): batched/batched-segmented speed-up {kernel_ratios['iteration']:.2f}x per meta-iteration, "
            f"{kernel_ratios['validation']:.2f}x per validation; matmul 1024^3 {rate:.1f} GFLOP/s; "
            f"batched's GRU: {kernel_status()}"
        )
    first = figures["threads"][str(counts[0])]
    figures["engines"], figures["matmul_gflops"], figures["thread_count"] = first["engines"], first["matmul_gflops"], counts[0]
    figures["kernel_ratios"], figures["kernel"] = first["kernel_ratios"], first["kernel"]
    if args.json_path:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"full": figures}, indent=2, sort_keys=True))
        console.print(f"figures written to {path} (full.engines: {counts[0]} thread(s); full.threads.<n>: each thread count)")
    return 0
