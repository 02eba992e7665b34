"""A generator of raw interactions shaped like XuetangX, fed through the same pipeline as real data.

Shape: ``n_courses`` courses in ``n_topics`` topics of uneven size; inside a topic the courses
have a prerequisite-like order (a session tends to move on to the next course of the topic);
course popularity is Zipf-like; the number of sessions per user is heavy-tailed (discrete Pareto);
each visit to a course logs a few events (the consecutive repeats the pipeline removes).
Users differ in their topic mix: ``personalisation`` = 0 gives every user the global mix,
1 gives every user their own Dirichlet mix, centred on the global one but concentrated on a few
topics (``user_topic_alpha``, smaller = fewer); in between is a blend of the two.
Nothing here is tuned to favour any method; every knob is recorded in dataset.json.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bench.data import pipeline
from bench.errors import BenchError

START_EPOCH = 1485907200  # 2017-02-01T00:00:00Z, the start of the XuetangX activity log


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """The generator's parameters (all recorded in dataset.json under source.parameters)."""

    users: int = 50000
    seed: int = 0
    n_courses: int = 1518
    n_topics: int = 40
    zipf: float = 1.1  # popularity of the course ranked r is proportional to r ** -zipf
    personalisation: float = 0.7  # 0: one global topic mix; 1: each user's own mix
    user_topic_alpha: float = 0.1  # Dirichlet concentration of a user's own mix (small = few topics)
    sessions_tail: float = 1.1  # discrete Pareto tail index of sessions per user (smaller = heavier)
    max_sessions: int = 150
    mean_visits: float = 2.5  # course visits per session (1 + geometric)
    follow_order: float = 0.6  # chance the next visit is the next course of the topic's order
    off_topic: float = 0.1  # chance a visit goes to a course drawn from global popularity
    mean_events: float = 2.0  # logged events per course visit (1 + Poisson)
    mean_gap_days: float = 3.0  # between a user's sessions (exponential)
    mean_event_seconds: float = 120.0  # between events inside a session (exponential)

    def __post_init__(self):
        checks = [
            (self.users >= 10, "--users must be at least 10"),
            (self.n_courses >= self.n_topics >= 1, "--n-courses must be at least --n-topics, both positive"),
            (0.0 <= self.personalisation <= 1.0, "--personalisation must lie in [0, 1]"),
            (0.0 <= self.follow_order <= 1.0 and 0.0 <= self.off_topic <= 1.0, "probabilities must lie in [0, 1]"),
            (self.sessions_tail > 0 and self.zipf >= 0 and self.user_topic_alpha > 0, "tail, zipf and alpha must be positive"),
            (self.mean_visits >= 1 and self.mean_events >= 1 and self.max_sessions >= 1, "means must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise BenchError(f"bad synth parameter: {message}", "see `python -m bench data synth --help`")


def _segment_cumsum(values: np.ndarray, segment_start: np.ndarray) -> np.ndarray:
    """Integer cumulative sum restarting at each True of ``segment_start`` (whose first entry is True)."""
    total = np.cumsum(values, dtype=np.int64)
    before = total - values
    return total - np.maximum.accumulate(np.where(segment_start, before, np.iinfo(np.int64).min))


def generate_interactions(config: SynthConfig = SynthConfig()) -> pd.DataFrame:
    """Raw interactions ``user, item, timestamp, session`` (strings; epoch seconds), vectorised."""
    rng = np.random.default_rng(config.seed)
    C, T, U = config.n_courses, config.n_topics, config.users

    # Courses: raw ids in random order (so ids say nothing about topics), uneven topic sizes,
    # Zipf popularity over a random ranking, and a random prerequisite order inside each topic.
    course_ids = np.array([f"course-{i:04d}" for i in rng.permutation(C)], dtype=object)
    sizes = 1 + rng.multinomial(C - T, rng.dirichlet(np.full(T, 2.0)))
    topic_of = np.repeat(np.arange(T), sizes)
    rng.shuffle(topic_of)
    popularity = np.empty(C)
    popularity[rng.permutation(C)] = np.arange(1, C + 1, dtype=float) ** -config.zipf
    popularity /= popularity.sum()
    topic_members = [np.flatnonzero(topic_of == t) for t in range(T)]  # position in topic = prerequisite order
    for members in topic_members:
        rng.shuffle(members)
    topic_pop = np.array([popularity[m].sum() for m in topic_members])

    # Users: a blend of the global topic mix and a sparse personal one.
    # a personal mix favours a few topics, drawn in proportion to their global popularity
    personal = rng.dirichlet(np.maximum(config.user_topic_alpha * T * topic_pop, 1e-3), size=U)
    mix = (1 - config.personalisation) * topic_pop[None, :] + config.personalisation * personal
    mix_cdf = np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)

    # Sessions per user: discrete Pareto (heavy tail), capped.
    n_sessions = np.minimum(np.floor(rng.random(U) ** (-1.0 / config.sessions_tail)).astype(np.int64), config.max_sessions)
    session_user = np.repeat(np.arange(U), n_sessions)
    S = len(session_user)
    r = rng.random(S)
    session_topic = np.minimum((mix_cdf[session_user] < r[:, None]).sum(axis=1), T - 1)

    # Visits: the first visit of a session, and any visit that does not follow the order, jumps to a
    # course of the topic drawn by popularity; a following visit takes the next course in the order.
    p_stop = 1.0 / config.mean_visits
    n_visits = rng.geometric(p_stop, size=S)
    visit_session = np.repeat(np.arange(S), n_visits)
    V = len(visit_session)
    first_visit = np.ones(V, dtype=bool)
    first_visit[1:] = visit_session[1:] != visit_session[:-1]
    jump = first_visit | (rng.random(V) >= config.follow_order)
    visit_topic = session_topic[visit_session]
    jump_idx = np.flatnonzero(jump)
    jump_pos = np.empty(len(jump_idx), dtype=np.int64)
    for t in range(T):
        members = topic_members[t]
        sel = np.flatnonzero(visit_topic[jump_idx] == t)
        if len(sel):
            cdf = np.cumsum(popularity[members] / popularity[members].sum())
            jump_pos[sel] = np.minimum(np.searchsorted(cdf, rng.random(len(sel)), side="right"), len(members) - 1)
    last_jump = np.maximum.accumulate(np.where(jump, np.arange(V), 0))
    jump_number = np.cumsum(jump) - 1
    position = jump_pos[jump_number] + (np.arange(V) - last_jump)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    flat_members = np.concatenate(topic_members)
    visit_course = flat_members[offsets[visit_topic] + position % sizes[visit_topic]]
    off = rng.random(V) < config.off_topic
    global_cdf = np.cumsum(popularity)
    visit_course[off] = np.minimum(np.searchsorted(global_cdf, rng.random(int(off.sum())), side="right"), C - 1)

    # Events: each visit logs 1 + Poisson events; times increase strictly inside a session, and a
    # user's sessions are separated by exponential gaps from a random start in the log's window.
    n_events = 1 + rng.poisson(config.mean_events - 1, size=V)
    event_visit = np.repeat(np.arange(V), n_events)
    event_session = visit_session[event_visit]
    E = len(event_visit)
    first_event = np.ones(E, dtype=bool)
    first_event[1:] = event_session[1:] != event_session[:-1]
    step = 1 + rng.exponential(config.mean_event_seconds, size=E).astype(np.int64)
    within = _segment_cumsum(np.where(first_event, 0, step), first_event)
    first_session = np.ones(S, dtype=bool)
    first_session[1:] = session_user[1:] != session_user[:-1]
    gap = (rng.exponential(config.mean_gap_days * 86400, size=S)).astype(np.int64) + 3600
    user_start = (rng.random(U) * 120 * 86400).astype(np.int64)
    session_time = START_EPOCH + user_start[session_user] + _segment_cumsum(np.where(first_session, 0, gap), first_session)
    timestamp = session_time[event_session] + within

    user_names = np.array([f"u{i:06d}" for i in range(U)], dtype=object)
    session_names = np.array([f"s{i:07d}" for i in range(S)], dtype=object)
    return pd.DataFrame(
        {
            "user": user_names[session_user[event_session]],
            "item": course_ids[visit_course[event_visit]],
            "timestamp": timestamp.astype(np.int64),
            "session": session_names[event_session],
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
    source = {"kind": "synth", "generator": "bench.data.synth", "parameters": dataclasses.asdict(config)}
    return pipeline.build_dataset(
        interactions, name=name, data_dir=data_dir, source=source, config=pipeline_config, force=force, progress=progress
    )


def make_synthetic_dataset(
    data_dir,
    name: str = "tiny",
    users: int = 500,
    seed: int = 0,
    *,
    sessions_tail: float = 0.7,
    K: int = 5,
    Q: int = 10,
    stride: int = 1,
    max_prefix: int = 50,
    split_seed: int = 20260107,
    force: bool = True,
    **knobs,
):
    """For tests: a small seeded dataset built through the real pipeline; returns the Dataset.

    ``knobs`` are SynthConfig fields (``personalisation``, ``n_courses``, ``zipf``, ...). The session
    tail defaults heavier than the CLI's (0.7 vs 1.1) so that a few hundred users give episodes in
    every split (users=500: about 7,000 train, 10 val and 8 test episodes at K=5, Q=10, in ~0.1 s).
    """
    config = SynthConfig(users=users, seed=seed, sessions_tail=sessions_tail, **knobs)
    pipeline_config = pipeline.PipelineConfig(max_prefix=max_prefix, split_seed=split_seed, K=K, Q=Q, stride=stride)
    return build_synthetic(name, data_dir, config, pipeline_config, force=force)
