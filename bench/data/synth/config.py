"""The generator's knobs (``SynthConfig``), where each value comes from (``KNOB_SOURCES``), the event kinds' shares
and the built-in datasets."""

from __future__ import annotations

import dataclasses

from bench.core.errors import BenchError

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
    "pause_video": 10447067,
    "seek_video": 4878540,
    "problem_get": 4594062,
    "load_video": 3832977,
    "problem_check": 1589086,
    "problem_check_correct": 1287667,
    "problem_check_incorrect": 717231,
    "problem_save": 655907,
}


EVENT_KINDS = tuple(XUETANGX_EVENT_TYPE_COUNTS)


KIND_KNOBS = tuple(f"kind_{kind}" for kind in EVENT_KINDS)  # SynthConfig fields: each kind's share of events


KNOB_SOURCES.update(
    {
        knob: (
            f"share of {kind} among the real log's kept events: {XUETANGX_EVENT_TYPE_COUNTS[kind]:,} of 28,002,537 "
            "(seed notebook 01_ingest_xuetangx cell 01-08 / its report.json top_event_types), rounded to 6 decimals; "
            "drawn per event (unless it repeats the previous kind, kind_repeat); used only by the SRS's composition"
        )
        for kind, knob in zip(EVENT_KINDS, KIND_KNOBS)
    }
)


# Session statistics (issue 24): printed by the seed for real XuetangX (notebooks 02_sessionize, 03b_srs_scores,
# 09_srs_validation); sessions of >= 2 events, as the seed keeps. At the real scale: a generated event is a logged
# one (gap_parts 1), so events, seconds and kinds per session are compared with the printed figures directly.
KNOB_SOURCES.update(
    {
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
    }
)


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
        probabilities = (
            self.p_long_session,
            self.graph_link_prob,
            self.p_graph,
            self.p_popular,
            self.p_enrol_start,
            self.p_enrol_switch,
            self.p_return,
        )
        checks = [
            (self.users >= 10, "--users must be at least 10"),
            (self.n_courses >= self.n_topics >= 1, "--n-courses must be at least --n-topics, both positive"),
            (all(0.0 <= p <= 1.0 for p in probabilities), "probabilities must lie in [0, 1]"),
            (self.p_graph + self.p_popular <= 1.0, "--p-graph plus --p-popular must be at most 1"),
            (self.p_return + self.p_enrol_switch <= 1.0, "--p-return plus --p-enrol-switch must be at most 1"),
            (
                min(self.sessions_tail, self.switch_tail, self.long_session_tail, self.long_session_scale, self.user_topic_alpha) > 0
                and self.zipf >= 0,
                "tails, zipf and alpha must be positive",
            ),
            (self.graph_window >= 0, "--graph-window must be at least 0"),
            (self.mean_events >= 1 and self.max_sessions >= 1 and self.max_session_courses >= 1, "means and caps must be at least 1"),
            (
                self.events_sigma >= 0 and self.gap_sigma >= 0 and 0 < self.gap_median_seconds <= self.gap_max_seconds and self.gap_parts >= 1,
                "--events-sigma and --gap-sigma must be non-negative, --gap-median-seconds positive and at most --gap-max-seconds, "
                "--gap-parts at least 1",
            ),
            (0.0 <= self.kind_repeat < 1.0, "--kind-repeat must lie in [0, 1)"),
            (
                all(share >= 0 for share in self.kind_shares()) and sum(self.kind_shares()) > 0,
                "event kind shares (--kind-*) must be non-negative with a positive sum",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise BenchError(f"bad synth parameter: {message}", "see `python -m bench data synth --help`")

    def kind_shares(self) -> tuple[float, ...]:
        """The event kinds' shares, in ``EVENT_KINDS`` order (not normalised)."""
        return tuple(float(getattr(self, knob)) for knob in KIND_KNOBS)
