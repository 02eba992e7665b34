"""`python -m bench perf-baselines --dataset NAME`: the baselines' costs on one dataset (a benchmark, not a test).

Prints, per non-neural baseline: fit seconds (train counts or sessions, then the support weight's
choice on val) and the seconds to score the first ``--episodes`` test episodes in each mode; and
SASRec's and GRU4Rec's training throughput (train pairs per second, the same length-bucketed
batches of the same pairs, alternating rounds, medians) on the threads given.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from baselines.gru4rec import GRU4REC_DEFAULTS, PairTensors, length_batches, model_config
from baselines.model import GRURecommender
from baselines.sasrec import SASREC_DEFAULTS, SASRec, sasrec_config
from bench.data.dataset import open_dataset
from bench.methods.registry import METHODS, RunContext, evaluate_method
from bench.core.threads import configure_threads


def time_memory_methods(dataset, names, episodes: int, K: int, Q: int) -> None:
    test = dataset.episodes("test", K, Q).iloc[:episodes]
    for name in names:
        spec = METHODS[name]
        ctx = spec.prepare(RunContext(dataset, seed=0, K=K, Q=Q))
        method = spec.build(ctx)
        start, cpu = time.perf_counter(), time.process_time()
        info = method.fit(ctx)
        line = f"{name:6s} fit+val-choice {time.perf_counter() - start:5.1f} s wall {time.process_time() - cpu:5.1f} s cpu (w={info['support_weight']:g})"
        for mode in spec.modes:
            start, cpu = time.perf_counter(), time.process_time()
            rows = evaluate_method(method, test, mode)
            acc = np.mean([row["acc@1"] for row in rows])
            line += f" | {mode} {len(test)} episodes {time.perf_counter() - start:5.1f} s wall {time.process_time() - cpu:5.1f} s cpu, Acc@1 {acc:.4f}"
        print(line, flush=True)


def time_training(dataset, batches: int, rounds: int) -> None:
    """Train pairs/s of SASRec and GRU4Rec (defaults) over the same ``batches`` batches, alternating."""
    train = PairTensors(dataset.pairs("train"), int(GRU4REC_DEFAULTS["max_prefix"]))
    order = length_batches(train.lengths, int(GRU4REC_DEFAULTS["batch_size"]), torch.Generator().manual_seed(0))[:batches]
    n_pairs = sum(len(index) for index in order)
    torch.manual_seed(0)
    models = {
        "sasrec": SASRec(sasrec_config(dataset.n_items, SASREC_DEFAULTS)),
        "gru4rec": GRURecommender(model_config(dataset.n_items, GRU4REC_DEFAULTS)),
    }
    rates: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            model.train()
            start = time.process_time()  # CPU seconds: the machine may be shared
            for index in order:
                prefixes, lengths, labels = train.batch(index, "cpu")
                optimizer.zero_grad()
                F.cross_entropy(model(prefixes, lengths), labels).backward()
                optimizer.step()
            rates[name].append(n_pairs / (time.process_time() - start))
    for name, values in rates.items():
        print(f"{name:8s} training {statistics.median(values):8.0f} train pairs per CPU second (median of {rounds}, {batches} batches of 256, {torch.get_num_threads()} thread(s))")
    ratio = statistics.median(rates["sasrec"]) / statistics.median(rates["gru4rec"])
    epoch_pairs = len(train)
    print(f"sasrec/gru4rec throughput {ratio:.2f}; one epoch of {epoch_pairs:,} train pairs: "
          f"sasrec {epoch_pairs / statistics.median(rates['sasrec']):.0f} s, gru4rec {epoch_pairs / statistics.median(rates['gru4rec']):.0f} s")


def perf_baselines_command(args) -> int:
    configure_threads(args.threads)
    dataset = open_dataset(args.dataset, args.data_dir)
    if args.methods:
        time_memory_methods(dataset, args.methods.split(","), args.episodes, args.K, args.Q)
    if args.batches > 0:
        time_training(dataset, args.batches, args.rounds)
    return 0
