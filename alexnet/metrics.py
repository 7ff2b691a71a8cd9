"""Classification metrics: top-k error counts per batch and running sums kept on the device."""
from __future__ import annotations

import torch


def topk_wrong(scores: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[torch.Tensor]:
    """Number of samples whose label is not among the ``k`` highest scores, for each k (0-d tensors).

    ``k`` larger than the number of classes counts as the number of classes (every sample is right).
    """
    maxk = min(max(ks), scores.shape[1])
    top = scores.topk(maxk, dim=1).indices  # N x maxk
    hit = top.eq(target.view(-1, 1))
    return [(~hit[:, : min(k, maxk)].any(dim=1)).sum() for k in ks]


class RunningSums:
    """Named running sums; values stay tensors (no device sync) until ``totals()``."""

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor | float] = {}

    def add(self, **values: torch.Tensor | float) -> None:
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().double()
            self._sums[name] = self._sums.get(name, 0.0) + value

    def totals(self) -> dict[str, float]:
        return {name: float(value) for name, value in self._sums.items()}
