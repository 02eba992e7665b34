"""SRS-adaptive MAML (the seed project's notebooks 10 and 11): the session reliability score sets the inner loop.

A task's SRS is the mean session reliability score of its K support pairs (bench/data/srs.py; the
episodes' ``support_srs`` column). Notebook 10's rule, each part switchable off for ablation:
- rate (``srs_scale_rate``): task i adapts at ``inner_lr * SRS_i`` (off: ``inner_lr``);
- steps (``srs_adaptive_steps``): ``srs_steps_high`` (3) inner steps if ``SRS_i >= srs_tau`` (0.5),
  else ``srs_steps_low`` (7) (off: the run's ``inner_steps``);
- outer weighting (``srs_weight_outer``): the meta-loss is (1/n) sum_i SRS_i L_query(phi_i) (off: the
  plain mean). The notebook sums without the 1/n; Adam's step does not depend on that constant
  (gradient clipping aside), and the 1/n keeps the loss on MAML's scale.
The same rate and step count adapt a val or test learner from its own support SRS (few-shot);
zero-shot scoring uses the meta-weights as they are. With every part off it is MAML. The init
registry applies unchanged: ``srs-maml[random]`` is the seed's C2, ``srs-maml[gru4rec]`` its C3.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.data.srs import EPISODE_COLUMN
from meta.engines import PLAN_ENGINES
from meta.maml import MAMLMethod
from meta.tasks import TaskPlan

SRS_DEFAULTS: dict = {
    "srs_tau": 0.5,  # notebook 10's TAU
    "srs_steps_high": 3,  # K_MIN: steps for a task with SRS >= tau
    "srs_steps_low": 7,  # K_MAX: steps for a task with SRS < tau
    "srs_adaptive_steps": True,
    "srs_scale_rate": True,
    "srs_weight_outer": True,
}


def srs_plan(task_srs, params: dict) -> TaskPlan:
    """Notebook 10's per-task rate factors, step counts and outer weights for tasks with SRS ``task_srs``."""
    values = [float(v) for v in np.asarray(task_srs, dtype=np.float64)]
    if any(not 0.0 <= v <= 1.0 for v in values):
        raise BenchError("a task SRS outside [0, 1]", "rebuild the dataset: session reliability scores are means of values in [0, 1]")
    if params["srs_adaptive_steps"]:
        steps = tuple(int(params["srs_steps_high"]) if v >= float(params["srs_tau"]) else int(params["srs_steps_low"]) for v in values)
    else:
        steps = (int(params["inner_steps"]),) * len(values)
    factors = tuple(values) if params["srs_scale_rate"] else (1.0,) * len(values)
    weights = tuple(values) if params["srs_weight_outer"] else (1.0,) * len(values)
    return TaskPlan(factors, steps, weights)


class SRSMAMLMethod(MAMLMethod):
    """MAML (learn2learn, first-order) whose inner rate, inner steps and outer weight follow each task's SRS."""

    def __init__(self, ctx, name: str, init: str, modes: tuple[str, ...], params: dict):
        if params.get("engine") not in PLAN_ENGINES:
            raise BenchError(
                f"{name} needs an engine with per-task rates and step counts (got {params.get('engine')!r})",
                f"set engine to one of {', '.join(PLAN_ENGINES)}",
            )
        ctx.dataset.require_srs(name)
        super().__init__(ctx, name, init, modes, params, algorithm="maml")

    def plan(self, episodes: pd.DataFrame, mode: str) -> TaskPlan | None:
        if mode == "zero-shot":
            return None
        if EPISODE_COLUMN not in episodes:
            raise BenchError(
                f"{self.name}: episodes without the {EPISODE_COLUMN!r} column",
                "read episodes through Dataset.episodes of a dataset with session statistics",
            )
        return srs_plan(episodes[EPISODE_COLUMN].to_numpy(), self.params)
