"""The pipeline's parameters (``PipelineConfig``), the splits and the schemas of pairs and episodes."""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from bench.core.errors import BenchError

SPLITS = ("train", "val", "test")


MANIFEST = "dataset.json"


SCHEMA_VERSION = 1


PAIRS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("session_id", pa.string()),
        ("prefix", pa.list_(pa.int64())),
        ("label", pa.int64()),
        ("timestamp", pa.int64()),
    ]
)


EPISODE_COLUMNS = ("user_id", "support_prefixes", "support_labels", "query_prefixes", "query_labels")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The pipeline's parameters; all of them are recorded in dataset.json."""

    max_prefix: int = 50
    split_seed: int = 20260107
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    K: int = 5
    Q: int = 10
    stride: int = 1
    test_episodes_per_user: int = 1  # val/test episodes per learner; 1 is the seed notebook's protocol

    def __post_init__(self):
        if self.K < 1 or self.Q < 1:
            raise BenchError(f"K={self.K} and Q={self.Q} must both be at least 1", "pass --K 5 --Q 10 or similar")
        if self.stride < 1:
            raise BenchError(f"stride {self.stride} must be at least 1", "pass --stride 1")
        check_episodes_per_user(self.test_episodes_per_user)
        if self.max_prefix < 1:
            raise BenchError(f"max_prefix {self.max_prefix} must be at least 1", "pass --max-prefix 50")

    def to_json(self) -> dict:
        return {
            "max_prefix": self.max_prefix,
            "split_seed": self.split_seed,
            "split_fractions": list(self.split_fractions),
            "K": self.K,
            "Q": self.Q,
            "stride": self.stride,
            "test_episodes_per_user": self.test_episodes_per_user,
        }


def check_episodes_per_user(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise BenchError(f"test_episodes_per_user {n!r} must be a whole number >= 1", "pass --test-episodes-per-user 1 (the seed's protocol) or more")
    return n
