"""Display names of the metrics and of the slices of the test queries, shared by every output and by
the verdicts' wording."""

from __future__ import annotations

from bench.core.errors import BenchError
from bench.core.metrics import METRICS

METRIC_LABELS = {"acc@1": "Acc@1", "recall@5": "Recall@5", "recall@10": "Recall@10", "mrr": "MRR", "ndcg@10": "NDCG@10"}
PERCENT_METRICS = frozenset({"acc@1", "recall@5", "recall@10"})  # shown x100 with 2 decimals
SLICE_NAMES = {"all": "All", "repeat": "Repeat", "explore": "Explore"}  # column headers and figure panels
SLICE_LABELS = {  # what each slice of the test queries is, in words (bench.core.metrics.SLICES)
    "all": "all queries",
    "repeat": "repeat queries (the label is already in the prefix)",
    "explore": "explore queries (a course not in the prefix)",
}


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise BenchError(f"unknown metric {metric!r}", f"choose one of: {', '.join(METRICS)}")
    return metric
