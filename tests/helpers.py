"""Helpers shared by several test files, grouped by topic. A test file never imports from another test
file (tests/test_habits.py checks it): what two of them share lives here, or as a fixture in conftest.py."""

from __future__ import annotations

import json
from pathlib import Path

import learn2learn as l2l
import numpy as np
import pandas as pd
import pytest
import torch

from baselines.batching import pad_prefixes
from baselines.model import GRURecommender, ModelConfig, config_from_state_dict, read_checkpoint
from bench.commands.cli import main
from bench.data.diagnostics import XUETANGX_BANDS
from bench.methods.registry import METHODS, RunContext
from bench.run import execute
from meta.tasks import Task
from tests.conftest import SMALL_GRU4REC

# ----------------------------------------------------------------------------------------------
# Importers' inputs: interaction logs, the seed's episode folders, the one error line


BASE = 1_486_000_000  # early February 2017, epoch seconds


def iso_time(t: int) -> str:
    return pd.Timestamp(t, unit="s").strftime("%Y-%m-%dT%H:%M:%S")


def interaction_log(n_users=40, seed=0):
    """A small log: per user several sessions (2 h apart) of 2-6 items, 60 s between events."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        t = BASE + u * 1000
        for s in range(int(rng.integers(3, 8))):
            for _ in range(int(rng.integers(2, 7))):
                rows.append((f"user {u}", f"item-{int(rng.integers(0, 30)):02d}", t, f"s{u}-{s}"))
                t += 60
            t += 7200
    return pd.DataFrame(rows, columns=["user_id:token", "item_id:token", "timestamp:float", "session"])


def error_line(err: str) -> str:
    """The one error line (progress lines may precede it on stderr)."""
    lines = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def no_leftovers(data_dir):
    processed = data_dir / "processed"
    return not processed.exists() or not [p for p in processed.iterdir() if p.name.startswith(".")]


def window_episode(user_id: str, window: list, K: int) -> dict:
    """One episode row in the seed's columns from a window of (prefix, label) pairs: the first K support."""
    return {
        "user_id": user_id,
        "support_prefixes": [p for p, _ in window[:K]],
        "support_labels": [l for _, l in window[:K]],
        "query_prefixes": [p for p, _ in window[K:]],
        "query_labels": [l for _, l in window[K:]],
    }


def tiny_perf_argv(out, rss_iterations: int = 0, *extra: str) -> list[str]:
    """`bench perf engines` on a tiny config (1 thread, 30 items, E=H=8) with ``extra`` options, its figures
    written to ``out`` (the last two arguments)."""
    sizes = {"threads": 1, "items": 30, "embed-dim": 8, "hidden-dim": 8, "meta-batch": 2, "eval-episodes": 3, "repeats": 1}
    sizes |= {"train-iterations": 1, "inner-steps": 1, "rss-iterations": rss_iterations}
    return ["perf", "engines", *(x for key, value in sizes.items() for x in (f"--{key}", str(value))), *extra, "--json", str(out)]


def seed_episodes_folder(root, first_id=0, n_items=20, K=2, Q=3):
    """Episodes as the seed wrote them: ids from ``first_id`` (0 collides with padding), stride-1 windows."""
    rng = np.random.default_rng(5)
    (root / "episodes").mkdir(parents=True)
    (root / "vocab").mkdir()
    course2id = {f"C{c:03d}": first_id + c for c in range(n_items)}
    (root / "vocab" / "course2id.json").write_text(json.dumps(course2id))
    sequences = {}
    for split, users in (("train", 4), ("val", 2), ("test", 2)):
        rows = []
        for u in range(users):
            n = 9 if split == "train" else K + Q
            seq = [
                ([first_id + int(x) for x in rng.integers(0, n_items, size=int(rng.integers(1, 4)))], first_id + int(rng.integers(0, n_items)))
                for _ in range(n)
            ]
            seq[0] = ([first_id], first_id + 1)  # id 0 used as a real course when first_id == 0
            sequences[(split, f"{split}{u}")] = seq
            for start in range(0, n - K - Q + 1):
                window = seq[start : start + K + Q]
                rows.append(window_episode(f"{split}{u}", window, K))
        pd.DataFrame(rows).to_parquet(root / "episodes" / f"episodes_{split}_K{K}_Q{Q}.parquet")
    return sequences


def one_based_seed_folder(root, K=2, Q=3, n_items=20):
    """A seed episodes folder already on ids 1..n_items (nothing to repair), two-course prefixes."""
    rng = np.random.default_rng(5)
    (root / "episodes").mkdir(parents=True)
    (root / "vocab").mkdir()
    (root / "vocab" / "course2id.json").write_text(json.dumps({f"C{c:03d}": c + 1 for c in range(n_items)}))
    for split, users in (("train", 4), ("val", 2), ("test", 2)):
        rows = []
        for u in range(users):
            seq = [([int(x) for x in rng.integers(1, n_items + 1, size=2)], int(rng.integers(1, n_items + 1))) for _ in range(K + Q + 2)]
            for start in range(0, len(seq) - K - Q + 1):
                window = seq[start : start + K + Q]
                rows.append(window_episode(f"{split}{u}", window, K))
        pd.DataFrame(rows).to_parquet(root / "episodes" / f"episodes_{split}_K{K}_Q{Q}.parquet")


# ----------------------------------------------------------------------------------------------
# Meta-learning: random tasks, small MAML models, fitted methods, comparing tensors

TOL = 1e-5
N_ITEMS = 60


def make_tasks(n: int, K: int, Q: int, n_items: int, seed: int, max_len: int = 50) -> list[Task]:
    generator = torch.Generator().manual_seed(seed)

    def prefixes(count: int):
        lengths = torch.randint(1, max_len + 1, (count,), generator=generator)
        lengths[0] = 1  # always a length-1 prefix next to long ones
        padded = torch.zeros(count, int(lengths.max()), dtype=torch.long)
        for row, length in enumerate(lengths.tolist()):
            padded[row, :length] = torch.randint(1, n_items + 1, (length,), generator=generator)
        return padded, lengths

    tasks = []
    for _ in range(n):
        sp, sl = prefixes(K)
        qp, ql = prefixes(Q)
        labels = lambda count: torch.randint(1, n_items + 1, (count,), generator=generator)  # noqa: E731
        tasks.append(Task(sp, sl, labels(K), qp, ql, labels(Q)))
    return tasks


def make_maml(
    seed: int,
    frozen_embedding: bool,
    n_layers: int = 1,
    lr: float = 0.5,
    embed_dim: int = 8,
    hidden_dim: int = 12,
    dropout: float = 0.0,
    repeat: bool = False,
):
    torch.manual_seed(seed)
    model = GRURecommender(ModelConfig(N_ITEMS, embed_dim=embed_dim, hidden_dim=hidden_dim, n_layers=n_layers, dropout=dropout, repeat=repeat))
    with torch.no_grad():  # larger weights than the default init, so the GRU's gates all matter
        for p in model.gru.parameters():
            p.mul_(3.0)
    if repeat:
        spread_repeat_head(model, seed)
    model.embedding.weight.requires_grad_(not frozen_embedding)
    model.train()
    return l2l.algorithms.MAML(model, lr=lr, first_order=True, allow_nograd=frozen_embedding)


def spread_repeat_head(model, seed: int) -> None:
    """A repeat head's tensors moved off their init (recency 0, beta 1), so every one of them matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.repeat.gate.weight.mul_(4.0)
        model.repeat.recency.copy_(torch.randn(model.repeat.recency.shape, generator=generator))
        model.repeat.logit_scale.fill_(1.7)


def grads_of(maml) -> dict[str, torch.Tensor]:
    return {name: (p.grad.clone() if p.grad is not None else None) for name, p in maml.module.named_parameters()}


def assert_close(a, b, what):
    assert a.shape == b.shape, what
    err = float((a - b).detach().abs().max())
    assert err <= TOL, f"{what}: max abs difference {err:.2e}"


def fitted(name, dataset, cache, init=None, seed=0, **params):
    spec = METHODS[name]
    ctx = spec.prepare(RunContext(dataset, seed=seed, params={**SMALL_GRU4REC, **params}, init=init, cache_dir=cache))
    method = spec.build(ctx)
    method.fit(ctx)
    return method


def all_scores(method, episodes, mode) -> torch.Tensor:
    return torch.cat(list(method.score(episodes, mode)))


def random_task(seed: int, n_items: int, K: int = 3, Q: int = 4) -> Task:
    g = torch.Generator().manual_seed(seed)

    def prefixes(n):
        return pad_prefixes([torch.randint(1, n_items + 1, (int(torch.randint(1, 6, (1,), generator=g)),), generator=g).tolist() for _ in range(n)])

    (sp, sl), (qp, ql) = prefixes(K), prefixes(Q)
    return Task(sp, sl, torch.randint(1, n_items + 1, (K,), generator=g), qp, ql, torch.randint(1, n_items + 1, (Q,), generator=g))


# ----------------------------------------------------------------------------------------------
# Leaderboard inputs: per-episode metrics with known shifts, and metrics shaped like the default grid's


class Results:
    """What the leaderboard reads from a store: the run records and their per-episode metrics."""

    def __init__(self, runs, episodes):
        self.runs, self.episodes = runs, episodes


N_EPISODES = 50
POP = "pop_{top}&50%#"  # a cell name full of LaTeX specials

# (cell, mode) -> per-episode shift of every metric from the reference gru4rec:zero-shot
_EP = np.arange(N_EPISODES)
SHIFTS = {
    ("gru4rec", "zero-shot"): np.zeros(N_EPISODES),
    ("gru4rec", "few-shot"): np.where(_EP < 25, 0.011, -0.01),  # ~0 on average: not significant
    ("maml[random]", "zero-shot"): np.where(_EP % 10 == 0, 0.0, 0.2),  # 45 wins, 5 ties
    ("maml[random]", "few-shot"): np.full(N_EPISODES, 0.3),  # 50 wins
    (POP, "zero-shot"): np.full(N_EPISODES, -0.1),  # 50 losses
    (POP, "few-shot"): np.where(_EP < 3, -0.005, 0.0),  # 3 losses, 47 ties: p = 0.25, not significant
}
TRAIN_SECONDS = {"gru4rec": 10.0, "maml[random]": 100.0, POP: 1.0}


def metric_values(cell: str, mode: str, seed: int) -> dict[str, np.ndarray]:
    base = 0.1 + 0.05 * (_EP % 10)
    value = base + SHIFTS[(cell, mode)]
    value = value + (0.01 if seed == 0 else -0.01) * np.where(_EP % 2 == 0, 1.0, -1.0)  # seeds average out
    return {
        "acc@1": value,
        "recall@5": value + 0.1,
        "recall@10": value + 0.2,
        "mrr": value + (0.5 if cell == POP else 0.0),  # sorting by MRR puts POP first
        "ndcg@10": value + 0.05,
    }


def run_hash(cell: str, seed: int) -> str:
    return f"run{list(TRAIN_SECONDS).index(cell)}s{seed}"


def run_record(cell: str, seed: int, dataset: str = "xuetangx-synth") -> dict:
    method, _, init = cell.partition("[")
    return {
        "hash": run_hash(cell, seed),
        "cell": cell,
        "status": "complete",
        "train_seconds": TRAIN_SECONDS[cell] + seed,
        "config": {
            "dataset": dataset,
            "dataset_hash": "d1",
            "method": method,
            "init": init.rstrip("]") or None,
            "seed": seed,
            "K": 5,
            "Q": 10,
            "params": {},
            "engine": None,
        },
    }


def run_episodes(cell: str, seed: int) -> pd.DataFrame:
    frames = []
    for mode in ("zero-shot", "few-shot"):
        frame = pd.DataFrame({"episode": _EP, "user_id": [f"u{i}" for i in _EP], "mode": mode})
        for metric, values in metric_values(cell, mode, seed).items():
            frame[metric] = values
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def shifted_results(cells=tuple(TRAIN_SECONDS), seeds=(0, 1), dataset="xuetangx-synth") -> Results:
    """Complete runs of `cells` whose metrics are the reference's plus SHIFTS (known wins, ties, losses)."""
    runs, frames = [], []
    for cell in cells:
        for seed in seeds:
            record = run_record(cell, seed, dataset)
            frame = run_episodes(cell, seed)
            frame.insert(0, "run", record["hash"])
            for key in ("dataset", "method", "init", "seed", "K", "Q"):
                frame[key] = record["config"][key]
            frame["cell"] = cell
            runs.append(record)
            frames.append(frame)
    return Results(runs, pd.concat(frames, ignore_index=True))


# the default grid's cells and modes (bench/plan/grids/default.toml)
DEFAULT_CELLS = {
    "maml[random]": ("zero-shot", "few-shot"),
    "gru4rec": ("zero-shot",),
    "random": ("zero-shot",),
    "popularity": ("zero-shot",),
    "gru4rec-finetune": ("few-shot",),
    "maml[gru4rec]": ("zero-shot", "few-shot"),
    "maml[gru4rec-frozen-embed]": ("zero-shot", "few-shot"),
}
DEFAULT_GRID_EPISODES = 400
DEFAULT_GRID_SEEDS = (0, 1, 2)


def default_grid_results() -> Results:
    """Per-episode metrics shaped like the default grid's, with 3-digit win/tie/loss counts."""
    rng = np.random.default_rng(0)
    runs, frames = [], []
    n = DEFAULT_GRID_EPISODES
    for i, (cell, modes) in enumerate(DEFAULT_CELLS.items()):
        method, _, init = cell.partition("[")
        for seed in DEFAULT_GRID_SEEDS:
            run = f"r{i}s{seed}"
            runs.append(
                {
                    "hash": run,
                    "cell": cell,
                    "status": "complete",
                    "train_seconds": 12.5 * i + seed,
                    "config": {
                        "dataset": "xuetangx-synth",
                        "dataset_hash": "d1",
                        "method": method,
                        "init": init.rstrip("]") or None,
                        "seed": seed,
                        "K": 5,
                        "Q": 10,
                        "params": {},
                    },
                }
            )
            for j, mode in enumerate(modes):
                level = 0.05 + 0.04 * i + 0.03 * j
                frame = pd.DataFrame({"run": run, "episode": np.arange(n), "user_id": [f"u{e}" for e in range(n)], "mode": mode})
                for k, metric in enumerate(("acc@1", "recall@5", "recall@10", "mrr", "ndcg@10")):
                    frame[metric] = np.clip(rng.normal(level + 0.1 * k, 0.2, n).round(1), 0, 1)  # coarse: many ties
                frame["dataset"], frame["cell"], frame["method"], frame["init"] = "xuetangx-synth", cell, method, init.rstrip("]") or None
                frame["seed"], frame["K"], frame["Q"] = seed, 5, 10
                frames.append(frame)
    return Results(runs, pd.concat(frames, ignore_index=True))


# ----------------------------------------------------------------------------------------------
# Tuning: `bench tune` on the tiny grid (the grid file is conftest's `tune_grid_file` fixture)

TUNED_CELLS = {"gru4rec", "maml[random]", "maml[gru4rec]"}  # random and popularity have no search space


def run_tune(run_data, grid_file, results, trials, *extra):
    return main(["tune", "--grid", str(grid_file), "--data-dir", str(run_data), "--results", str(results), "--trials", str(trials), *extra])


def tuning_studies(results) -> dict:
    """cell label -> (state names, params of each trial) of every study of the grid."""
    optuna = pytest.importorskip("optuna")
    out = {}
    for path in sorted((Path(results) / "tuning" / "tinytune").glob("*.log")):
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
        (name,) = optuna.get_all_study_names(storage)
        study = optuna.load_study(study_name=name, storage=storage)
        out[study.user_attrs["cell"]] = [(t.state.name, t.user_attrs.get("params"), t.value) for t in study.trials]
    return out


def count_computed(monkeypatch) -> list:
    """The hashes of the runs computed from now on (in this process: jobs = 1), in order."""
    computed = []
    compute = execute.compute_run

    def counting(config, *args, **kwargs):
        computed.append(config.hash)
        return compute(config, *args, **kwargs)

    monkeypatch.setattr(execute, "compute_run", counting)
    return computed


# ----------------------------------------------------------------------------------------------
# Test-only helpers moved out of the source (issue 34): nothing in bench/, meta/ or baselines/ uses them


def load_checkpoint(path: str | Path, n_items: int, dropout: float = 0.2) -> GRURecommender:
    """A GRURecommender with weights from ``path`` (a state_dict, or a dict holding one)."""
    state, _ = read_checkpoint(path)
    model = GRURecommender(config_from_state_dict(state, n_items, dropout))
    model.load_state_dict(state)
    return model


def lookup(diagnostics: dict, path: str):
    """``lookup(d, "prefix_length.p90")``: a value by dotted path; None where absent."""
    value = diagnostics
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def outside_bands(diagnostics: dict) -> list[str]:
    """The XUETANGX_BANDS statistics that fall outside their band (or are missing)."""
    bad = []
    for path, (_, low, high) in XUETANGX_BANDS.items():
        if low is None and high is None:
            continue
        value = lookup(diagnostics, path)
        if value is None or (low is not None and value < low) or (high is not None and value > high):
            bad.append(f"{path}={value}")
    return bad
