"""The run folder ``output_dir/<job_name>/<YYYYmmddHHMMSS>/`` and its ``config.yaml``."""
from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from minigpt4.common.dist import broadcast_object, is_main_process
from minigpt4.common.io import atomic_write_text

RUN_NAME_FORMAT = "%Y%m%d%H%M%S"


def job_dir(run_cfg: Any) -> Path:
    """``output_dir/job_name`` (absolute)."""
    return (Path(run_cfg.output_dir).expanduser() / run_cfg.job_name).resolve()


def _create_unique(parent: Path, max_tries: int = 120) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(max_tries):
        path = parent / datetime.now().strftime(RUN_NAME_FORMAT)
        try:
            path.mkdir()  # atomic: fails if another run took this second
            return path
        except FileExistsError:
            time.sleep(1.0 - (time.time() % 1.0) + 0.01)  # the next second
    raise RuntimeError(f"could not create a new run folder under {parent} in {max_tries} tries")


def create_run_dir(run_cfg: Any) -> Path:
    """A new, never reused run folder, created by rank 0 (it waits for the next second when the
    current one is taken) and broadcast so every rank uses the same path."""
    path = str(_create_unique(job_dir(run_cfg))) if is_main_process() else None
    return Path(broadcast_object(path))


def write_config(run_dir: str | Path, cfg: Any) -> Path:
    """The fully resolved config as ``run_dir/config.yaml`` (atomic)."""
    return atomic_write_text(Path(run_dir) / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
