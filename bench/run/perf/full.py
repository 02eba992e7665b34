"""`python -m bench perf full`: the batched engine at the `full` grid's settings on a dataset's real
train episodes: today's engine ("batched", its one-layer GRU on the compiled kernel of
baselines/fused.py) against the one before the kernel ("batched-segmented", SegmentedGRU), alternating
in one process, at each of ``thread_counts``: seconds per meta-iteration, per validation (the
dataset's val episodes, few-shot, scored in chunks as meta/maml.py scores them) and the share of
the matmul rate. (The first batched engine, batched-v1, is gone: its figures stay in
results/reference/perf-full.json, which `bench project --speedup-from` reads.)
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from bench.core.errors import BenchError
from bench.core.threads import configure_threads
from bench.run.perf.common import MAX_PREFIX, Progress, matmul_gflops, no_progress, task_flops, train_step

FULL_SETTINGS = {"embed_dim": 64, "hidden_dim": 128, "dropout": 0.2, "meta_batch": 32, "K": 5, "Q": 10, "inner_steps": 5, "inner_lr": 0.01}
FULL_ENGINES = ("batched-segmented", "batched")  # the engine before the compiled kernel, today's


@dataclass
class FullSettings:
    """What `bench perf full` measures, and on what (its options, one field each)."""

    dataset: str = "xuetangx-synth"
    data_dir: str | None = None
    thread_counts: tuple[int, ...] = (1, 2)  # measured one after the other
    repeats: int = 3  # alternating rounds; medians over them
    train_iterations: int = 2  # meta-iterations timed per round and engine
    val_episodes: int = 0  # cap on val episodes per validation (0: all)
    seed: int = 0


def parse_thread_counts(text: str) -> tuple[int, ...]:
    """``1,2`` as (1, 2); anything else (or a count below 1) is refused in one line."""
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise BenchError(f"--thread-counts {text!r} is not a list of thread counts", "give e.g. 1,2")
    return counts


def full_engine(name: str):
    """ "batched": the registry's engine (meta/engines.py); "batched-segmented":
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


def measure_full(settings: FullSettings, progress: Progress = no_progress) -> dict:
    """The figures of `bench perf full` (the ``--json`` file holds them under "full"). Progress
    events: "start" (the dataset, its episode counts, the settings) before measuring, "round"
    (threads, round, repeats, engine, seconds per meta-iteration and per validation) after each
    engine's round, "threads" (that thread count's figures) after each thread count."""
    import numpy as np

    from baselines.fused import kernel_status
    from baselines.model import GRURecommender, ModelConfig
    from bench.data.dataset import open_dataset
    from meta.algorithms import wrap
    from meta.tasks import tasks_from_episodes

    if not settings.thread_counts or min(settings.thread_counts) < 1:
        raise BenchError(f"thread counts {settings.thread_counts} are not positive", "give e.g. 1,2")
    if settings.repeats < 1 or settings.train_iterations < 1:
        raise BenchError("--repeats and --train-iterations must be at least 1", "give positive counts")
    s = FULL_SETTINGS
    dataset = open_dataset(settings.dataset, settings.data_dir)
    train = dataset.episodes("train", s["K"], s["Q"])
    val = dataset.episodes("val", s["K"], s["Q"])
    if settings.val_episodes:
        val = val.iloc[: settings.val_episodes]
    rng = np.random.default_rng(settings.seed)
    iterations = settings.train_iterations * settings.repeats
    batches = [
        tasks_from_episodes(train.iloc[rng.choice(len(train), size=min(s["meta_batch"], len(train)), replace=False)]) for _ in range(iterations + 1)
    ]
    V, E, H = dataset.n_items + 1, s["embed_dim"], s["hidden_dim"]
    flops = [sum(task_flops(t, E, H, V, s["inner_steps"], True) for t in batch) for batch in batches[1:]]
    capped = sum(1 for batch in batches[1:] if max(int(t.support_lengths.max()) for t in batch) >= MAX_PREFIX) / iterations
    figures: dict = {
        "dataset": settings.dataset,
        "n_items": dataset.n_items,
        "settings": dict(s),
        "train_episodes": len(train),
        "val_episodes": len(val),
        "flops_per_meta_iteration": statistics.mean(flops),
        "capped_share": capped,
        "max_prefix": MAX_PREFIX,
        "repeats": settings.repeats,
        "train_iterations": settings.train_iterations,
        "engine_names": list(FULL_ENGINES),
        "torch": torch.__version__,
        "threads": {},
    }
    progress("start", dict(figures))
    for threads in settings.thread_counts:
        configure_threads(threads)
        state = {}
        for name in FULL_ENGINES:
            torch.manual_seed(settings.seed)  # the same initial weights for every engine
            model = GRURecommender(ModelConfig(dataset.n_items, E, H, 1, s["dropout"])).train()
            maml = wrap("maml", model, s["inner_lr"], False)
            engine = full_engine(name)
            optimizer = torch.optim.Adam(maml.parameters(), lr=1e-3)
            train_step(engine, maml, optimizer, batches[0], s["inner_steps"])  # warm-up
            validation_seconds(engine, maml, val.iloc[:8], s["inner_steps"])
            state[name] = {"engine": engine, "maml": maml, "optimizer": optimizer, "iteration_s": [], "validation_s": [], "gflops": []}
        matmul = []
        for round_index in range(settings.repeats):
            part = slice(1 + round_index * settings.train_iterations, 1 + (round_index + 1) * settings.train_iterations)
            round_flops = sum(flops[part.start - 1 : part.stop - 1])
            for name in FULL_ENGINES:
                entry = state[name]
                start = time.perf_counter()
                for tasks in batches[part]:
                    train_step(entry["engine"], entry["maml"], entry["optimizer"], tasks, s["inner_steps"])
                seconds = time.perf_counter() - start
                entry["iteration_s"].append(seconds / settings.train_iterations)
                entry["gflops"].append(round_flops / seconds / 1e9)
                entry["validation_s"].append(validation_seconds(entry["engine"], entry["maml"], val, s["inner_steps"]))
                progress(
                    "round",
                    {
                        "threads": threads,
                        "round": round_index + 1,
                        "repeats": settings.repeats,
                        "engine": name,
                        "seconds_per_iteration": entry["iteration_s"][-1],
                        "seconds_per_validation": entry["validation_s"][-1],
                    },
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
        before, today = (engines[name] for name in FULL_ENGINES)
        kernel_ratios = {
            "iteration": before["seconds_per_iteration"] / today["seconds_per_iteration"],
            "validation": before["seconds_per_validation"] / today["seconds_per_validation"],
        }
        figures["threads"][str(threads)] = {"matmul_gflops": rate, "engines": engines, "kernel_ratios": kernel_ratios, "kernel": kernel_status()}
        progress("threads", {"threads": threads, **figures["threads"][str(threads)]})
    first = figures["threads"][str(settings.thread_counts[0])]
    figures["engines"], figures["matmul_gflops"], figures["thread_count"] = first["engines"], first["matmul_gflops"], settings.thread_counts[0]
    figures["kernel_ratios"], figures["kernel"] = first["kernel_ratios"], first["kernel"]
    return figures
