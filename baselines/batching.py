"""Turning lists of item-id prefixes into padded tensors (one place, so every method pads alike)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_prefixes(prefixes: Sequence[Sequence[int]], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad prefixes with 0: returns (LongTensor [B, T], lengths LongTensor [B]).

    Every prefix must hold at least one item (a pair's prefix is never empty).
    """
    lengths = torch.tensor([len(p) for p in prefixes], dtype=torch.long)
    if len(prefixes) == 0 or int(lengths.min()) < 1:
        raise ValueError("every prefix must hold at least one item")
    padded = torch.zeros(len(prefixes), int(lengths.max()), dtype=torch.long)
    for row, prefix in enumerate(prefixes):
        padded[row, : len(prefix)] = torch.as_tensor(list(prefix), dtype=torch.long)
    return padded.to(device), lengths.to(device)
