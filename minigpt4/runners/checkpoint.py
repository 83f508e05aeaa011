"""Training checkpoints: atomic ``checkpoint_{epoch}.pth``, ``checkpoint_latest.pth`` and resume lookup.

A checkpoint is a dict (loadable with ``torch.load(path, weights_only=True)``)::

    model         trainable parameters only (model.trainable_state_dict(): llama_proj.weight/bias)
    optimizer     AdamW state;  lr_scheduler: schedule name + settings;  scaler: GradScaler state
    epoch         the finished epoch (0-based);  global_step: optimizer steps done so far
    world_size    number of ranks that wrote it
    rank_states   one entry per rank, gathered to rank 0: {"rng": python/numpy/torch/cuda states,
                  "data": {"data_pass", "batch_in_pass"}}
    config        the fully resolved run config (plain dict)
    format        CHECKPOINT_FORMAT

Each file is written to a hidden temporary file and renamed, so it is complete or absent.
``checkpoint_latest.pth`` is then atomically replaced by a hard link to (or, where hard links are
not supported, a copy of) the newest ``checkpoint_{epoch}.pth``: a normal checkpoint file.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from minigpt4.common.io import atomic_link_or_copy, atomic_torch_save

CHECKPOINT_FORMAT = "minigpt4-train-v1"
LATEST = "checkpoint_latest.pth"
_EPOCH_RE = re.compile(r"^checkpoint_(\d+)\.pth$")
REQUIRED_KEYS = ("model", "optimizer", "lr_scheduler", "scaler", "epoch", "global_step", "rank_states", "world_size")


def checkpoint_path(run_dir: str | Path, epoch: int) -> Path:
    return Path(run_dir) / f"checkpoint_{epoch}.pth"


def save_checkpoint(run_dir: str | Path, epoch: int, state: dict[str, Any]) -> Path:
    """Write ``checkpoint_{epoch}.pth`` atomically, then point ``checkpoint_latest.pth`` at it."""
    path = atomic_torch_save({**state, "format": CHECKPOINT_FORMAT}, checkpoint_path(run_dir, epoch))
    atomic_link_or_copy(path, Path(run_dir) / LATEST)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint on CPU; a missing file or missing keys give a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a checkpoint dict, got {type(state).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(
            f"{path}: not a resumable training checkpoint (missing {', '.join(missing)}); "
            "to start from released weights set model.ckpt instead of run.resume_ckpt_path"
        )
    return state


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``[(epoch, path), ...]`` of the complete ``checkpoint_{epoch}.pth`` files, by epoch."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for p in run_dir.iterdir():
        m = _EPOCH_RE.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def find_resume_checkpoint(job_dir: str | Path) -> Path | None:
    """The checkpoint ``--resume auto`` continues from: in the newest run folder of ``job_dir``
    (folder names are timestamps, so newest = greatest name) that holds a complete checkpoint,
    the one of the highest epoch. None when no run has one."""
    job_dir = Path(job_dir)
    if not job_dir.is_dir():
        return None
    for run_dir in sorted((p for p in job_dir.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True):
        ckpts = list_checkpoints(run_dir)
        if ckpts:
            return ckpts[-1][1]
    return None
