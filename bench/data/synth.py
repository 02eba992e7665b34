"""A generator of raw interactions shaped like XuetangX, fed through the same pipeline as real data.

Model: learners enrolled in courses, not a per-course successor.
- Courses: ``n_courses`` in ``n_topics`` topics of uneven size, Zipf-like popularity, and a sparse
  course graph: inside a topic the courses have a random prerequisite order and each links to a
  few of the next ones (random weights); links only go forward, so chains end and nothing wraps.
- Learners: a personal topic mix (Dirichlet, concentrated on a few topics) and a list of enrolled
  courses that persists across their sessions and grows over time. A new enrolment follows the
  course graph from a course already taken (``p_graph``), global popularity (``p_popular``, the
  only place popularity acts), or else the learner's topic mix (then popularity inside the topic).
- Sessions: the number per learner is heavy-tailed (discrete Pareto), and so is the number of
  courses a session visits (``switch_tail``): most sessions hold one course, a few hold dozens. A
  session starts on a new enrolment (``p_enrol_start``) or on an enrolled course; each later visit
  returns to the course before the current one (A-B-A, ``p_return``), enrols in a new course
  (``p_enrol_switch``) or switches to another enrolled course. The enrolled set's size comes out
  heavy-tailed with mode 1.
- Staying on a course is its visit's events (at least one; the consecutive repeats the pipeline
  removes, so they never change a pair). Their number, their gaps and their kinds are the session
  statistics the session reliability score (bench.data.srs) reads, calibrated on what the seed prints
  for real XuetangX (issue 24, ``KNOB_SOURCES``): a session's events beyond one per visit are
  Poisson, their mean ``mean_events`` - 1 times a lognormal session activity (``events_sigma``:
  heavy-tailed, the median at ~0.1 of the 95th percentile as printed), and do not grow with its
  visits (``events_visits_power`` 0); the
  gaps between events are lognormal (``gap_median_seconds``, ``gap_sigma``) below the 30-min
  session threshold (``gap_max_seconds``); each event has a kind (a raw XuetangX event type such as
  pause_video) drawn with the real log's printed shares (``kind_*``) or, with chance
  ``kind_repeat``, the previous event's kind again (real types persist). Scale: the real one (a
  generated event is a logged event): 30.4 events per session of >= 2 events against the printed
  30.76, 14.5M rows at 180k learners (real XuetangX: 27.9M events of 173k users); building it peaks at
  ~8 GB of memory. A quarter of the events (one generated event standing for 4) was tried first: the
  session-level SRS matched, but a session's events are at least its visits, so the cap (25 events)
  sat near the visits of the long sessions most pairs come from and the task SRS came out 0.81 train
  with 18% below 0.5, against the printed 0.6157 and 37.8% (notebook 10 cell 10-04). At the real
  scale it is 0.56 train / 0.48 val / 0.50 test with 48% of train tasks below 0.5 (``bench data
  info`` prints it): lower than real, mostly through the extent (durations p50 620 s, real 821 s). The kinds come from their own
  random stream: they never move another column.
At the defaults (180k learners): 59% of learners end with one enrolled course (p99 14, max ~110),
79% of sessions hold one course (max ~300), a course has ~1.8 forward links, 11% none.
Knobs were chosen by looking at data statistics only (the bands of issue 8, printed by
``bench data info``), never at any model's result; every knob is recorded in dataset.json, with
where its value comes from (``KNOB_SOURCES``). One knob is NOT pinned by any statistic: ``p_return``
(how often a visit goes back to the course before the current one). Real XuetangX prints no
revisit rate; its long sessions (prefix p99 79 visits while most learners hold a few courses) imply
many returns, which switches among the enrolled courses already produce; the seed's printed samples
show returns ([1287, 1284, 939] -> 1287; [793, 122, 793, 1074] -> 793) but are far too few to
estimate a rate. 0.35 was set before any leaderboard existed and is kept (changing it after seeing
a leaderboard would tune the data to the results); ``BUILTIN`` has the same data at p_return 0 and
0.1, and the `scenarios` grid reports every declared answer on all three, so a reader sees which
answers depend on the return rate.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bench.data import build, pipeline
from bench.core.errors import BenchError

START_EPOCH = 1485907200  # 2017-02-01T00:00:00Z, the start of the XuetangX activity log
ENROL, RESUME, SWITCH, RETURN = 0, 1, 2, 3  # what a visit does

# Where each knob's value comes from (recorded in dataset.json beside the values).
BANDS = "calibrated on the real-data bands (bench/data/diagnostics.py XUETANGX_BANDS, `bench data info`)"
KNOB_SOURCES = {
    "p_return": (
        "not pinned by any statistic: real XuetangX prints no revisit rate; its long sessions imply returns "
        "(switches among enrolled courses make them too) and the seed's printed samples show some, too few for "
        "a rate; 0.35 predates every leaderboard and is kept; the scenarios grid shows answers at 0, 0.1 and 0.35"
    ),
    "default": BANDS,
}
# Event kinds: the shares of the real log's event types as the seed prints them (notebook
# 01_ingest_xuetangx cell 01-08, app/data/01_ingest_xuetangx/20260408_125223/report.json
# sanity_samples.top_event_types: the kept log has 8 types, 28,002,537 events); each event draws its
# kind with these shares (or repeats the previous one, kind_repeat). They feed only the SRS's composition.
XUETANGX_EVENT_TYPE_COUNTS = {
    "pause_video": 10447067, "seek_video": 4878540, "problem_get": 4594062, "load_video": 3832977,
    "problem_check": 1589086, "problem_check_correct": 1287667, "problem_check_incorrect": 717231, "problem_save": 655907,
}
EVENT_KINDS = tuple(XUETANGX_EVENT_TYPE_COUNTS)
KIND_KNOBS = tuple(f"kind_{kind}" for kind in EVENT_KINDS)  # SynthConfig fields: each kind's share of events
KNOB_SOURCES.update({
    knob: (
        f"share of {kind} among the real log's kept events: {XUETANGX_EVENT_TYPE_COUNTS[kind]:,} of 28,002,537 "
        "(seed notebook 01_ingest_xuetangx cell 01-08 / its report.json top_event_types), rounded to 6 decimals; "
        "drawn per event (unless it repeats the previous kind, kind_repeat); used only by the SRS's composition"
    )
    for kind, knob in zip(EVENT_KINDS, KIND_KNOBS)
})
# Session statistics (issue 24): printed by the seed for real XuetangX (notebooks 02_sessionize, 03b_srs_scores,
# 09_srs_validation); sessions of >= 2 events, as the seed keeps. At the real scale: a generated event is a logged
# one (gap_parts 1), so events, seconds and kinds per session are compared with the printed figures directly.
KNOB_SOURCES.update({
    "mean_events": (
        "events per session: 30.4 per session of >= 2 events at 60k learners against real XuetangX's 30.76 "
        "(27,875,155 events in 906,341 sessions, seed notebook 02_sessionize_xuetangx cells 02-05 and 02-11); "
        "its 95th percentile comes out 110 events where the seed's SRS cap is 115 (notebook 03b_srs_scores_xuetangx cell 03b-03)"
    ),
    "events_sigma": (
        "the shape of events per session: the median at 0.0957 of the 95th percentile as on real XuetangX "
        "(intensity p50 0.0957, seed notebook 09_srs_validation_xuetangx cell 09-05, of the cap 115 events, "
        "notebook 03b_srs_scores_xuetangx cell 03b-03: median ~11 events); lognormal sigma = -ln(0.0957) / 1.645 = 1.43, "
        "whose mean / median exp(sigma^2 / 2) = 2.78 agrees with the printed 30.76 / 11 = 2.80"
    ),
    "events_visits_power": (
        "how a session's events grow with its course visits, pinned by the SRS of real pairs: mean 0.4887 over "
        "pairs (seed notebook 03b_srs_scores_xuetangx cell 03b-05) against 0.3248 over sessions (cell 03b-04); "
        "at the real event scale (mean_events 24, cap ~93 events, 60k learners) power 0 gives 0.51 over pairs "
        "and power 1 gives 0.66, so beyond one event per visit a session's events do not grow with its visits"
    ),
    "gap_median_seconds": "median gap between consecutive events of a session, 4 s (seed notebook 02_sessionize_xuetangx cell 02-04 p50_sec)",
    "gap_sigma": (
        "lognormal sigma = ln(p90 / p50) / 1.2816 from the printed gaps p50 4 s and p90 205 s (seed notebook "
        "02_sessionize_xuetangx cell 02-04; p95 504 s would give 2.94); it puts 2.3% of gaps above 30 min, "
        "where the log has 2.17% (same cell)"
    ),
    "gap_max_seconds": (
        "the seed's 30-min inactivity threshold (notebook 02_sessionize_xuetangx cell 02-05, gap_threshold_seconds "
        "1800): a longer pause starts a new session, so no gap inside one exceeds it"
    ),
    "gap_parts": (
        "1: a generated event is a logged one (the real scale), so a gap between events is one logged gap; "
        "a scale of 4 (one generated event for 4 logged ones, a quarter of the rows) was tried first and left the "
        "task SRS at 0.81 against the printed 0.6157 (seed notebook 10 cell 10-04): a session's events are at least "
        "its visits, which a quarter-scale cap no longer clears"
    ),
    "kind_repeat": (
        "set so that the composition's mean over sessions of >= 2 events is real XuetangX's 0.5123 (seed notebook "
        "09_srs_validation_xuetangx cell 09-05): 0.5124 at 60k learners, 0.57 at kind_repeat 0.6, more with independent "
        "kinds: real event types persist (a session of median ~11 events holds 3 distinct types, p50 0.5 in the same cell)"
    ),
})
KIND_SEED_OFFSET = 24  # event kinds come from their own stream, seed [seed, 24], so the interactions' other columns are unchanged

# The built-in datasets: names `bench run` builds on demand, as SynthConfig fields over the defaults.
# The variants differ from xuetangx-synth only in their return rate (the scenarios grid).
BUILTIN: dict[str, dict] = {
    "xuetangx-synth": {},
    "xuetangx-synth-return-0": {"p_return": 0.0},
    "xuetangx-synth-return-0.1": {"p_return": 0.1},
}


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """The generator's parameters (all recorded in dataset.json under source.parameters)."""

    users: int = 180000
    seed: int = 0
    n_courses: int = 1518
    n_topics: int = 40
    zipf: float = 0.7  # popularity of the course ranked r is proportional to r ** -zipf (acts at enrolment)
    user_topic_alpha: float = 0.1  # Dirichlet concentration of a learner's topic mix (small = few topics)
    graph_window: int = 4  # a course may link to the next graph_window courses of its topic's order
    graph_link_prob: float = 0.5  # chance of each of those links (mean out-links ~ window * prob)
    p_graph: float = 0.35  # chance a new enrolment follows a graph link from a course already taken
    p_popular: float = 0.2  # chance a new enrolment is drawn by global popularity
    sessions_tail: float = 1.4  # discrete Pareto tail index of sessions per learner (smaller = heavier)
    max_sessions: int = 150
    switch_tail: float = 2.3  # discrete Pareto tail index of courses per ordinary session (smaller = more switching)
    p_long_session: float = 0.006  # chance a session is a long switching one instead
    long_session_scale: float = 18.0  # a long session's switches: Pareto with this minimum ...
    long_session_tail: float = 2.6  # ... and this tail index
    max_session_courses: int = 450
    p_enrol_start: float = 0.3  # chance a later session starts on a new enrolment
    p_enrol_switch: float = 0.15  # chance a switch inside a session enrols in a new course
    p_return: float = 0.35  # chance a visit returns to the course before the current one (A-B-A)
    # Session statistics (issue 24): events, seconds and kinds of a session feed only the SRS (bench.data.srs);
    # at the real scale (a generated event is a logged one; see KNOB_SOURCES)
    mean_events: float = 28.5  # events of a one-course session: 1 + Poisson(rate), the rate's mean mean_events - 1 ...
    events_sigma: float = 1.43  # ... times the session's lognormal activity of mean 1 and this sigma (0: plain Poisson) ...
    events_visits_power: float = 0.0  # ... times v ** power over a session's v visits (1: each visit adds alike; 0: not at all)
    mean_gap_days: float = 3.0  # between a learner's sessions (exponential)
    gap_median_seconds: float = 4.0  # between events inside a session: lognormal with this median ...
    gap_sigma: float = 3.07  # ... and this sigma, ...
    gap_max_seconds: float = 1800.0  # ... redrawn above this (a longer pause would end the session); ...
    gap_parts: int = 1  # ... a generated gap is the sum of this many such draws (one event stands for this many)
    kind_repeat: float = 0.75  # chance an event repeats the previous event's kind in its session (else drawn by the shares)
    # each event's kind (the raw XuetangX event type), by share of events; see KNOB_SOURCES
    kind_pause_video: float = 0.373076
    kind_seek_video: float = 0.174218
    kind_problem_get: float = 0.164059
    kind_load_video: float = 0.13688
    kind_problem_check: float = 0.056748
    kind_problem_check_correct: float = 0.045984
    kind_problem_check_incorrect: float = 0.025613
    kind_problem_save: float = 0.023423

    def __post_init__(self):
        probabilities = (self.p_long_session, self.graph_link_prob, self.p_graph, self.p_popular, self.p_enrol_start, self.p_enrol_switch, self.p_return)
        checks = [
            (self.users >= 10, "--users must be at least 10"),
            (self.n_courses >= self.n_topics >= 1, "--n-courses must be at least --n-topics, both positive"),
            (all(0.0 <= p <= 1.0 for p in probabilities), "probabilities must lie in [0, 1]"),
            (self.p_graph + self.p_popular <= 1.0, "--p-graph plus --p-popular must be at most 1"),
            (self.p_return + self.p_enrol_switch <= 1.0, "--p-return plus --p-enrol-switch must be at most 1"),
            (min(self.sessions_tail, self.switch_tail, self.long_session_tail, self.long_session_scale, self.user_topic_alpha) > 0
             and self.zipf >= 0,
             "tails, zipf and alpha must be positive"),
            (self.graph_window >= 0, "--graph-window must be at least 0"),
            (self.mean_events >= 1 and self.max_sessions >= 1 and self.max_session_courses >= 1, "means and caps must be at least 1"),
            (self.events_sigma >= 0 and self.gap_sigma >= 0 and 0 < self.gap_median_seconds <= self.gap_max_seconds and self.gap_parts >= 1,
             "--events-sigma and --gap-sigma must be non-negative, --gap-median-seconds positive and at most --gap-max-seconds, --gap-parts at least 1"),
            (0.0 <= self.kind_repeat < 1.0, "--kind-repeat must lie in [0, 1)"),
            (all(share >= 0 for share in self.kind_shares()) and sum(self.kind_shares()) > 0,
             "event kind shares (--kind-*) must be non-negative with a positive sum"),
        ]
        for ok, message in checks:
            if not ok:
                raise BenchError(f"bad synth parameter: {message}", "see `python -m bench data synth --help`")

    def kind_shares(self) -> tuple[float, ...]:
        """The event kinds' shares, in ``EVENT_KINDS`` order (not normalised)."""
        return tuple(float(getattr(self, knob)) for knob in KIND_KNOBS)


def segment_cumsum(values: np.ndarray, segment_start: np.ndarray) -> np.ndarray:
    """Integer cumulative sum restarting at each True of ``segment_start`` (whose first entry is True)."""
    total = np.cumsum(values, dtype=np.int64)
    before = total - values
    return total - np.maximum.accumulate(np.where(segment_start, before, np.iinfo(np.int64).min))


def group_starts(group: np.ndarray) -> np.ndarray:
    """True where a sorted group id array begins a new group."""
    start = np.ones(len(group), dtype=bool)
    start[1:] = group[1:] != group[:-1]
    return start


def _discrete_pareto(rng, tail: float, cap: int, size: int) -> np.ndarray:
    """floor(U ** (-1 / tail)) capped: P(X >= k) = k ** -tail for k <= cap; mode 1."""
    return np.minimum(np.floor(rng.random(size) ** (-1.0 / tail)), cap).astype(np.int64)


def draw_from_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cdf) - 1)


class Catalogue:
    """Courses, topics, popularity and the sparse forward course graph."""

    def __init__(self, rng, config: SynthConfig):
        C, T = config.n_courses, config.n_topics
        self.n_courses = C
        sizes = 1 + rng.multinomial(C - T, rng.dirichlet(np.full(T, 2.0)))
        topic_of = np.repeat(np.arange(T), sizes)
        rng.shuffle(topic_of)
        popularity = np.empty(C)
        popularity[rng.permutation(C)] = np.arange(1, C + 1, dtype=float) ** -config.zipf
        self.popularity_cdf = np.cumsum(popularity / popularity.sum())
        # courses grouped by topic; a random order inside each topic is the prerequisite order
        order = np.lexsort((rng.random(C), topic_of))
        self.topic_members = order
        self.topic_offsets = np.concatenate([[0], np.cumsum(sizes)])
        within_pop = popularity[order]
        self.within_cdf = np.cumsum(within_pop)  # one global cumsum; a topic's slice is its own CDF
        self.topic_pop = np.add.reduceat(within_pop, self.topic_offsets[:-1])
        self.topic_pop /= self.topic_pop.sum()
        # graph: the course at topic position i may link to positions i+1 .. i+graph_window
        position = np.empty(C, dtype=np.int64)
        position[order] = np.arange(C)
        topic_end = self.topic_offsets[1:][topic_of]
        W = config.graph_window
        src = np.repeat(np.arange(C), W)
        dst_pos = position[src] + np.tile(np.arange(1, W + 1), C)
        keep = (dst_pos < np.repeat(topic_end, W)) & (rng.random(C * W) < config.graph_link_prob)
        self.link_dst = order[dst_pos[keep]]
        weights = rng.exponential(1.0, size=int(keep.sum()))
        self.link_cum = np.cumsum(weights)
        degree = np.bincount(src[keep], minlength=C)
        self.link_start = np.concatenate([[0], np.cumsum(degree)])
        self.degree = degree

    def by_topic(self, rng, topics: np.ndarray) -> np.ndarray:
        """A course of each topic, by popularity inside the topic."""
        lo, hi = self.topic_offsets[topics], self.topic_offsets[topics + 1]
        base = np.where(lo > 0, self.within_cdf[np.maximum(lo - 1, 0)], 0.0)
        x = base + rng.random(len(topics)) * (self.within_cdf[hi - 1] - base)
        pos = np.clip(np.searchsorted(self.within_cdf, x, side="right"), lo, hi - 1)
        return self.topic_members[pos]

    def by_popularity(self, rng, n: int) -> np.ndarray:
        return draw_from_cdf(self.popularity_cdf, rng.random(n))

    def follow_link(self, rng, courses: np.ndarray) -> np.ndarray:
        """A weighted graph neighbour of each course; -1 where the course ends its chain."""
        out = np.full(len(courses), -1, dtype=np.int64)
        has = self.degree[courses] > 0
        c = courses[has]
        lo, hi = self.link_start[c], self.link_start[c + 1]
        base = np.where(lo > 0, self.link_cum[np.maximum(lo - 1, 0)], 0.0)
        x = base + rng.random(len(c)) * (self.link_cum[hi - 1] - base)
        out[has] = self.link_dst[np.clip(np.searchsorted(self.link_cum, x, side="right"), lo, hi - 1)]
        return out


def _enrolment_lists(rng, config: SynthConfig, cat: Catalogue, n_enrolled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each learner's courses in enrolment order (flat array + offsets), without repeats.

    Position k is filled for every learner with more than k enrolments at once (vectorised over
    learners); a draw that repeats a course already on the list is redrawn from the topic mix.
    """
    U, T = len(n_enrolled), config.n_topics
    personal = rng.dirichlet(np.maximum(config.user_topic_alpha * T * cat.topic_pop, 1e-3), size=U)
    mix_cdf = np.cumsum(personal, axis=1)
    offsets = np.concatenate([[0], np.cumsum(n_enrolled)])
    courses = np.full(offsets[-1], -1, dtype=np.int64)

    def from_mix(users):
        u = rng.random(len(users)) * mix_cdf[users, -1]
        topics = np.minimum((mix_cdf[users] < u[:, None]).sum(axis=1), T - 1)
        return cat.by_topic(rng, topics)

    for k in range(int(n_enrolled.max())):
        users = np.flatnonzero(n_enrolled > k)
        draw = from_mix(users)
        r = rng.random(len(users))
        popular = r < config.p_popular
        draw[popular] = cat.by_popularity(rng, int(popular.sum()))
        if k > 0:
            graph = r >= 1.0 - config.p_graph
            g = users[graph]
            taken = courses[offsets[g] + (rng.random(len(g)) * k).astype(np.int64)]
            neighbour = cat.follow_link(rng, taken)
            draw[np.flatnonzero(graph)[neighbour >= 0]] = neighbour[neighbour >= 0]
            earlier = courses[offsets[users][:, None] + np.arange(k)[None, :]]
            for _ in range(4):  # redraw repeats; a rare leftover repeat only costs a pair
                repeat = (earlier == draw[:, None]).any(axis=1)
                if not repeat.any():
                    break
                draw[repeat] = from_mix(users[repeat])
        courses[offsets[users] + k] = draw
    return courses, offsets


@dataclasses.dataclass(frozen=True)
class Visits:
    """The simulated course visits, in time order per learner (course ids are 0-based indexes)."""

    session_user: np.ndarray  # [S] learner of each session
    visit_session: np.ndarray  # [V] session of each visit
    visit_course: np.ndarray  # [V]
    action: np.ndarray  # [V] ENROL, RESUME, SWITCH or RETURN
    n_enrolled: np.ndarray  # [U] size of each learner's enrolled set at the end


def simulate_visits(config: SynthConfig, rng: np.random.Generator, cat: Catalogue) -> Visits:
    """Sessions, what each visit does and which course it takes (vectorised over learners)."""
    U = config.users

    # Sessions and their course visits (consecutive visits always differ, so each visit after the
    # first of a session becomes one pair).
    n_sessions = _discrete_pareto(rng, config.sessions_tail, config.max_sessions, U)
    session_user = np.repeat(np.arange(U), n_sessions)
    S = len(session_user)
    # most sessions hold one course; a few are long switching sessions (Pareto-many switches)
    n_visits = _discrete_pareto(rng, config.switch_tail, config.max_session_courses, S)
    long = rng.random(S) < config.p_long_session
    switches = np.floor(config.long_session_scale * rng.random(int(long.sum())) ** (-1.0 / config.long_session_tail))
    n_visits[long] = np.minimum(1 + switches.astype(np.int64), config.max_session_courses)
    visit_session = np.repeat(np.arange(S), n_visits)
    visit_user = session_user[visit_session]
    V = len(visit_session)
    session_start = group_starts(visit_session)
    user_start = group_starts(visit_user)
    position = np.arange(V) - np.flatnonzero(session_start)[np.cumsum(session_start) - 1]

    # What each visit does; a switch needs a second enrolled course, so a learner's first switch
    # with only one course enrols instead (later ones then always have two).
    r = rng.random(V)
    action = np.where(
        session_start,
        np.where(r < config.p_enrol_start, ENROL, RESUME),
        np.where((position >= 2) & (r < config.p_return), RETURN,
                 np.where(r < config.p_return + config.p_enrol_switch, ENROL, SWITCH)),
    )
    action[user_start] = ENROL
    latest = segment_cumsum((action == ENROL).astype(np.int64), user_start) - 1  # index of the newest enrolment
    lonely = np.flatnonzero((action == SWITCH) & (latest == 0))
    first_lonely = lonely[group_starts(visit_user[lonely])] if len(lonely) else lonely
    action[first_lonely] = ENROL
    latest = segment_cumsum((action == ENROL).astype(np.int64), user_start) - 1
    n_enrolled = latest[np.append(np.flatnonzero(user_start)[1:], V) - 1] + 1  # every learner has a visit

    # Which enrolled course (index into the learner's list) each visit takes, position by position.
    index = np.where(action == ENROL, latest, (rng.random(V) * (latest + 1)).astype(np.int64))
    by_position = np.argsort(position, kind="stable")
    bounds = np.searchsorted(position[by_position], np.arange(int(position.max()) + 2))
    for k in range(1, int(position.max()) + 1):
        at = by_position[bounds[k] : bounds[k + 1]]
        switch = at[action[at] == SWITCH]
        pick = (rng.random(len(switch)) * latest[switch]).astype(np.int64)
        index[switch] = pick + (pick >= index[switch - 1])  # any enrolled course but the current one
        back = at[action[at] == RETURN]
        index[back] = index[back - 2]
    courses, offsets = _enrolment_lists(rng, config, cat, n_enrolled)
    return Visits(session_user, visit_session, courses[offsets[visit_user] + index], action, n_enrolled)


def event_kinds(config: SynthConfig, event_session: np.ndarray) -> np.ndarray:
    """Each event's kind (``EVENT_KINDS``) from the stream seeded ``[seed, KIND_SEED_OFFSET]``, so the
    kinds never move another column: drawn by ``config.kind_shares()``, except that an event after its
    session's first repeats the previous event's kind with chance ``config.kind_repeat`` (the shares
    stay each kind's share of events)."""
    rng = np.random.default_rng([config.seed, KIND_SEED_OFFSET])
    cdf = np.cumsum(np.asarray(config.kind_shares(), dtype=np.float64))
    kind = draw_from_cdf(cdf, rng.random(len(event_session)))
    if config.kind_repeat > 0:
        repeat = (rng.random(len(event_session)) < config.kind_repeat) & ~group_starts(event_session)
        kind = kind[np.maximum.accumulate(np.where(repeat, 0, np.arange(len(kind))))]  # the last fresh draw
    return np.asarray(EVENT_KINDS, dtype=object)[kind]


def visit_events(rng, config: SynthConfig, visit_session: np.ndarray) -> np.ndarray:
    """Events of each course visit: 1 + Poisson(rate). The rate is ``mean_events - 1`` times its
    session's activity, a lognormal factor of mean 1 and sigma ``events_sigma`` shared by the
    session's visits (none drawn at 0: the plain Poisson), times ``v ** (events_visits_power - 1)`` in
    a session of v visits: at power 1 every visit adds as many events, at 0 a session's events beyond
    one per visit do not grow with its visits."""
    rate = np.full(len(visit_session), config.mean_events - 1.0)
    if config.events_sigma > 0:
        sigma = config.events_sigma
        n_sessions = int(visit_session[-1]) + 1 if len(visit_session) else 0
        rate *= rng.lognormal(-sigma * sigma / 2, sigma, size=n_sessions)[visit_session]
    if config.events_visits_power != 1:
        rate *= np.bincount(visit_session)[visit_session].astype(np.float64) ** (config.events_visits_power - 1)
    return 1 + rng.poisson(rate)


def event_gaps(rng, config: SynthConfig, n: int) -> np.ndarray:
    """Whole seconds (at least 1) between consecutive events of a session: the sum of ``gap_parts``
    draws of a lognormal (median ``gap_median_seconds``, sigma ``gap_sigma``) whose draws above
    ``gap_max_seconds`` are redrawn (a longer pause would have ended the session; the few left after
    8 rounds are clipped). One generated event stands for ``gap_parts`` logged ones, so a session's
    seconds are those of a log with that many times its events."""
    total = np.zeros(n)
    for _ in range(config.gap_parts):
        gap = rng.lognormal(np.log(config.gap_median_seconds), config.gap_sigma, size=n)
        for _ in range(8):
            over = np.flatnonzero(gap > config.gap_max_seconds)
            if len(over) == 0:
                break
            gap[over] = rng.lognormal(np.log(config.gap_median_seconds), config.gap_sigma, size=len(over))
        total += np.minimum(gap, config.gap_max_seconds)
    return np.maximum(np.rint(total), 1).astype(np.int64)


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
        interactions, name=name, data_dir=data_dir, source=source, config=pipeline_config, force=force, progress=progress,
        kinds_from="the generator's event kind (the raw XuetangX event type, drawn per event by the kind_* shares or repeated, kind_repeat)",
    )


def build_builtin(name: str, data_dir=None, progress=None):
    """Build one of the ``BUILTIN`` datasets (refused in one line for any other name)."""
    if name not in BUILTIN:
        raise BenchError(f"no built-in dataset {name!r}", f"choose one of {', '.join(BUILTIN)}, or import your data with `python -m bench data import`")
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
