"""`python -m bench perf engines`: inner-loop engine throughput on generated episodes.

In one process, on the same generated episodes and config, engines measured in alternation
(A, B, C, A, B, C, ...), MAML on each engine and the other arms (``arms``: ANIL, Meta-SGD) on the
engines that implement them, medians reported: meta-training tasks/s, few-shot evaluation
episodes/s, GRU4Rec training pairs/s, sampled peak RSS; the ratios between engines; achieved
GFLOP/s (useful first-order FLOPs counted analytically from the true prefix lengths) next to a plain
matmul's GFLOP/s on the same threads; RSS over a long loop.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass, field

import torch

from bench.core.errors import BenchError
from bench.core.threads import configure_threads
from bench.run.perf.common import (
    MAX_PREFIX,
    MEAN_LENGTH,
    Progress,
    current_rss_mb,
    matmul_gflops,
    no_progress,
    peak_rss_mb,
    sync_device,
    synthetic_tasks,
    task_flops,
    train_step,
)

DEFAULT_ENGINES = "per-task,batched,notebook"
DEFAULT_ARMS = "anil,metasgd"  # measured beside MAML on each of the engines that implements them
CONFIG_KEYS = (
    "meta_batch",
    "embed_dim",
    "hidden_dim",
    "items",
    "K",
    "Q",
    "inner_steps",
    "repeats",
    "train_iterations",
    "eval_episodes",
    "mean_length",
    "seed",
)


@dataclass
class EnginesSettings:
    """What `bench perf engines` measures, and on what (its options, one field each)."""

    engines: list[str] = field(default_factory=lambda: DEFAULT_ENGINES.split(","))
    arms: list[str] = field(default_factory=lambda: DEFAULT_ARMS.split(","))
    threads: int | None = None  # torch threads (None: $BENCH_THREADS or all cores)
    device: str = "cpu"
    meta_batch: int = 32
    embed_dim: int = 64
    hidden_dim: int = 64
    items: int = 1518  # real items (the vocabulary adds padding id 0)
    K: int = 5
    Q: int = 10
    inner_steps: int = 5
    repeats: int = 3  # alternating rounds; medians over them
    train_iterations: int = 2  # meta-iterations timed per round and engine
    eval_episodes: int = 313  # few-shot episodes scored per round and engine
    rss_iterations: int = 150  # long loop (fastest engine) for RSS growth; 0 skips
    mean_length: float = MEAN_LENGTH
    seed: int = 0


def check_settings(settings: EnginesSettings) -> None:
    """Refuse unknown engines or arms, counts below 1 and a CUDA device that is not there."""
    from meta.algorithms import ALGORITHMS
    from meta.engines import ENGINES

    if settings.device == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda but no CUDA device is visible", "use --device cpu")
    unknown = [name for name in settings.engines if name not in ENGINES]
    if unknown or not settings.engines:
        raise BenchError(f"unknown engine(s) {unknown}", f"choose from {', '.join(ENGINES)}")
    unknown = [name for name in settings.arms if name not in ALGORITHMS or name == "maml"]
    if unknown:
        raise BenchError(f"unknown arm(s) {unknown}", f"choose from {', '.join(a for a in ALGORITHMS if a != 'maml')} (MAML is always measured)")
    if min(settings.repeats, settings.meta_batch, settings.eval_episodes, settings.train_iterations) < 1:
        raise BenchError("--repeats, --meta-batch, --eval-episodes and --train-iterations must be at least 1", "give positive counts")


def build_maml(settings: EnginesSettings, seed: int, algorithm: str = "maml"):
    """The GRURecommender wrapped by ``algorithm`` (meta/algorithms.py: maml, anil, metasgd), inner lr 0.01."""
    from baselines.model import GRURecommender, ModelConfig
    from meta.algorithms import wrap

    torch.manual_seed(seed)
    model = GRURecommender(ModelConfig(settings.items, settings.embed_dim, settings.hidden_dim, 1, 0.2)).to(settings.device)
    model.train()
    return wrap(algorithm, model, 0.01, False)


def time_training(engine, maml, optimizer, batches, settings: EnginesSettings) -> float:
    """Seconds for one meta-iteration per batch of ``batches``."""
    sync_device(settings.device)
    start = time.perf_counter()
    for tasks in batches:
        train_step(engine, maml, optimizer, tasks, settings.inner_steps)
    sync_device(settings.device)
    return time.perf_counter() - start


def time_evaluation(engine, maml, tasks, settings: EnginesSettings, chunk: int = 64) -> float:
    """Seconds to score ``tasks`` few-shot, ``chunk`` at a time."""
    sync_device(settings.device)
    start = time.perf_counter()
    for first in range(0, len(tasks), chunk):
        engine.query_scores(maml, tasks[first : first + chunk], settings.inner_steps)
    sync_device(settings.device)
    return time.perf_counter() - start


def gru4rec_pairs_per_second(settings: EnginesSettings, n_batches: int = 16) -> float:
    """Pairs/s of GRU4Rec training (baselines.gru4rec.train_gru4rec, one epoch on generated pairs)."""
    import pandas as pd

    from baselines.gru4rec import train_gru4rec

    generator = torch.Generator().manual_seed(settings.seed + 1)
    geometric = torch.distributions.Geometric(probs=torch.tensor(1.0 / max(settings.mean_length, 1.0)))

    def pairs(count: int) -> pd.DataFrame:
        lengths = (1 + geometric.sample((count,)).long()).clamp(max=MAX_PREFIX).tolist()
        prefixes = [torch.randint(1, settings.items + 1, (n,), generator=generator).tolist() for n in lengths]
        labels = torch.randint(1, settings.items + 1, (count,), generator=generator).tolist()
        return pd.DataFrame({"user_id": list(range(count)), "prefix": prefixes, "label": labels})

    splits = {"train": pairs(256 * n_batches), "val": pairs(256)}

    class GeneratedPairs:  # the two things train_gru4rec reads from a dataset
        n_items = settings.items

        def pairs(self, split: str) -> pd.DataFrame:
            return splits[split]

    params = {"embed_dim": settings.embed_dim, "hidden_dim": settings.hidden_dim, "n_layers": 1, "dropout": 0.2, "batch_size": 256, "max_epochs": 1}
    sync_device(settings.device)
    start = time.perf_counter()
    _, info = train_gru4rec(GeneratedPairs(), params, settings.seed, device=settings.device)
    sync_device(settings.device)
    return info["n_train_pairs"] / (time.perf_counter() - start)


def rss_over_long_loop(engine, settings: EnginesSettings) -> dict:
    """RSS (MB) at iteration 100 and at the end of ``rss_iterations`` meta-iterations (fresh batches)."""
    maml = build_maml(settings, settings.seed)
    optimizer = torch.optim.Adam(maml.parameters(), lr=1e-3)
    pool = synthetic_tasks(8 * settings.meta_batch, settings.K, settings.Q, settings.items, settings.seed + 7, settings.device, settings.mean_length)
    samples = {}
    generator = torch.Generator().manual_seed(settings.seed)
    start = time.perf_counter()
    for iteration in range(1, settings.rss_iterations + 1):
        pick = torch.randperm(len(pool), generator=generator)[: settings.meta_batch].tolist()
        train_step(engine, maml, optimizer, [pool[i] for i in pick], settings.inner_steps)
        if iteration == min(100, settings.rss_iterations):
            samples["at_100"] = current_rss_mb()
    samples["at_end"] = current_rss_mb()
    samples["iterations"] = settings.rss_iterations
    samples["growth"] = samples["at_end"] / samples["at_100"] - 1
    samples["seconds"] = time.perf_counter() - start
    return samples


def measure_engines(settings: EnginesSettings, progress: Progress = no_progress) -> dict:
    """The figures of `bench perf engines` (the ``--json`` file). Progress events: "start" (device,
    threads, the settings) before measuring, "round" (round, repeats, row label, tasks/s, eval
    episodes/s) after each row's round."""
    from meta.algorithms import get_algorithm
    from meta.engines import get_engine

    check_settings(settings)
    s = settings
    threads = configure_threads(s.threads)
    device_name = torch.cuda.get_device_name() if s.device == "cuda" else f"cpu ({os.cpu_count()} cores visible)"
    progress("start", {"device": s.device, "device_name": device_name, "threads": threads, "torch": torch.__version__, "settings": asdict(s)})

    V, E, H = s.items + 1, s.embed_dim, s.hidden_dim
    train_batches = [
        synthetic_tasks(s.meta_batch, s.K, s.Q, s.items, s.seed * 1000 + b, s.device, s.mean_length) for b in range(s.train_iterations * s.repeats)
    ]
    eval_tasks = synthetic_tasks(s.eval_episodes, s.K, s.Q, s.items, s.seed * 1000 + 999, s.device, s.mean_length)
    train_flops = [sum(task_flops(t, E, H, V, s.inner_steps, True) for t in batch) for batch in train_batches]
    eval_flops = sum(task_flops(t, E, H, V, s.inner_steps, False) for t in eval_tasks)

    # Rows: MAML on every engine (named by the engine), then each arm on the engines that implement it.
    rows = [(name, "maml", name) for name in s.engines]
    rows += [(f"{arm} ({name})", arm, name) for arm in s.arms for name in s.engines if name in get_algorithm(arm).engines]
    state = {
        label: {"engine": get_engine(name), "train_s": [], "eval_s": [], "train_gflops": [], "eval_gflops": [], "rss_mb": 0.0}
        for label, _, name in rows
    }
    models = {}
    for label, algorithm, _ in rows:
        maml = build_maml(s, s.seed, algorithm)  # same initial weights for every row
        models[label] = (maml, torch.optim.Adam(maml.parameters(), lr=1e-3))
        time_training(state[label]["engine"], *models[label], train_batches[:1], s)  # warm-up
    pairs_per_s: list[float] = []
    matmul: list[float] = []
    for round_index in range(s.repeats):
        part = slice(round_index * s.train_iterations, (round_index + 1) * s.train_iterations)
        batches, flops = train_batches[part], sum(train_flops[part])
        for label, _, _ in rows:
            entry, (maml, optimizer) = state[label], models[label]
            seconds = time_training(entry["engine"], maml, optimizer, batches, s)
            entry["train_s"].append(seconds / (len(batches) * s.meta_batch))
            entry["train_gflops"].append(flops / seconds / 1e9)
            seconds = time_evaluation(entry["engine"], maml, eval_tasks, s)
            entry["eval_s"].append(seconds / len(eval_tasks))
            entry["eval_gflops"].append(eval_flops / seconds / 1e9)
            entry["rss_mb"] = max(entry["rss_mb"], current_rss_mb())
            progress(
                "round",
                {
                    "round": round_index + 1,
                    "repeats": s.repeats,
                    "label": label,
                    "tasks_per_s": 1 / entry["train_s"][-1],
                    "eval_episodes_per_s": 1 / entry["eval_s"][-1],
                },
            )
        pairs_per_s.append(gru4rec_pairs_per_second(s))
        matmul.append(matmul_gflops(s.device))

    figures: dict = {
        "device": s.device,
        "device_name": device_name,
        "threads": threads,
        "torch": torch.__version__,
        "config": {key: getattr(s, key) for key in CONFIG_KEYS},
        "flops_per_meta_iteration": statistics.mean(train_flops),
        "matmul_gflops": statistics.median(matmul),
        "gru4rec_pairs_per_s": statistics.median(pairs_per_s),
        "engines": {},  # MAML per engine
        "arms": {},  # the other algorithms, "arm (engine)"; GFLOP/s there count MAML's FLOPs (not theirs)
    }
    for label, algorithm, _ in rows:
        entry = state[label]
        figures["engines" if algorithm == "maml" else "arms"][label] = {
            "train_tasks_per_s": 1 / statistics.median(entry["train_s"]),
            "meta_iteration_s": statistics.median(entry["train_s"]) * s.meta_batch,
            "eval_episodes_per_s": 1 / statistics.median(entry["eval_s"]),
            "eval_313_s": statistics.median(entry["eval_s"]) * 313,
            "train_gflops": statistics.median(entry["train_gflops"]),
            "eval_gflops": statistics.median(entry["eval_gflops"]),
            "rss_mb": entry["rss_mb"],
        }
    figures["peak_rss_mb"] = peak_rss_mb()
    figures["ratios"] = {
        f"{a}/{b}": {
            "train": figures["engines"][a]["train_tasks_per_s"] / figures["engines"][b]["train_tasks_per_s"],
            "eval": figures["engines"][a]["eval_episodes_per_s"] / figures["engines"][b]["eval_episodes_per_s"],
        }
        for a in s.engines
        for b in s.engines
        if a != b
    }
    for label, _, engine in rows[len(s.engines) :]:  # each arm against MAML on the same engine
        arm, maml_row = figures["arms"][label], figures["engines"][engine]
        arm["engine"] = engine
        arm["vs_maml_same_engine"] = {
            "meta_iteration": arm["meta_iteration_s"] / maml_row["meta_iteration_s"],
            "eval": maml_row["eval_episodes_per_s"] / arm["eval_episodes_per_s"],
        }
    if s.rss_iterations > 0:
        fastest = max(s.engines, key=lambda name: figures["engines"][name]["train_tasks_per_s"])
        figures["rss_long_loop"] = {**rss_over_long_loop(state[fastest]["engine"], s), "engine": fastest}
    return figures
