"""The session-statistics generator: each visit's events, the gaps between them and their kinds (what the
SRS reads, bench.data.srs)."""

from __future__ import annotations

import numpy as np

from bench.data.synth.arrays import draw_from_cdf, group_starts
from bench.data.synth.config import EVENT_KINDS, SynthConfig

KIND_SEED_OFFSET = 24  # event kinds come from their own stream, seed [seed, 24], so the interactions' other columns are unchanged


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
