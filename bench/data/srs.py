"""The session reliability score (SRS) of the seed project (notebook 03b_srs_scores_xuetangx).

Per session, over its raw events (before the pipeline removes consecutive repeats):
``intensity = min(events / cap_events, 1)``, ``extent = min(seconds / cap_seconds, 1)``,
``composition = min(kinds / N_KINDS, 1)``, SRS = the mean of the components, rounded to 6 decimals
as notebook 03b's ``compute_srs`` does. ``events`` is the session's number of events (notebook 02:
``count`` of its events), ``seconds`` its last event time minus its first (notebook 02:
``duration_sec = end_ts - start_ts``), ``kinds`` its number of distinct event kinds (notebook 02:
``nunique(event_type)``). The caps are the PERCENTILE-th percentiles (numpy's default, linear, as
notebook 03b) over the sessions of TRAIN users only, among those with at least MIN_CAP_EVENTS events
(notebook 02 keeps only such sessions, so its caps are over them): val and test never move a score.
Without event kinds (an interaction log without ``--event``) composition is undefined and the SRS
is the mean of intensity and extent. The per-session inputs and the score ride on every pair
(``PAIR_COLUMNS``); ``manifest["srs"]`` records the caps and the constants (``describe``).
"""

from __future__ import annotations

import numpy as np

from bench.core.errors import BenchError

N_KINDS = 6  # notebook 03b's N_POSSIBLE: "load, problem, video, seek, speed, pause"
SEED_KINDS = ("load", "problem", "video", "seek", "speed", "pause")
PERCENTILE = 95
MIN_CAP_EVENTS = 2  # notebook 02's min_events_per_session: the sessions its caps are taken over
DECIMALS = 6  # notebook 03b rounds each score to 6 decimals
COMPONENTS = ("intensity", "extent", "composition")
PAIR_COLUMNS = ("session_events", "session_seconds", "session_kinds", "session_srs")  # session_kinds only with kinds
SCORE = "session_srs"
EPISODE_COLUMN = "support_srs"  # Dataset.episodes: the mean SCORE of each episode's K support pairs
FORMULA = (
    "SRS = mean(components), rounded to 6 decimals; intensity = min(session_events / cap_events, 1); "
    "extent = min(session_seconds / cap_seconds, 1); composition = min(session_kinds / n_kinds, 1) "
    "(a cap of 0 gives 1 to any positive value, 0 to 0)"
)
DEFINITIONS = {
    "session_events": "events of the session, every raw event before consecutive repeats are removed (notebook 02: count)",
    "session_seconds": "last event time minus first event time of the session, in seconds (notebook 02: end_ts - start_ts)",
    "session_kinds": "distinct event kinds among the session's events (notebook 02: nunique(event_type))",
}


def ratio(values, cap: float) -> np.ndarray:
    """``min(values / cap, 1)``; with ``cap == 0``: 1 where a value is positive, else 0."""
    values = np.asarray(values, dtype=np.float64)
    if cap > 0:
        return np.minimum(values / float(cap), 1.0)
    return (values > 0).astype(np.float64)


def components(events, seconds, kinds, cap_events: float, cap_seconds: float, n_kinds: int = N_KINDS) -> dict[str, np.ndarray]:
    """The components of each session (``kinds`` None: no composition)."""
    parts = {"intensity": ratio(events, cap_events), "extent": ratio(seconds, cap_seconds)}
    if kinds is not None:
        parts["composition"] = np.minimum(np.asarray(kinds, dtype=np.float64) / n_kinds, 1.0)
    return parts


def scores(events, seconds, kinds, cap_events: float, cap_seconds: float, n_kinds: int = N_KINDS) -> np.ndarray:
    """The SRS of each session: the mean of its components (two without ``kinds``), float64 in [0, 1]."""
    parts = components(events, seconds, kinds, cap_events, cap_seconds, n_kinds)
    return np.round(np.mean(np.stack(list(parts.values())), axis=0), DECIMALS)


def caps(events, seconds, is_train, percentile: float = PERCENTILE, min_events: int = MIN_CAP_EVENTS) -> tuple[float, float, int]:
    """(cap_events, cap_seconds, sessions used): percentiles over the train sessions with >= ``min_events`` events.

    ``is_train`` marks the sessions of train users; nothing else enters the caps."""
    events = np.asarray(events)
    seconds = np.asarray(seconds)
    use = np.asarray(is_train, dtype=bool) & (events >= min_events)
    if not use.any():
        raise BenchError(
            f"no train session with at least {min_events} events to take the SRS caps from",
            "build from a larger input (the train split needs sessions)",
        )
    return float(np.percentile(events[use], percentile)), float(np.percentile(seconds[use], percentile)), int(use.sum())


def distribution(values) -> dict:
    """``n, mean, p10, p50, p90`` of pair-level SRS values (what `data info` shows per split)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return {"n": 0, "mean": None, "p10": None, "p50": None, "p90": None}
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return {
        "n": int(len(values)),
        "mean": round(float(values.mean()), 6),
        "p10": round(float(p10), 6),
        "p50": round(float(p50), 6),
        "p90": round(float(p90), 6),
    }


def describe(cap_events: float, cap_seconds: float, n_cap_sessions: int, kinds_from: str | None, kinds_seen, by_split: dict) -> dict:
    """``manifest["srs"]`` of a dataset with session statistics; ``kinds_from`` None: no composition."""
    with_kinds = kinds_from is not None
    seen = sorted(str(k) for k in kinds_seen) if with_kinds else []
    return {
        "available": True,
        "formula": FORMULA,
        "components": list(COMPONENTS if with_kinds else COMPONENTS[:2]),
        "composition": (
            f"distinct kinds / {N_KINDS}, clipped at 1; kinds from {kinds_from}"
            if with_kinds
            else "undefined: the source has no event kinds (import with --event COLUMN to have it); SRS = mean of intensity and extent"
        ),
        "cap_events": cap_events,
        "cap_seconds": cap_seconds,
        "percentile": PERCENTILE,
        "source": "train sessions only",
        "cap_sessions": f"sessions of train users with at least {MIN_CAP_EVENTS} events (notebook 02's min_events_per_session)",
        "n_cap_sessions": n_cap_sessions,
        "n_kinds": N_KINDS,
        "kinds": list(SEED_KINDS),
        "kinds_seen": seen[:100],
        "n_kinds_seen": len(seen),
        "decimals": DECIMALS,
        "definitions": {k: v for k, v in DEFINITIONS.items() if with_kinds or k != "session_kinds"},
        "pair_columns": [c for c in PAIR_COLUMNS if with_kinds or c != "session_kinds"],
        "pairs_by_split": by_split,
        "reference": "seed notebooks 02_sessionize_xuetangx (session statistics) and 03b_srs_scores_xuetangx (formula, caps)",
    }


def unavailable(why: str) -> dict:
    """``manifest["srs"]`` of a dataset without session statistics."""
    return {"available": False, "why": why}
