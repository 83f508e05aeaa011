"""What the training runner calls on a model besides ``nn.Module``'s own methods (``MiniGPT4`` is one)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class TrainableModel(Protocol):
    """A model the runner places, trains (``nn.Module``) and checkpoints."""

    def place(self, device: str | torch.device) -> nn.Module:
        """The model on ``device`` (parts that must stay where they are may stay)."""
        ...

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The parameters that train, detached: what a training checkpoint stores under ``model``."""
        ...
