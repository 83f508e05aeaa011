"""What the training runner calls on a task (``run.task``), declared instead of probed.

``train_step`` returns the loss and what the step cost, by name: the throughput counts every task
may report (``THROUGHPUT_COUNTS``) and the task's own ``count_names``. The runner sums all of them
over ranks and micro-steps; what the task's own counts mean (a rate on the console line, a field of
the epoch record in ``log.txt``) only the task says (``count_rates``, ``count_record``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from torch import nn
from torch.utils.data import Dataset

# what any train_step may report besides the loss: real tokens, padded positions, model FLOPs
THROUGHPUT_COUNTS = ("tokens", "positions", "flops")


@runtime_checkable
class TrainingTask(Protocol):
    """A task the runner trains with (``minigpt4.tasks.captioning.CaptioningTask`` is one)."""

    count_names: tuple[str, ...]  # train_step's own counts (besides THROUGHPUT_COUNTS), summed over ranks

    def build_datasets(self, datasets_cfg: Any) -> dict[str, Dataset]:
        """The training datasets of the config's ``datasets`` entries, by entry name in config order."""
        ...

    def prepare_training(self, model: nn.Module, datasets: Mapping[str, Dataset]) -> None:
        """Connect the placed model and the training datasets (before the first batch is drawn)."""
        ...

    def train_step(self, model: nn.Module, batch: dict[str, Any]) -> Mapping[str, Any]:
        """``{"loss": scalar tensor, <count name>: number or None, ...}`` for one batch (None counts as 0)."""
        ...

    def count_rates(self, counts: Mapping[str, float]) -> dict[str, float | None]:
        """Extra fractions for the console line and trackers from counts summed over a window or epoch."""
        ...

    def count_record(self, counts: Mapping[str, float]) -> dict[str, Any]:
        """Extra fields of the epoch's ``log.txt`` record from its summed counts."""
        ...


def missing_members(obj: object, protocol: type) -> list[str]:
    """The members ``protocol`` declares that ``obj`` lacks (empty when it has them all)."""
    declared = [*getattr(protocol, "__annotations__", {}), *(n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_"))]
    return [name for name in declared if not hasattr(obj, name)]
