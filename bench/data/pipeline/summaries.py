"""The summaries of dataset.json: pairs, users and prefix lengths per split."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _quantiles(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {}
    q = np.percentile(values, [0, 25, 50, 75, 90, 100])
    return {
        "mean": round(float(np.mean(values)), 4),
        **{k: float(v) for k, v in zip(("min", "p25", "median", "p75", "p90", "max"), q)},
    }


def summarise(pairs_by_split: dict[str, pa.Table], n_items: int, max_prefix: int) -> dict:
    """Prefix-length and label-popularity summaries over all pairs."""
    all_pairs = pa.concat_tables(pairs_by_split.values())
    lengths = pc.list_value_length(all_pairs.column("prefix")).to_numpy()
    labels = all_pairs.column("label").to_numpy()
    counts = np.sort(np.bincount(labels, minlength=n_items + 1)[1:])[::-1]
    total = max(int(counts.sum()), 1)
    cum = np.cumsum(counts)
    ascending = np.sort(counts).astype(np.float64)
    m = len(ascending)
    # Gini coefficient of label counts over all items (0 = uniform, near 1 = concentrated)
    gini = float(2 * np.sum(np.arange(1, m + 1) * ascending) / (m * total) - (m + 1) / m) if m else 0.0
    return {
        "prefix_length": {**_quantiles(lengths), "share_truncated": round(float(np.mean(lengths >= max_prefix)), 6)},
        "label_popularity": {
            "items_seen_as_label": int((counts > 0).sum()),
            "top1_share": round(float(cum[0] / total), 6) if len(cum) else 0.0,
            "top10_share": round(float(cum[min(9, len(cum) - 1)] / total), 6) if len(cum) else 0.0,
            "top1pct_items_share": round(float(cum[max(0, int(0.01 * len(cum)) - 1)] / total), 6) if len(cum) else 0.0,
            "gini": round(gini, 6),
        },
    }
