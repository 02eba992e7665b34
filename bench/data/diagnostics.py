"""Model-free data diagnostics, computed for every dataset at build time (dataset.json "diagnostics").

They describe whether a dataset can reward adaptation at all, before any model runs; they are
descriptive figures, never targets. Definitions (all shares are fractions):
- users_with_pairs_share: users with >= 1 pair / users with events.
- pairs_per_user {p50, p90}: over users with pairs, all splits. train_users_ge15_share: train users
  with >= 15 pairs / train users with pairs.
- courses_per_session_mean: (pairs + sessions) / sessions, i.e. distinct consecutive courses per session.
- sessions_per_user {p50, p90, mean}: over users with events.
- prefix_length {p50, p90, p99, cut_share}: a pair's prefix length before truncation (its position
  in the session; the stored length when sessions are unknown), all splits; cut_share: share of
  prefixes longer than max_prefix. prefix_length_hist: counts of stored lengths 1..max_prefix.
- top1/top5_label_share, label_gini, label_share_curve: over train labels (Gini over all items).
- excludes_last_prefix_item: no pair's label equals its prefix's last item (consecutive repeats
  removed), so that item is never ranked, here as by the evaluator (bench.core.metrics).
- popularity_acc@1 and markov1_acc@1: train-label counts, resp. the most frequent successor of the
  query's last item in the train pairs, scored on the test episodes' queries by bench.core.metrics'
  ranking (ties count against the model; the last prefix item excluded where it can never be the label).
- revisit_rate: share of pairs (all splits) whose label is already in its prefix.
- scored_queries {n, label_in_prefix, label_is_before_last}: over the scored test queries (the test
  episodes' query pairs, what every leaderboard number is computed on): the share of labels found in
  the query's prefix, and equal to the course before its last.
  label_in_prefix is also the repeat-only ceiling: the best Acc@1 of any predictor that only
  proposes prefix items (a label outside the prefix is always missed by it).
- recency_rule_acc@1 (before: "recency_acc@1", shown as the "repeat ceiling", which it is not; read
  by ``recency_rule_acc``): Acc@1 on the scored test queries of the rule with no parameters (the
  prefix's distinct items except its last, most recent first, then every other course by
  train-label popularity, ties to the lower id): what repeating recent courses alone scores.
- scored_query_slices {repeat, explore}: the scored test queries split by whether the label is in the
  query's prefix (repeat) or not (explore); each: queries, share (of the scored queries), episodes (with
  a query in the slice), and popularity_acc@1, markov1_acc@1, recency_rule_acc@1 on that slice (on
  explore queries the recency rule is its popularity fallback), each as a leaderboard slice is averaged:
  per episode the mean over its queries in the slice, then the mean over the episodes with any. The
  overall figures pool every query (the same as the episode mean there: every episode has Q queries).
- support_signal {own, shuffled, ratio}: share of test query labels that are among the episode's
  support items (prefixes and labels) but not in the query's prefix; shuffled: the same with
  another test episode's support (seeded pairing, no episode keeps its own); ratio = own / shuffled.
- markov_support {bonus, acc_without, acc_with, gain}: Markov-1 row probabilities plus ``bonus`` for
  each of the episode's support items that is not in the query's own prefix (a bonus on the prefix's
  items would measure revisits, not the support); the bonus is the best of BONUSES on val episodes
  (ties: the smallest), then applied to test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
import torch

from bench.core.metrics import popularity_then_id, ranks_from_scores
from bench.data import pipeline

# Real XuetangX under the seed's protocol (shared notes) and the band issue 8 asks of the built-in
# stand-in: statistic path -> (real, low, high); None = open.
XUETANGX_BANDS = {
    "users_with_pairs_share": (0.34, 0.25, 0.45),
    "pairs_per_user.p50": (2, 1, 3),
    "pairs_per_user.p90": (9, 6, 13),
    "train_users_ge15_share": (0.055, 0.03, 0.09),
    "courses_per_session_mean": (1.60, 1.4, 1.9),
    "prefix_length.p50": (3, 2, 5),
    "prefix_length.p90": (19, 12, 30),
    "prefix_length.p99": (79, 40, None),
    "prefix_length.cut_share": (None, 0.005, None),  # real: "over 1%"
    "top1_label_share": (0.0227, 0.015, 0.035),
    "top5_label_share": (0.077, 0.05, 0.11),
    "popularity_acc@1": (0.0173, 0.01, 0.03),
    "test_episodes": (313, 300, None),
    "sessions_per_user.p50": (1, None, None),
    "sessions_per_user.p90": (6, None, None),
    "sessions_per_user.mean": (2.6, None, None),
}
SHUFFLE_SEED = 0  # the support signal's shuffled pairing
BONUSES = (0.0, 0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 10.0)
GE = 15  # the real data's "users with >= 15 pairs" (= K+Q at the default K=5, Q=10)
CURVE_POINTS = 200
SCORE_CELLS = 1 << 22  # queries x items scored at once


def _r(value: float | None, digits: int = 6):
    return None if value is None else round(float(value), digits)


def _quantiles(values, which) -> dict:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return {f"p{q}": None for q in which}
    return {f"p{q}": _r(np.percentile(values, q)) for q in which}


def _array(column) -> pa.Array:
    """One contiguous array from a (possibly chunked, possibly empty) list column."""
    if isinstance(column, pa.ChunkedArray):
        return pa.concat_arrays(column.chunks) if column.num_chunks else pa.array([], type=column.type)
    return column


def _lists(column) -> tuple[np.ndarray, np.ndarray]:
    """A list<int> column as (offsets, flat int64 values)."""
    arr = _array(column)
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return offsets, pc.list_flatten(arr).to_numpy(zero_copy_only=False).astype(np.int64)


def _flatten_once(column) -> pa.Array:
    """list<list<int>> -> list<int>: one entry per inner list (per query or support pair)."""
    return pc.list_flatten(_array(column))


def _label_in_prefix(offsets: np.ndarray, flat: np.ndarray, labels: np.ndarray) -> np.ndarray:
    rows = np.repeat(np.arange(len(labels)), np.diff(offsets))
    return np.bincount(rows[flat == labels[rows]], minlength=len(labels)) > 0


class _Queries:
    """An episode table's queries, flat: label, episode, last prefix item, label-in-prefix, and the
    episodes' support items as sorted (episode, item) pairs."""

    def __init__(self, episodes: pa.Table):
        per_episode, self.labels = _lists(episodes.column("query_labels"))
        self.n_episodes = episodes.num_rows
        self.episode = np.repeat(np.arange(self.n_episodes), np.diff(per_episode))
        q_off, q_flat = _lists(_flatten_once(episodes.column("query_prefixes")))  # one prefix per query
        self.prefix_offsets, self.prefix_items = q_off, q_flat
        self.last = q_flat[q_off[1:] - 1]
        lengths = np.diff(q_off)
        self.before_last = np.where(lengths >= 2, q_flat[np.maximum(q_off[1:] - 2, 0)], 0)  # 0: no course before last
        self.in_prefix = _label_in_prefix(q_off, q_flat, self.labels)
        s_per_episode, s_labels = _lists(episodes.column("support_labels"))
        s_off, s_flat = _lists(_flatten_once(episodes.column("support_prefixes")))
        pair_episode = np.repeat(np.arange(self.n_episodes), np.diff(s_per_episode))
        item_episode = np.concatenate([np.repeat(pair_episode, np.diff(s_off)), pair_episode])
        keys = np.unique(item_episode * (1 << 32) + np.concatenate([s_flat, s_labels]))
        self.support_keys = keys
        self.support_episode, self.support_item = keys >> 32, keys & ((1 << 32) - 1)

    def label_in_support(self, support_of: np.ndarray) -> np.ndarray:
        """Whether each query's label is among the support items of episode ``support_of[its episode]``."""
        return np.isin(support_of[self.episode].astype(np.int64) * (1 << 32) + self.labels, self.support_keys)


def _hits(score_rows, labels: np.ndarray, n_items: int, excluded: np.ndarray | None = None) -> np.ndarray:
    """Per query, whether its label ranks first, from scores built chunk by chunk: ``score_rows(lo, hi) ->
    Tensor [hi-lo, n_items+1]``, ranked by the evaluator. ``excluded``: per query the item the dataset's
    protocol leaves out of the ranking (the query prefix's last item where it can never be the label); None: none."""
    hits = np.zeros(len(labels), dtype=bool)
    step = max(1, SCORE_CELLS // (n_items + 1))
    for lo in range(0, len(labels), step):
        hi = min(lo + step, len(labels))
        left_out = None if excluded is None else torch.as_tensor(excluded[lo:hi], dtype=torch.long)
        ranks = ranks_from_scores(score_rows(lo, hi), torch.as_tensor(labels[lo:hi], dtype=torch.long), left_out)
        hits[lo:hi] = (ranks == 1).numpy()
    return hits


def _mean(hits: np.ndarray) -> float | None:
    """Acc@1 of per-query hits; None without a query."""
    return float(hits.mean()) if len(hits) else None


def _recency_hits(queries: _Queries, popularity: torch.Tensor, n_items: int, excluded: np.ndarray | None) -> np.ndarray:
    """Per-query hits of the repeat rule with no parameters: the query prefix's distinct items except its last,
    most recent first, then every other course by train-label popularity (ties: the lower id first).
    The same rule as the `recency` baseline's zero-shot mode; scores are exact ranks (float32-safe)."""
    base = torch.as_tensor(popularity_then_id(popularity.numpy()), dtype=torch.float64)  # 0..V-1, no ties
    offsets, items = queries.prefix_offsets, queries.prefix_items

    def rows(lo, hi):
        scores = base.expand(hi - lo, -1).clone()
        start, end = offsets[lo], offsets[hi]
        row = np.repeat(np.arange(hi - lo), np.diff(offsets[lo : hi + 1]))
        position = np.arange(end - start) - (offsets[lo:hi] - start)[row]  # 0 = the oldest prefix item
        flat = torch.as_tensor(row * (n_items + 1) + items[start:end], dtype=torch.long)
        prefix_score = torch.as_tensor(n_items + 1 + position, dtype=torch.float64)  # above every popularity rank
        scores.view(-1).scatter_reduce_(0, flat, prefix_score, reduce="amax")
        last = torch.as_tensor(queries.last[lo:hi], dtype=torch.long)
        scores[torch.arange(hi - lo), last] = base[last]  # "except its last": the last item is not a prefix candidate
        return scores

    return _hits(rows, queries.labels, n_items, excluded)


def _markov_table(train: pa.Table, n_items: int) -> sp.csr_matrix:
    """Row-normalised counts of (last prefix item -> label) over the train pairs."""
    offsets, flat = _lists(train.column("prefix"))
    labels = train.column("label").to_numpy().astype(np.int64)
    last = flat[offsets[1:] - 1]
    counts = sp.coo_matrix((np.ones(len(labels)), (last, labels)), shape=(n_items + 1, n_items + 1)).tocsr()
    counts.sum_duplicates()
    totals = np.asarray(counts.sum(axis=1)).ravel()
    return sp.diags(np.where(totals > 0, 1.0 / np.maximum(totals, 1), 0.0)) @ counts


def _markov_hits(table: sp.csr_matrix, queries: _Queries, n_items: int, bonus: float, excluded: np.ndarray | None = None) -> np.ndarray:
    """Markov-1 per-query hits, with ``bonus`` added to each support item that is NOT in the query's own prefix
    (a bonus on the prefix's items would measure revisits, not what the support tells)."""
    support = sp.csr_matrix(
        (np.ones(len(queries.support_item)), (queries.support_episode, queries.support_item)),
        shape=(max(queries.n_episodes, 1), n_items + 1),
    )
    offsets, items = queries.prefix_offsets, queries.prefix_items
    in_prefix = sp.csr_matrix(
        (np.ones(len(items)), (np.repeat(np.arange(len(offsets) - 1), np.diff(offsets)), items)),
        shape=(max(len(offsets) - 1, 1), n_items + 1),
    )
    in_prefix.data[:] = 1.0  # repeated prefix items count once

    def rows(lo, hi):
        scores = table[queries.last[lo:hi]]
        if bonus:
            own = support[queries.episode[lo:hi]]
            scores = scores + bonus * (own - own.multiply(in_prefix[lo:hi]))
        return torch.as_tensor(scores.toarray())

    return _hits(rows, queries.labels, n_items, excluded)


def _label_stats(train_labels: np.ndarray, n_items: int) -> dict:
    counts = np.sort(np.bincount(train_labels, minlength=n_items + 1)[1:])[::-1].astype(np.float64)
    total = counts.sum()
    if total == 0:
        return {"top1_label_share": None, "top5_label_share": None, "label_gini": None, "label_share_curve": []}
    cum = np.cumsum(counts) / total
    ascending = counts[::-1]
    m = len(ascending)
    gini = 2 * np.sum(np.arange(1, m + 1) * ascending) / (m * total) - (m + 1) / m
    half = CURVE_POINTS // 2
    ranks = np.unique(np.concatenate([np.geomspace(1, m, half), np.linspace(1, m, half)]).round().astype(np.int64))
    return {
        "top1_label_share": _r(cum[0]),
        "top5_label_share": _r(cum[min(4, m - 1)]),
        "label_gini": _r(gini),
        "label_share_curve": [[int(r), _r(cum[r - 1])] for r in ranks],
    }


def _prefix_stats(pairs: pa.Table, max_prefix: int | None, sessions_known: bool) -> dict:
    offsets, flat = _lists(pairs.column("prefix"))
    stored = np.diff(offsets)
    cap = int(max_prefix) if max_prefix else int(stored.max(initial=1))
    untruncated, cut = stored, stored >= cap  # without sessions: the stored length; "cut" = at the cap
    if sessions_known and len(stored):
        keys = pd.DataFrame(
            {"u": pairs.column("user_id").to_numpy(zero_copy_only=False), "s": pairs.column("session_id").to_numpy(zero_copy_only=False)}
        )
        position = keys.groupby(["u", "s"], sort=False).cumcount().to_numpy() + 1
        # a pair's position in its session is its untruncated length where it agrees with every stored one
        if (np.minimum(position, cap) == stored).all():
            untruncated, cut = position, position > cap
    return {
        "prefix_length": {**_quantiles(untruncated, (50, 90, 99)), "cut_share": _r(cut.mean()) if len(cut) else None},
        "prefix_length_hist": np.bincount(np.minimum(stored, cap), minlength=cap + 1)[1:].tolist(),
        "revisit_rate": _r(_label_in_prefix(offsets, flat, pairs.column("label").to_numpy()).mean()) if len(stored) else None,
    }


def compute(
    pairs_by_split: dict[str, pa.Table],
    episodes_by_split: dict[str, pa.Table],
    n_items: int,
    *,
    max_prefix: int | None,
    n_users: int | None = None,
    n_sessions: int | None = None,
    sessions_per_user=None,
) -> dict:
    """Every diagnostic of the module docstring; figures the source cannot give (sessions of an
    episodes-only import) are None. ``episodes_by_split`` holds val and test at the dataset's K, Q."""
    all_pairs = pa.concat_tables(pairs_by_split.values())
    train = pairs_by_split["train"]
    per_user = pd.Series(all_pairs.column("user_id").to_numpy(zero_copy_only=False)).value_counts().to_numpy()
    train_per_user = pd.Series(train.column("user_id").to_numpy(zero_copy_only=False)).value_counts().to_numpy()
    train_labels = train.column("label").to_numpy().astype(np.int64)
    spu = np.asarray(sessions_per_user if sessions_per_user is not None else [], dtype=np.float64)
    test, val = _Queries(episodes_by_split["test"]), _Queries(episodes_by_split["val"])

    popularity = torch.as_tensor(np.bincount(train_labels, minlength=n_items + 1)[: n_items + 1], dtype=torch.float64)
    rule = pipeline.exclusion_rule([(all_pairs.column("prefix"), all_pairs.column("label"))])  # the evaluator's protocol
    exclude_last = rule == pipeline.LAST_PREFIX_ITEM
    test_excluded = test.last if exclude_last else None
    val_excluded = val.last if exclude_last else None
    table = _markov_table(train, n_items)
    val_acc = [_mean(_markov_hits(table, val, n_items, b, val_excluded)) for b in BONUSES]
    best = BONUSES[int(np.argmax([-1.0 if a is None else a for a in val_acc]))]  # argmax: the first (smallest) on ties
    markov_hits = _markov_hits(table, test, n_items, 0.0, test_excluded)
    without = _mean(markov_hits)
    with_bonus = _mean(_markov_hits(table, test, n_items, best, test_excluded))
    popularity_hits = _hits(lambda lo, hi: popularity.expand(hi - lo, -1), test.labels, n_items, test_excluded)
    recency_hits = _recency_hits(test, popularity, n_items, test_excluded)

    in_prefix = test.in_prefix
    own = test.label_in_support(np.arange(test.n_episodes)) & ~in_prefix
    perm = np.random.default_rng(SHUFFLE_SEED).permutation(test.n_episodes)
    other = np.empty(test.n_episodes, dtype=np.int64)
    other[perm] = np.roll(perm, -1)  # a cycle through a random order: nobody keeps their own support
    shuffled = test.label_in_support(other) & ~in_prefix
    own_share = own.mean() if len(own) else None
    shuffled_share = shuffled.mean() if len(shuffled) and test.n_episodes > 1 else None

    return {
        "users_with_pairs_share": _r(len(per_user) / n_users) if n_users else None,
        "pairs_per_user": _quantiles(per_user, (50, 90)),
        "train_users_ge15_share": _r((train_per_user >= GE).mean()) if len(train_per_user) else None,
        "courses_per_session_mean": _r((all_pairs.num_rows + n_sessions) / n_sessions) if n_sessions else None,
        "sessions_per_user": {**_quantiles(spu, (50, 90)), "mean": _r(spu.mean()) if len(spu) else None},
        **_prefix_stats(all_pairs, max_prefix, sessions_known=n_sessions is not None),
        **_label_stats(train_labels, n_items),
        "popularity_acc@1": _r(_mean(popularity_hits)),
        "test_episodes": test.n_episodes,
        "markov1_acc@1": _r(without),
        "excludes_last_prefix_item": exclude_last,
        "scored_queries": {
            "n": int(len(test.labels)),
            "label_in_prefix": _r(in_prefix.mean()) if len(in_prefix) else None,
            "label_is_before_last": _r((test.labels == test.before_last).mean()) if len(in_prefix) else None,
        },
        "recency_rule_acc@1": _r(_mean(recency_hits)),
        "scored_query_slices": _slices(test.episode, test.in_prefix, popularity_hits, markov_hits, recency_hits),
        "support_signal": {
            "own": _r(own_share),
            "shuffled": _r(shuffled_share),
            "ratio": _r(own_share / shuffled_share, 4) if own_share is not None and shuffled_share else None,
        },
        "markov_support": {
            "bonus": best,
            "acc_without": _r(without),
            "acc_with": _r(with_bonus),
            "gain": _r(with_bonus - without) if without is not None and with_bonus is not None else None,
        },
    }


SLICES = ("repeat", "explore")  # the label already in the query's prefix, or a course new to it


def _episode_mean(hits: np.ndarray, episode: np.ndarray) -> float | None:
    """Acc@1 as the leaderboard means it: per episode the mean over its queries given, then the mean over
    the episodes that have any (an episode with no query here is left out); None without a query."""
    if len(hits) == 0:
        return None
    counts = np.bincount(episode)
    sums = np.bincount(episode, weights=hits.astype(np.float64))
    kept = counts > 0
    return float((sums[kept] / counts[kept]).mean())


def _slices(episode: np.ndarray, in_prefix: np.ndarray, popularity: np.ndarray, markov: np.ndarray, recency: np.ndarray) -> dict:
    """The model-free rules' Acc@1 on the repeat and on the explore queries, each a mean over the episodes
    with a query in the slice of their means over those queries (None on an empty slice)."""
    out = {}
    for name, mask in zip(SLICES, (in_prefix, ~in_prefix)):
        out[name] = {
            "queries": int(mask.sum()),
            "share": _r(mask.mean()) if len(mask) else None,
            "episodes": int(len(np.unique(episode[mask]))),
            "popularity_acc@1": _r(_episode_mean(popularity[mask], episode[mask])),
            "markov1_acc@1": _r(_episode_mean(markov[mask], episode[mask])),
            "recency_rule_acc@1": _r(_episode_mean(recency[mask], episode[mask])),
        }
    return out


def recency_rule_acc(diagnostics: dict) -> float | None:
    """The zero-shot recency rule's Acc@1, from datasets built before and after its key was renamed."""
    return diagnostics.get("recency_rule_acc@1", diagnostics.get("recency_acc@1"))


def sessions_per_user(collapsed: pd.DataFrame) -> np.ndarray:
    """Sessions of each user with events, from the collapsed interactions (``user, session`` columns)."""
    return collapsed.drop_duplicates(["user", "session"]).groupby("user", sort=False).size().to_numpy()


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value, fmt: str = "g") -> str:
    return "-" if value is None else format(value, fmt)


def _rebuild(manifest: dict) -> str:
    """How to record what a dataset built by older code lacks (its files, so its content hash, stay the same)."""
    if (manifest.get("source") or {}).get("kind") == "synth":
        return f"rebuild: python -m bench data synth --name {manifest.get('name', 'NAME')} --force (same content hash)"
    return "rebuild: import it again with --force"


def _shots(manifest: dict) -> str:
    """The dataset's own shots (" at K=5, Q=10"), at which the diagnostics' test episodes are drawn."""
    counts = manifest.get("counts") or {}
    return f" at K={counts['K']}, Q={counts['Q']}" if "K" in counts and "Q" in counts else ""


def summary_items(manifest: dict) -> list[tuple[str, ...]]:
    """The header's lines, each a tuple of phrases that a renderer must never break (a figure stays
    with its words); joined by a space they read as one line (markdown), and a terminal renderer wraps
    a line between phrases only. Each line says in words what its figures measure; [] when the dataset
    has no diagnostics."""
    d = manifest.get("diagnostics")
    if not d:
        return []
    ppu, pl, sig, ms = d["pairs_per_user"], d["prefix_length"], d["support_signal"], d["markov_support"]
    gain = None if ms["gain"] is None else 100 * ms["gain"]
    lines = [
        (
            f"users with pairs {_pct(d['users_with_pairs_share'])};",
            f"pairs/user p50 {_num(ppu['p50'])} p90 {_num(ppu['p90'])};",
            f"courses/session {_num(d['courses_per_session_mean'], '.2f')};",
            f"{d['test_episodes']:,} test episodes",
        ),
        (
            f"prefix length p50 {_num(pl['p50'])} p90 {_num(pl['p90'])} p99 {_num(pl['p99'])} (cut {_pct(pl['cut_share'])});",
            f"all pairs: label already in prefix {_pct(d['revisit_rate'])}",
        ),
        (
            f"train labels: top-1 {_pct(d['top1_label_share'])}, top-5 {_pct(d['top5_label_share'])}, Gini {_num(d['label_gini'], '.2f')};",
            f"popularity Acc@1 {_pct(d['popularity_acc@1'])}",
        ),
    ]
    scored = d.get("scored_queries")
    if scored is not None:
        share = scored["label_in_prefix"]
        lines += [
            (
                f"scored test queries{_shots(manifest)}: repeat (label already in the prefix) {_pct(share)},",
                f"explore (a course new to the prefix) {_pct(None if share is None else 1 - share)};",
                f"the course before last {_pct(scored['label_is_before_last'])}",
            ),
            (f"repeat-only ceiling {_pct(share)}:", f"a rule that only repeats prefix courses can score at most {_pct(share)} Acc@1"),
            (
                f"recency rule, no parameters, Acc@1 {_pct(recency_rule_acc(d))}" + (";" if d.get("excludes_last_prefix_item") else ""),
                *(("last prefix course not ranked",) if d.get("excludes_last_prefix_item") else ()),
            ),
        ]
        slices = d.get("scored_query_slices")
        if slices:
            rep, exp = slices["repeat"], slices["explore"]
            lines.append(
                (
                    "Acc@1 on repeat | explore queries:",
                    f"popularity {_pct(rep['popularity_acc@1'])} | {_pct(exp['popularity_acc@1'])};",
                    f"Markov-1 {_pct(rep['markov1_acc@1'])} | {_pct(exp['markov1_acc@1'])};",
                    f"recency rule {_pct(rep['recency_rule_acc@1'])} | {_pct(exp['recency_rule_acc@1'])} (its popularity fallback)",
                )
            )
        else:  # built before the slices were recorded
            lines.append(("Acc@1 on repeat | explore queries: not recorded (built before they were);", _rebuild(manifest)))
    lines += [
        (
            f"Markov-1 Acc@1 {_pct(ms['acc_without'])};",
            f"+ bonus ({_num(ms['bonus'])}, val) on support courses not in the prefix {_pct(ms['acc_with'])}:",
            f"{'-' if gain is None else f'{gain:+.1f}'} pts",
        ),
        (
            f"support signal: labels in own support, not in prefix {_pct(sig['own'])};",
            f"in another's {_pct(sig['shuffled'])} (x{_num(sig['ratio'], '.2f')})",
        ),
    ]
    return lines


def summary_lines(manifest: dict) -> list[str]:
    """``summary_items``, each line's phrases joined by a space (plain text, markdown)."""
    return [" ".join(items) for items in summary_items(manifest)]
