"""Display names of the metrics, shared by every output and by the verdicts' wording."""

from __future__ import annotations

from bench.core.errors import BenchError
from bench.core.metrics import METRICS

METRIC_LABELS = {"acc@1": "Acc@1", "recall@5": "Recall@5", "recall@10": "Recall@10", "mrr": "MRR", "ndcg@10": "NDCG@10"}
PERCENT_METRICS = frozenset({"acc@1", "recall@5", "recall@10"})  # shown x100 with 2 decimals


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise BenchError(f"unknown metric {metric!r}", f"choose one of: {', '.join(METRICS)}")
    return metric
