"""Training checkpoints: what ``checkpoint_{epoch}.pth`` holds, written atomically, and reading it back.

A checkpoint is a dict (loadable with ``torch.load(path, weights_only=True)``)::

    model         trainable parameters only (model.trainable_state_dict(): llama_proj.weight/bias)
    optimizer     AdamW state;  lr_scheduler: schedule name + settings;  scaler: GradScaler state
    epoch         the epoch (0-based);  step_in_epoch: its steps done (iters_per_epoch: it is finished)
    global_step   optimizer steps done so far;  meter: the epoch's running totals (a step checkpoint)
    world_size    number of ranks that wrote it
    rank_states   one entry per rank, gathered to rank 0: {"rng": python/numpy/torch/cuda states,
                  "data": {"data_pass", "batch_in_pass"}}
    config        the fully resolved run config (plain dict)
    format        CHECKPOINT_FORMAT

Step checkpoints (``checkpoint_<epoch>_step_<k>.pth``, ``save_step_checkpoint``) hold the same, ``k``
steps into the epoch; only the newest ``keep`` of them stay.

Each file is written to a hidden temporary file and renamed, so it is complete or absent.
``checkpoint_latest.pth`` is then atomically replaced by a hard link to (or, where hard links are
not supported, a copy of) the newest ``checkpoint_{epoch}.pth``: a normal checkpoint file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from minigpt4.errors import WeightsError
from minigpt4.run_dir import LATEST, checkpoint_path, list_step_checkpoints, step_checkpoint_path
from minigpt4.utils.io import atomic_link_or_copy, atomic_torch_save

CHECKPOINT_FORMAT = "minigpt4-train-v1"
REQUIRED_KEYS = ("model", "optimizer", "lr_scheduler", "scaler", "epoch", "global_step", "rank_states", "world_size")


def save_checkpoint(run_dir: str | Path, epoch: int, state: dict[str, Any]) -> Path:
    """Write ``checkpoint_{epoch}.pth`` atomically, then point ``checkpoint_latest.pth`` at it."""
    path = atomic_torch_save({**state, "format": CHECKPOINT_FORMAT}, checkpoint_path(run_dir, epoch))
    atomic_link_or_copy(path, Path(run_dir) / LATEST)
    return path


def save_step_checkpoint(run_dir: str | Path, epoch: int, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write ``checkpoint_<epoch>_step_<step>.pth`` atomically, then delete all but the newest ``keep``
    step checkpoints (the epoch checkpoints are never deleted)."""
    path = atomic_torch_save({**state, "format": CHECKPOINT_FORMAT}, step_checkpoint_path(run_dir, epoch, step))
    for _, old in list_step_checkpoints(run_dir)[: -max(1, keep)]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint on CPU; a missing file or missing keys give a clear error."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a checkpoint dict, got {type(state).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise WeightsError(
            f"{path}: not a resumable training checkpoint (missing {', '.join(missing)}); "
            "to start from released weights set model.ckpt instead of run.resume_ckpt_path"
        )
    return state
