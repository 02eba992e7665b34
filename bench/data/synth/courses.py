"""The enrolment and course-walk generator: the catalogue (topics, popularity, the course graph), each learner's
enrolled courses, and the sessions' visits (enrol, resume, switch, return)."""

from __future__ import annotations

import dataclasses

import numpy as np

from bench.data.synth.arrays import draw_from_cdf, group_starts, segment_cumsum
from bench.data.synth.config import SynthConfig

ENROL, RESUME, SWITCH, RETURN = 0, 1, 2, 3  # what a visit does


def _discrete_pareto(rng, tail: float, cap: int, size: int) -> np.ndarray:
    """floor(U ** (-1 / tail)) capped: P(X >= k) = k ** -tail for k <= cap; mode 1."""
    return np.minimum(np.floor(rng.random(size) ** (-1.0 / tail)), cap).astype(np.int64)


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
        np.where((position >= 2) & (r < config.p_return), RETURN, np.where(r < config.p_return + config.p_enrol_switch, ENROL, SWITCH)),
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
