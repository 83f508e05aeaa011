"""What ``train.py`` runs (``minigpt4.commands.train``): task, datasets, model -> run folder -> runner.

Works the same under ``python train.py`` (one process) and ``torchrun --nproc-per-node N train.py``.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minigpt4.errors import ConfigError, NonFiniteLossError
from minigpt4.registry import MODELS, RUNNERS, TASKS
from minigpt4.run_dir import CONFIG, create_run_dir, find_resume_checkpoint, job_dir, write_config
from minigpt4.utils import dist, signals
from minigpt4.utils.io import remove_stale_tmp_files
from minigpt4.utils.logging import get_logger


@dataclass(frozen=True)
class Invocation:
    """How training was started (``--cfg-path``, ``--options``, ``--resume``): for the command that
    continues the run after an interruption."""

    cfg_path: str
    options: list[str] = field(default_factory=list)
    resume: str | None = None


def resolve_resume(cfg: Any, resume: str | None) -> Path | None:
    """Apply ``--resume``; returns the run folder to continue in (``auto`` with a checkpoint), else None."""
    log = get_logger()
    if resume is None:
        return None
    if resume != "auto":
        path = Path(resume).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"--resume {resume}: checkpoint file not found")
        cfg.run.resume_ckpt_path = str(path)
        return None
    found = find_resume_checkpoint(job_dir(cfg.run)) if dist.is_main_process() else None
    found = dist.broadcast_object(str(found) if found else None)
    if found is None:
        log.info("--resume auto: no checkpoint under %s; starting a fresh run", job_dir(cfg.run))
        return None
    log.info("--resume auto: continuing from %s", found)
    cfg.run.resume_ckpt_path = found
    return Path(found).parent


def resume_command(invocation: Invocation, info: dist.DistInfo, last: Path | None, run_dir: Path) -> str:
    """The command that continues this run after an interruption (under SLURM or on several
    machines: the command each task or machine runs, with the job's own launcher flags)."""
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
    if info.launcher == "slurm":
        launcher = ["srun", "python"]
    elif info.world_size > 1:
        launcher = ["torchrun", f"--nproc-per-node={per_node}"]
    else:
        launcher = ["python"]
    cmd = [*launcher, "train.py", "--cfg-path", invocation.cfg_path] + (["--options", *invocation.options] if invocation.options else [])
    if last is None:
        text = shlex.join(cmd) + (" (no epoch had finished: this starts again)" if invocation.resume is None else "")
    else:
        text = shlex.join(cmd + ["--resume", "auto" if last.parent == run_dir else str(last)])
    if info.launcher != "slurm" and per_node < info.world_size:
        text += f" (on each of the {info.world_size // per_node} machines, with the job's --nnodes/--rdzv flags)"
    return text


def _remove_unused(run_dir: Path) -> None:
    """Remove a run folder this invocation created when training never started (only its config)."""
    if {p.name for p in run_dir.iterdir()} <= {CONFIG}:
        shutil.rmtree(run_dir, ignore_errors=True)


def train(cfg: Any, invocation: Invocation, info: dist.DistInfo, log: Any) -> Any:
    """Build the task, datasets, model and run folder, then train; returns the runner's per-epoch records.
    Call it inside ``signals.stop_signals()`` after ``dist.init_distributed``: an interruption exits
    130/143 with the command that continues the run."""
    resumed_dir = resolve_resume(cfg, invocation.resume)
    dist.seed_everything(cfg.run.seed)  # identical model init on every rank
    task = TASKS.build(cfg.run.task, cfg.run)
    datasets = task.build_datasets(cfg.datasets)
    model = MODELS.build(cfg.model.arch, cfg.model, device=info.device)  # LLM loaded in its GPU dtype there
    run_dir = resumed_dir or create_run_dir(cfg.run)  # only now: the inputs have been checked
    if resumed_dir is not None and info.is_main:
        for p in remove_stale_tmp_files(run_dir):
            log.info("Removed %s (left by an interrupted write)", p)
    if info.is_main:
        log.info("Config: %s", write_config(run_dir, cfg))
    log.info("Run folder: %s", run_dir)
    dist.seed_everything(cfg.run.seed + info.rank)
    try:
        runner = RUNNERS.build(cfg.run.runner, cfg, task=task, model=model, datasets=datasets, run_dir=run_dir, dist_info=info)
    except BaseException:
        if resumed_dir is None and info.is_main:
            _remove_unused(run_dir)  # e.g. a batch size larger than the data: no run to keep
        raise
    try:
        records = runner.train()
    except signals.Interrupted as e:  # every rank stops at the same step; rank 0 says so
        runner.loader.close()  # stop DataLoader workers before the process leaves
        if info.is_main:
            last = runner.last_checkpoint
            log.error(
                "Interrupted by %s%s; the unfinished step was abandoned and nothing is half-written. Last "
                "complete checkpoint: %s. Continue with: %s",
                e.name,
                f" at {e.where}" if e.where else "",
                last or "none",
                resume_command(invocation, info, last, run_dir),
            )
        dist.exit_interrupted(e.exit_code)
    except NonFiniteLossError as e:  # every rank stops at the same step
        log.error("%s", e)
        raise SystemExit(1) from None
    dist.cleanup()
    return records
