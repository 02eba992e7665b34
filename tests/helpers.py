"""Helpers shared by several test files, grouped by topic."""

from __future__ import annotations

from pathlib import Path

from baselines.model import GRURecommender, config_from_state_dict, read_checkpoint
from bench.data.diagnostics import XUETANGX_BANDS

# ----------------------------------------------------------------------------------------------
# Test-only helpers moved out of the source (issue 34): nothing in bench/, meta/ or baselines/ uses them


def load_checkpoint(path: str | Path, n_items: int, dropout: float = 0.2) -> GRURecommender:
    """A GRURecommender with weights from ``path`` (a state_dict, or a dict holding one)."""
    state, _ = read_checkpoint(path)
    model = GRURecommender(config_from_state_dict(state, n_items, dropout))
    model.load_state_dict(state)
    return model


def lookup(diagnostics: dict, path: str):
    """``lookup(d, "prefix_length.p90")``: a value by dotted path; None where absent."""
    value = diagnostics
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def outside_bands(diagnostics: dict) -> list[str]:
    """The XUETANGX_BANDS statistics that fall outside their band (or are missing)."""
    bad = []
    for path, (_, low, high) in XUETANGX_BANDS.items():
        if low is None and high is None:
            continue
        value = lookup(diagnostics, path)
        if value is None or (low is not None and value < low) or (high is not None and value > high):
            bad.append(f"{path}={value}")
    return bad
