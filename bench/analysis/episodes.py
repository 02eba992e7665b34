"""The store's per-episode rows as the statistics read them, shared by the leaderboard and the
declared questions: which runs pool into one cell, how rows are labelled, the [episode x seed]
table of a cell, and which seeds of two cells pair."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.core.metrics import METRICS
from bench.methods.prerequisites import shared_prerequisite


def variant_key(config: dict) -> str:
    """Everything that identifies a run except its seed: runs that differ only by seed pool together."""
    return json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=str)


def episodes_with_identity(results: Any, allow_mixed_code: bool = False) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The complete runs' episode rows, with ``dataset_hash``, ``variant`` and ``code`` (the code
    fingerprint, "" for runs stored before fingerprints) from each run.json.

    Runs of one cell made by different code are refused, unless ``allow_mixed_code``: then they
    pool, and where one seed was run by several code versions only its newest run is kept.
    """
    if isinstance(results, pd.DataFrame):
        episodes, runs = results, []
    else:
        episodes, runs = results.episodes, list(results.runs)
    runs_by_hash = {run["hash"]: run for run in runs if "hash" in run}
    missing = [c for c in ("dataset", "cell", "mode", "seed", "K", "Q", "episode", *METRICS) if c not in episodes.columns]
    if missing:
        raise ValueError(f"episode table lacks columns {missing}")
    episodes = episodes.copy()
    if "run" not in episodes.columns:
        episodes["run"] = ""
    incomplete = {h for h, run in runs_by_hash.items() if run.get("status", "complete") != "complete"}
    if incomplete:
        episodes = episodes[~episodes["run"].isin(incomplete)]
    configs = {h: runs_by_hash.get(h, {}).get("config", {}) for h in episodes["run"].unique()}
    episodes["dataset_hash"] = episodes["run"].map({h: str(c.get("dataset_hash") or "") for h, c in configs.items()})
    # the code is not a setting: runs differing only by it are the same cell, made by other code
    episodes["variant"] = episodes["run"].map({h: variant_key({k: v for k, v in c.items() if k != "code"}) if c else "" for h, c in configs.items()})
    episodes["code"] = episodes["run"].map({h: str(c.get("code") or "") for h, c in configs.items()})
    cell_key = ["dataset", "dataset_hash", "K", "Q", "cell", "variant"]
    codes = episodes.groupby(cell_key, sort=True)["code"].unique()
    mixed = codes[codes.map(len) > 1]
    if len(mixed) and not allow_mixed_code:
        (dataset, _, K, _, cell, _), found = next(iter(mixed.items()))
        shown = ", ".join(sorted(code or "none recorded" for code in found))
        raise BenchError(
            f"cell {cell} ({dataset}, K={K}) has runs made by {len(found)} versions of the code (fingerprints {shown}); they cannot be pooled",
            "show only the current code's runs with --grid NAME after rerunning it, remove the old runs from results/runs/, "
            "or pass --allow-mixed-code",
        )
    if len(mixed):  # one run per seed: the newest
        finished = episodes["run"].map({h: str(runs_by_hash.get(h, {}).get("finished") or "") for h in configs})
        newest = episodes.assign(_finished=finished).groupby([*cell_key, "seed"])["_finished"].transform("max")
        episodes = episodes[finished == newest]
    return episodes, runs_by_hash


def label_variants(group: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    """Row labels: the cell name, plus a settings hash where one cell name covers several settings."""
    labels = group["cell"].astype(str).copy()
    notes = []
    for cell, sub in group.groupby("cell", sort=True):
        variants = sorted(sub["variant"].unique())
        if len(variants) > 1:
            for variant in variants:
                tag = hashlib.sha256(variant.encode()).hexdigest()[:6]
                labels[(group["cell"] == cell) & (group["variant"] == variant)] = f"{cell} #{tag}"
            notes.append(f"Cell {cell} has runs with {len(variants)} different settings; rows are told apart by a settings hash (#...).")
    return labels, notes


def per_episode(sub: pd.DataFrame, key: list[str], where: str) -> tuple[pd.DataFrame, int]:
    """[episode x (metric, seed)] values covered by every seed, and how many episodes were dropped."""
    if sub.duplicated(["seed", *key]).any():
        runs = ", ".join(sorted(map(str, sub["run"].unique())))
        raise BenchError(
            f"{where} has more than one result per seed and episode (runs {runs})",
            "move the extra runs out of the results folder or give them distinct cell names",
        )
    wide = sub.set_index([*key, "seed"])[list(METRICS)].unstack("seed").sort_index()
    complete = wide.dropna()
    return complete, len(wide) - len(complete)


def learners(index: pd.Index) -> np.ndarray | None:
    """The learner of each episode (the resampling cluster), where the episode index names it."""
    return index.get_level_values("user_id").to_numpy() if "user_id" in index.names else None


def seeds_paired(runs_a: dict[int, dict], runs_b: dict[int, dict]) -> bool:
    """Seed s of A pairs with seed s of B when both sides have the same seeds and, per seed, the
    same run (two modes of one cell) or the same prerequisite; otherwise seeds are independent."""
    if set(runs_a) != set(runs_b):
        return False
    for s, config in runs_a.items():
        other = runs_b[s]
        same_run = json.dumps(config, sort_keys=True, default=str) == json.dumps(other, sort_keys=True, default=str)
        key = shared_prerequisite(config)
        if not same_run and (key is None or key != shared_prerequisite(other)):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# What a cell's runs say about themselves (their fit info), shown beside its numbers

STILL_IMPROVING = "still improving at the end of its budget"
WEIGHT_ZERO = "support weight 0 chosen on val: the zero-shot model"


def _fits(records) -> list[dict]:
    return [dict(r.get("fit") or {}) for r in records]


def support_weights(records, mode: str) -> list[float]:
    """The val-chosen support weights of a few-shot memory baseline's runs (one per seed); [] otherwise."""
    if mode != "few-shot":
        return []
    return [float(f["support_weight"]) for f in _fits(records) if isinstance(f.get("support_weight"), (int, float))]


def still_improving(records) -> int:
    """How many of the runs chose their last validation (or epoch) as best: the budget ended the training."""
    return sum(1 for f in _fits(records) if f.get("still_improving") is True)


def budget_pairs(records) -> float | None:
    """Mean training budget of the runs in pairs seen by gradient steps (pre-training included), if recorded."""
    values = [float(f["budget_pairs"]) for f in _fits(records) if isinstance(f.get("budget_pairs"), (int, float))]
    return float(np.mean(values)) if values else None


def cell_remarks(records, mode: str) -> list[str]:
    """Plain-words remarks on a cell's runs: its val-chosen support weight (0: the zero-shot model) and
    whether its training was still improving when the budget ended."""
    remarks = []
    weights = support_weights(records, mode)
    if weights:
        if all(w == 0 for w in weights):
            remarks.append(WEIGHT_ZERO)
        else:
            shown = ", ".join(f"{w:g}" for w in sorted(set(weights)))
            remarks.append(f"support weight {shown} (chosen on val)")
    n = still_improving(records)
    if n:
        remarks.append(STILL_IMPROVING + (f" ({n} of {len(records)} seeds)" if n < len(records) else ""))
    return remarks
