"""Learning-rate schedules, stepped once per optimizer step with the global step
``t = epoch * iters_per_epoch + step``; the formulas are in docs/training.md (*Learning rate*).

The lr is a pure function of ``t`` (``lr_at``), so resuming needs no scheduler state beyond the
settings, which are saved and checked against the config on resume.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from minigpt4.registry import LR_SCHEDULERS
from minigpt4.utils.logging import get_logger


class _Schedule:
    """Base: sets ``lr`` on every param group at ``step(epoch, step)``."""

    def __init__(self, optimizer: torch.optim.Optimizer, iters_per_epoch: int) -> None:
        if iters_per_epoch <= 0:
            raise ValueError(f"run.iters_per_epoch: expected a positive integer, got {iters_per_epoch}")
        self.optimizer = optimizer
        self.iters_per_epoch = iters_per_epoch

    def lr_at(self, t: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, epoch: int, step: int) -> float:
        """Set and return the lr of global step ``epoch * iters_per_epoch + step``."""
        lr = self.lr_at(epoch * self.iters_per_epoch + step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def settings(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.registry_name, **self.settings()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Check that a resumed run uses the same schedule (a changed one would not reproduce)."""
        saved = {k: v for k, v in state.items() if k != "name"}
        if state.get("name") != self.registry_name or saved != self.settings():
            get_logger().warning(
                "The lr schedule differs from the checkpoint's (%s -> %s); the resumed run will not match an uninterrupted one.",
                state,
                self.state_dict(),
            )


@LR_SCHEDULERS.register("linear_warmup_cosine_lr")
class LinearWarmupCosineLR(_Schedule):
    """Linear warmup from ``warmup_lr`` to ``init_lr`` over ``warmup_steps``, then cosine decay
    to ``min_lr`` at ``max_epoch * iters_per_epoch``:

    - ``t < warmup_steps``: ``warmup_lr + (init_lr - warmup_lr) * t / warmup_steps``
    - else: ``min_lr + (init_lr - min_lr) * 0.5 * (1 + cos(pi * t / (max_epoch * iters_per_epoch)))``
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        max_epoch: int,
        iters_per_epoch: int,
        init_lr: float,
        min_lr: float,
        warmup_lr: float,
        warmup_steps: int,
    ) -> None:
        super().__init__(optimizer, iters_per_epoch)
        if max_epoch <= 0:
            raise ValueError(f"run.max_epoch: expected a positive integer, got {max_epoch}")
        if warmup_steps < 0:
            raise ValueError(f"run.warmup_steps: expected >= 0, got {warmup_steps}")
        self.max_epoch = max_epoch
        self.init_lr = float(init_lr)
        self.min_lr = float(min_lr)
        self.warmup_lr = float(warmup_lr)
        self.warmup_steps = int(warmup_steps)

    @classmethod
    def from_config(cls, run_cfg: Any, optimizer: torch.optim.Optimizer) -> LinearWarmupCosineLR:
        return cls(
            optimizer,
            max_epoch=run_cfg.max_epoch,
            iters_per_epoch=run_cfg.iters_per_epoch,
            init_lr=run_cfg.init_lr,
            min_lr=run_cfg.min_lr,
            warmup_lr=run_cfg.warmup_lr,
            warmup_steps=run_cfg.warmup_steps,
        )

    def lr_at(self, t: int) -> float:
        if t < self.warmup_steps:
            return self.warmup_lr + (self.init_lr - self.warmup_lr) * t / self.warmup_steps
        total = self.max_epoch * self.iters_per_epoch
        return self.min_lr + (self.init_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t / total))

    def settings(self) -> dict[str, Any]:
        return {
            "max_epoch": self.max_epoch,
            "iters_per_epoch": self.iters_per_epoch,
            "init_lr": self.init_lr,
            "min_lr": self.min_lr,
            "warmup_lr": self.warmup_lr,
            "warmup_steps": self.warmup_steps,
        }


@LR_SCHEDULERS.register("constant_lr")
class ConstantLR(_Schedule):
    """``init_lr`` at every step (``warmup_steps`` and the other lr keys are ignored)."""

    def __init__(self, optimizer: torch.optim.Optimizer, iters_per_epoch: int, init_lr: float) -> None:
        super().__init__(optimizer, iters_per_epoch)
        self.init_lr = float(init_lr)

    @classmethod
    def from_config(cls, run_cfg: Any, optimizer: torch.optim.Optimizer) -> ConstantLR:
        return cls(optimizer, iters_per_epoch=run_cfg.iters_per_epoch, init_lr=run_cfg.init_lr)

    def lr_at(self, t: int) -> float:
        return self.init_lr

    def settings(self) -> dict[str, Any]:
        return {"iters_per_epoch": self.iters_per_epoch, "init_lr": self.init_lr}
