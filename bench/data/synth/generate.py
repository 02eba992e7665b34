"""The generator end to end: courses and visits, then their events, as raw interactions; then the dataset."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.data import build, pipeline
from bench.data.synth.arrays import group_starts, segment_cumsum
from bench.data.synth.config import BUILTIN, KNOB_SOURCES, SynthConfig
from bench.data.synth.courses import Catalogue, simulate_visits
from bench.data.synth.sessions import event_gaps, event_kinds, visit_events

START_EPOCH = 1485907200  # 2017-02-01T00:00:00Z, the start of the XuetangX activity log


def generate_interactions(config: SynthConfig = SynthConfig()) -> pd.DataFrame:
    """Raw interactions ``user, item, timestamp, session, kind`` (strings; epoch seconds), vectorised."""
    rng = np.random.default_rng(config.seed)
    U = config.users
    cat = Catalogue(rng, config)
    course_ids = np.array([f"course-{i:04d}" for i in rng.permutation(config.n_courses)], dtype=object)
    visits = simulate_visits(config, rng, cat)
    session_user, visit_session, visit_course = visits.session_user, visits.visit_session, visits.visit_course
    S, V = len(session_user), len(visit_session)

    # Events: each visit logs a heavy-tailed count (visit_events); times increase strictly inside a
    # session by heavy-tailed gaps (event_gaps), and a learner's sessions are separated by exponential
    # gaps from a random start in the log's window.
    n_events = visit_events(rng, config, visit_session)
    event_visit = np.repeat(np.arange(V), n_events)
    event_session = visit_session[event_visit]
    E = len(event_visit)
    first_event = group_starts(event_session)
    step = event_gaps(rng, config, E)
    within = segment_cumsum(np.where(first_event, 0, step), first_event)
    first_session = group_starts(session_user)
    gap = (rng.exponential(config.mean_gap_days * 86400, size=S)).astype(np.int64) + 3600
    user_begin = (rng.random(U) * 120 * 86400).astype(np.int64)
    session_time = START_EPOCH + user_begin[session_user] + segment_cumsum(np.where(first_session, 0, gap), first_session)
    timestamp = session_time[event_session] + within

    user_names = np.array([f"u{i:06d}" for i in range(U)], dtype=object)
    session_names = np.array([f"s{i:07d}" for i in range(S)], dtype=object)
    return pd.DataFrame(
        {
            "user": user_names[session_user[event_session]],
            "item": course_ids[visit_course[event_visit]],
            "timestamp": timestamp.astype(np.int64),
            "session": session_names[event_session],
            "kind": event_kinds(config, event_session),
        }
    )


def build_synthetic(
    name: str,
    data_dir=None,
    config: SynthConfig = SynthConfig(),
    pipeline_config: pipeline.PipelineConfig = pipeline.PipelineConfig(),
    force: bool = False,
    progress=None,
):
    """Generate, then run the shared pipeline; returns the opened Dataset."""
    interactions = generate_interactions(config)
    parameters = dataclasses.asdict(config)
    sources = {key: KNOB_SOURCES.get(key, KNOB_SOURCES["default"]) for key in parameters if key not in ("users", "seed")}
    source = {"kind": "synth", "generator": "bench.data.synth", "parameters": parameters, "parameter_sources": sources}
    return build.build_dataset(
        interactions,
        name=name,
        data_dir=data_dir,
        source=source,
        config=pipeline_config,
        force=force,
        progress=progress,
        kinds_from="the generator's event kind (the raw XuetangX event type, drawn per event by the kind_* shares or repeated, kind_repeat)",
    )


def build_builtin(name: str, data_dir=None, progress=None):
    """Build one of the ``BUILTIN`` datasets (refused in one line for any other name)."""
    if name not in BUILTIN:
        raise BenchError(
            f"no built-in dataset {name!r}", f"choose one of {', '.join(BUILTIN)}, or import your data with `python -m bench data import`"
        )
    return build_synthetic(name, data_dir, SynthConfig(**BUILTIN[name]), progress=progress)


def make_synthetic_dataset(
    data_dir,
    name: str = "tiny",
    users: int = 500,
    seed: int = 0,
    *,
    sessions_tail: float = 0.7,
    switch_tail: float = 1.6,
    K: int = 5,
    Q: int = 10,
    stride: int = 1,
    max_prefix: int = 50,
    split_seed: int = 20260107,
    force: bool = True,
    **knobs,
):
    """For tests: a small seeded dataset built through the real pipeline; returns the Dataset.

    ``knobs`` are SynthConfig fields (``n_courses``, ``zipf``, ``p_return``, ...). Sessions per
    learner and courses per session default heavier-tailed than the CLI's so that a few hundred
    learners give episodes in every split (the calibrated defaults need ~180k learners for that).
    """
    config = SynthConfig(users=users, seed=seed, sessions_tail=sessions_tail, switch_tail=switch_tail, **knobs)
    pipeline_config = pipeline.PipelineConfig(max_prefix=max_prefix, split_seed=split_seed, K=K, Q=Q, stride=stride)
    return build_synthetic(name, data_dir, config, pipeline_config, force=force)
