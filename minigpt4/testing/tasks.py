"""``run.task: nan_injecting``: the captioning task with a NaN loss at one chosen step, to test how
training stops. ``MINIGPT4_TEST_NAN_STEP=T`` poisons the T-th training step (0-based, counted in this
process) on every rank; ``T:R`` only on rank R."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from minigpt4.registry import TASKS
from minigpt4.tasks.captioning import CaptioningTask
from minigpt4.utils.dist import get_rank

NAN_STEP_ENV = "MINIGPT4_TEST_NAN_STEP"


def parse_nan_step(value: str | None) -> tuple[int | None, int | None]:
    """``"T"`` -> (T, None); ``"T:R"`` -> (T, R); unset -> (None, None)."""
    if not value:
        return None, None
    step, _, rank = value.partition(":")
    try:
        return int(step), (int(rank) if rank else None)
    except ValueError:
        raise ValueError(f"{NAN_STEP_ENV}={value!r}: expected STEP or STEP:RANK") from None


@TASKS.register("nan_injecting")
class NanInjectingTask(CaptioningTask):
    """``image_text_pretrain`` whose loss is NaN at the step named by ``MINIGPT4_TEST_NAN_STEP``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.nan_step, self.nan_rank = parse_nan_step(os.environ.get(NAN_STEP_ENV))
        self.calls = 0

    def train_step(self, model: nn.Module, samples: dict[str, Any]) -> dict[str, Any]:
        out = super().train_step(model, samples)
        step, self.calls = self.calls, self.calls + 1
        if step == self.nan_step and self.nan_rank in (None, get_rank()):
            return {**out, "loss": out["loss"] * float("nan")}
        return out
