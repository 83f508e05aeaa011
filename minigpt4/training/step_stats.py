"""A training micro-step's numbers, summed over ranks by name with one all-reduce.

Every rank packs the same names in the same order into one float64 tensor on its device (nccl
reduces CUDA tensors only), sums it over ranks and reads the sums back by name. Each entry is
summed on its own, so the layout does not change any value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from minigpt4.utils import dist


def dataset_stat(name: str) -> str:
    """The statistic that counts a step's samples from the dataset entry ``name``."""
    return f"samples_from:{name}"


def dataset_loss_stat(name: str) -> str:
    """The statistic that sums a step's loss times its samples from the dataset entry ``name``."""
    return f"loss_sum_from:{name}"


class StepStats:
    """The fixed, named layout of one step's statistics; a missing or None value counts as 0."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        repeated = sorted({n for n in self.names if self.names.count(n) > 1})
        if repeated:
            raise ValueError(f"step statistics named twice: {repeated}")

    def pack(self, values: Mapping[str, Any], device: torch.device | str = "cpu") -> torch.Tensor:
        """``values`` in this layout as one float64 tensor on ``device``."""
        unknown = sorted(set(values) - set(self.names))
        if unknown:
            raise KeyError(f"step statistics {unknown} are not in the layout {list(self.names)}")
        return torch.tensor([values.get(n) or 0 for n in self.names], dtype=torch.float64, device=device)

    def unpack(self, packed: torch.Tensor) -> dict[str, float]:
        """A packed (or reduced) tensor read back by name."""
        return dict(zip(self.names, packed.tolist()))

    def reduce(self, values: Mapping[str, Any], device: torch.device | str = "cpu") -> dict[str, float]:
        """``values`` summed over all ranks (every rank must call this with the same layout)."""
        return self.unpack(dist.all_reduce_sum(self.pack(values, device)))
