"""Experiment trackers beside ``RUN/log.txt``: TensorBoard (``run.tensorboard``) and Weights & Biases
(``run.wandb_log``, as in the official configs), both optional and written by rank 0 only.

Both get the same scalars at the same global step (``epoch * iters_per_epoch + step``): ``train/*``
every ``run.log_freq`` steps, ``epoch/*`` at each epoch's last step. W&B runs in ``run.wandb_mode``
(null: the ``WANDB_MODE`` environment variable, else online); ``offline`` needs no network or account
and keeps everything under ``RUN/wandb/`` for a later ``wandb sync``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from minigpt4.errors import ConfigError


class TensorBoard:
    """A lazily imported ``SummaryWriter``; a missing package gives a clear error."""

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ConfigError(
                "run.tensorboard is true but the 'tensorboard' package is not installed: "
                "pip install tensorboard (or set run.tensorboard: false)"
            ) from e
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def scalars(self, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()


class WandB:
    """One W&B run per run folder (its id is derived from the folder, so ``--resume auto`` continues it)."""

    def __init__(self, run_dir: Path, project: str, name: str | None, mode: str | None, config: dict) -> None:
        try:
            import wandb
        except ImportError as e:
            raise ConfigError(
                "run.wandb_log is true but the 'wandb' package is not installed: pip install wandb (or set run.wandb_log: false)"
            ) from e
        run_id = re.sub(r"[^A-Za-z0-9_-]", "-", f"{run_dir.parent.name}-{run_dir.name}")
        try:
            self.run = wandb.init(
                project=project,
                name=name or f"{run_dir.parent.name}/{run_dir.name}",
                id=run_id,
                resume="allow",
                dir=str(run_dir),
                config=config,
                mode=mode,
            )
        except Exception as e:  # wandb raises its own types (no account, no network): say what to do
            raise ConfigError(
                f"run.wandb_log: Weights & Biases did not start ({type(e).__name__}: {e}). Log in "
                "(wandb login), or log offline with run.wandb_mode=offline (or WANDB_MODE=offline), "
                "or set run.wandb_log: false"
            ) from e

    def scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class Trackers:
    """The trackers a run's config asks for (none on ranks other than 0)."""

    def __init__(self, trackers: list[Any]) -> None:
        self.trackers = trackers

    @classmethod
    def from_run(cls, run: Any, run_dir: Path, config: dict, is_main: bool) -> Trackers:
        """``run``: the ``run`` config section; ``config``: the whole config, recorded by W&B."""
        if not is_main:
            return cls([])
        out: list[Any] = []
        if run.tensorboard:
            out.append(TensorBoard(run_dir / "tensorboard"))
        if run.wandb_log:
            out.append(WandB(run_dir, run.wandb_project, run.wandb_name, run.wandb_mode, config))
        return cls(out)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for t in self.trackers:
            t.scalars(values, step)

    def close(self) -> None:
        for t in self.trackers:
            t.close()
