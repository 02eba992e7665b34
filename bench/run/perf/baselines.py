"""`python -m bench perf baselines --dataset NAME`: the baselines' costs on one dataset.

Per non-neural baseline: fit seconds (train counts or sessions, then the support weight's choice on
val) and the seconds to score the first ``episodes`` test episodes in each mode; and SASRec's and
GRU4Rec's training throughput (train pairs per CPU second, the same length-bucketed batches of the
same pairs, alternating rounds, medians) on the threads given; GRU4Rec on torch's packed nn.GRU and on
the compiled kernel its training uses (baselines/fused_forward.py), side by side, with their ratio.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from baselines.fused import kernel_status
from baselines.fused_forward import kernel_fits, training_forward
from baselines.gru4rec import GRU4REC_DEFAULTS, PairTensors, length_batches, model_config
from baselines.model import GRURecommender
from baselines.sasrec import SASREC_DEFAULTS, SASRec, sasrec_config
from bench.core.threads import configure_threads
from bench.data.dataset import open_dataset
from bench.methods.registry import FEW_SHOT, METHODS, RunContext, evaluate_method
from bench.run.perf.common import Progress, no_progress


def memory_methods() -> tuple[str, ...]:
    """The registry's non-neural methods that add the support pairs to what they know (few-shot, no
    training budget, no init, no pre-trained model): what `perf baselines` times by default."""
    return tuple(
        name for name, spec in METHODS.items() if FEW_SHOT in spec.modes and spec.budget is None and not spec.uses_init and spec.pretrains is None
    )


@dataclass
class BaselinesSettings:
    """What `bench perf baselines` measures, and on what (its options, one field each)."""

    dataset: str
    data_dir: str | None = None
    threads: int = 1
    episodes: int = 313  # test episodes scored (XuetangX has 313)
    methods: tuple[str, ...] = field(default_factory=memory_methods)
    batches: int = 30  # training batches timed per model and round; 0 skips
    rounds: int = 3
    K: int = 5
    Q: int = 10


def time_memory_methods(dataset, names, episodes: int, K: int, Q: int, progress: Progress = no_progress) -> list[dict]:
    """Per method: fit seconds (wall, CPU), the support weight chosen, and per mode the seconds to
    score the first ``episodes`` test episodes and their mean Acc@1. A "method" event after each."""
    test = dataset.episodes("test", K, Q).iloc[:episodes]
    results = []
    for name in names:
        spec = METHODS[name]
        ctx = spec.prepare(RunContext(dataset, seed=0, K=K, Q=Q))
        method = spec.build(ctx)
        start, cpu = time.perf_counter(), time.process_time()
        info = method.fit(ctx)
        row = {
            "method": name,
            "fit_wall_s": time.perf_counter() - start,
            "fit_cpu_s": time.process_time() - cpu,
            "support_weight": info["support_weight"],
            "modes": {},
        }
        for mode in spec.modes:
            start, cpu = time.perf_counter(), time.process_time()
            rows = evaluate_method(method, test, mode)
            row["modes"][mode] = {
                "episodes": len(test),
                "wall_s": time.perf_counter() - start,
                "cpu_s": time.process_time() - cpu,
                "acc@1": float(np.mean([r["acc@1"] for r in rows])),
            }
        progress("method", row)
        results.append(row)
    return results


def time_training(dataset, batches: int, rounds: int) -> dict:
    """Train pairs per CPU second of SASRec and GRU4Rec (defaults) over the same ``batches`` batches,
    alternating ``rounds`` times: per model the rates and their median, and one epoch's pairs.
    GRU4Rec twice, same initial weights: "gru4rec" on torch's packed nn.GRU (``model(...)``),
    "gru4rec-fused" on the forward its training takes (baselines/fused_forward.py: the compiled
    kernel, or torch's path where it cannot build: ``gru4rec_kernel`` says which); their ratio is
    ``gru4rec_speedup`` (medians)."""
    train = PairTensors(dataset.pairs("train"), int(GRU4REC_DEFAULTS["max_prefix"]))
    order = length_batches(train.lengths, int(GRU4REC_DEFAULTS["batch_size"]), torch.Generator().manual_seed(0))[:batches]
    n_pairs = sum(len(index) for index in order)
    torch.manual_seed(0)
    gru4rec = GRURecommender(model_config(dataset.n_items, GRU4REC_DEFAULTS))
    fused = copy.deepcopy(gru4rec)
    models = {"sasrec": SASRec(sasrec_config(dataset.n_items, SASREC_DEFAULTS)), "gru4rec": gru4rec, "gru4rec-fused": fused}
    forwards = {"sasrec": models["sasrec"], "gru4rec": gru4rec, "gru4rec-fused": training_forward(fused)}
    rates: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            model.train()
            forward = forwards[name]
            start = time.process_time()  # CPU seconds: the machine may be shared
            for index in order:
                prefixes, lengths, labels = train.batch(index, "cpu")
                optimizer.zero_grad()
                F.cross_entropy(forward(prefixes, lengths), labels).backward()
                optimizer.step()
            rates[name].append(n_pairs / (time.process_time() - start))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "batches": len(order),
        "batch_size": int(GRU4REC_DEFAULTS["batch_size"]),
        "rounds": rounds,
        "threads": torch.get_num_threads(),
        "epoch_pairs": len(train),
        "models": {name: {"pairs_per_cpu_s": medians[name], "rounds": values} for name, values in rates.items()},
        "gru4rec_kernel": "fused C++ kernel" if kernel_fits(fused) else kernel_status(),
        "gru4rec_speedup": medians["gru4rec-fused"] / medians["gru4rec"],
    }


def measure_baselines(settings: BaselinesSettings, progress: Progress = no_progress) -> dict:
    """The figures of `bench perf baselines`: {"methods": [...], "training": {...} or None}."""
    configure_threads(settings.threads)
    dataset = open_dataset(settings.dataset, settings.data_dir)
    figures: dict = {"dataset": settings.dataset, "methods": [], "training": None}
    if settings.methods:
        figures["methods"] = time_memory_methods(dataset, settings.methods, settings.episodes, settings.K, settings.Q, progress)
    if settings.batches > 0:
        figures["training"] = time_training(dataset, settings.batches, settings.rounds)
    return figures
