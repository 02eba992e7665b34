"""The default grid's real leaderboard as renderer input: every row name, mode, Acc@1 level and remark of
the committed reference (results/reference/default-xuetangx-synth.md), as per-episode results.

Per-episode values are drawn around each row's reference means (one seed, the reference's episode
count), so the tables have the real row names, remarks and number widths; the statistics over them are
not the reference's. The questions are the default grid's own declared questions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "default-xuetangx-synth.md"
METRICS = ("acc@1", "recall@5", "recall@10", "mrr", "ndcg@10")


@dataclass(frozen=True)
class ReferenceRow:
    cell: str
    mode: str
    means: dict  # metric -> mean in [0, 1]
    episodes: int
    train_seconds: float
    pairs: float | None
    weight: float | None  # the val-chosen support weight (w=...), few-shot memory baselines
    still_improving: bool


def _pairs(text: str) -> float | None:
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}
    text = text.strip()
    if text in ("", "0", "—"):
        return None if text != "0" else 0.0
    return float(text[:-1]) * scale[text[-1]] if text[-1] in scale else float(text)


def reference_rows(path: Path = REFERENCE) -> list[ReferenceRow]:
    """The leaderboard rows of the committed default reference, in its order (columns found by their
    headers, so a column added to the leaderboard does not shift what is read)."""
    rows = []
    header: dict[str, int] | None = None
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == "#":
            header = {name: i for i, name in enumerate(cells)}
            continue
        if header is None or len(cells) != len(header) or not cells[0].isdigit():
            continue
        column = lambda prefix, cells=cells, header=header: cells[next(i for name, i in header.items() if name.startswith(prefix))]  # noqa: E731
        number = lambda text: float(re.sub(r"<[^>]+>|\*", "", text).split()[0])  # noqa: E731
        means = {
            "acc@1": number(column("Acc@1 %")) / 100,
            "recall@5": number(column("Recall@5")) / 100,
            "recall@10": number(column("Recall@10")) / 100,
            "mrr": number(column("MRR")),
            "ndcg@10": number(column("NDCG@10")),
        }
        remark = column("Remarks")
        weight = re.search(r"w=([\d.]+)", remark)
        rows.append(
            ReferenceRow(
                column("Cell"),
                column("Mode"),
                means,
                int(column("Episodes")),
                float(column("Train s")),
                _pairs(column("Pairs seen")),
                float(weight.group(1)) if weight else None,
                "still improving" in remark,
            )
        )
    return rows


def default_grid_results(seed: int = 0):
    """A Results-like object (``runs``, ``episodes``) with one run per reference cell and its modes."""
    rng = np.random.default_rng(seed)
    by_cell: dict[str, list[ReferenceRow]] = {}
    for row in reference_rows():
        by_cell.setdefault(row.cell, []).append(row)
    runs, frames = [], []
    for i, (cell, rows) in enumerate(by_cell.items()):
        method, _, rest = cell.partition("[")
        method = method.split()[0]
        init = rest.split("]")[0] or None
        run = f"r{i}"
        fit = {"still_improving": any(r.still_improving for r in rows)}
        weights = [r.weight for r in rows if r.weight is not None]
        if weights:
            fit["support_weight"] = weights[0]
        if rows[0].pairs is not None:
            fit["budget_pairs"] = rows[0].pairs
        runs.append(
            {
                "hash": run,
                "cell": cell,
                "status": "complete",
                "train_seconds": rows[0].train_seconds,
                "fit": fit,
                "config": {
                    "dataset": "xuetangx-synth",
                    "dataset_hash": "5f4a3cc0",
                    "method": method,
                    "init": init,
                    "seed": 0,
                    "K": 5,
                    "Q": 10,
                    "params": {},
                },
            }
        )
        for row in rows:
            n = row.episodes
            frame = pd.DataFrame({"run": run, "episode": np.arange(n), "user_id": [f"u{e}" for e in range(n)], "mode": row.mode})
            for metric in METRICS:  # per-episode values in [0, 1] whose mean is near the reference's
                frame[metric] = rng.binomial(10, min(max(row.means[metric], 0.0), 1.0), n) / 10
            frame["dataset"], frame["cell"], frame["method"], frame["init"] = "xuetangx-synth", cell, method, init
            frame["seed"], frame["K"], frame["Q"] = 0, 5, 10
            frames.append(frame)

    class Results:
        pass

    results = Results()
    results.runs, results.episodes = runs, pd.concat(frames, ignore_index=True)
    return results
