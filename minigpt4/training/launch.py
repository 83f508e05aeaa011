"""What ``train.py`` runs: config -> process group -> run folder -> task, datasets, model -> runner.

Works the same under ``python train.py`` (one process) and ``torchrun --nproc-per-node N train.py``.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minigpt4.config import load_config
from minigpt4.errors import ConfigError, NonFiniteLossError
from minigpt4.registry import MODELS, RUNNERS, TASKS
from minigpt4.run_dir import create_run_dir, find_resume_checkpoint, job_dir, write_config
from minigpt4.utils import dist as du
from minigpt4.utils.io import remove_stale_tmp_files
from minigpt4.utils.logging import get_logger, setup_logger


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Fine-tune MiniGPT-4's llama_proj (one process or torchrun).")
    ap.add_argument("--cfg-path", required=True, help="run config YAML (see train_configs/)")
    ap.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override config keys, e.g. run.init_lr=1e-4 model.ckpt=null")
    ap.add_argument("--resume", default=None, metavar="auto|PATH",
                    help="auto: continue the newest checkpoint of output_dir/job_name in its run folder "
                         "(start fresh when there is none); PATH: same as run.resume_ckpt_path=PATH")
    return ap.parse_args(argv)


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
    found = find_resume_checkpoint(job_dir(cfg.run)) if du.is_main_process() else None
    found = du.broadcast_object(str(found) if found else None)
    if found is None:
        log.info("--resume auto: no checkpoint under %s; starting a fresh run", job_dir(cfg.run))
        return None
    log.info("--resume auto: continuing from %s", found)
    cfg.run.resume_ckpt_path = found
    return Path(found).parent


def main(argv: Sequence[str] | None = None) -> Any:
    """Train as configured; returns the runner's per-epoch records."""
    args = parse_args(argv)
    cfg = load_config(args.cfg_path, args.options)
    info = du.init_distributed(cfg.run.device, cfg.run.dist_backend)
    log = setup_logger(info.rank)
    run_dir = resolve_resume(cfg, args.resume)
    if run_dir is None:
        run_dir = create_run_dir(cfg.run)
    elif info.is_main:
        for p in remove_stale_tmp_files(run_dir):
            log.info("Removed %s (left by an interrupted write)", p)
    if info.is_main:
        log.info("Config: %s", write_config(run_dir, cfg))
    log.info("Run folder: %s", run_dir)

    du.seed_everything(cfg.run.seed)  # identical model init on every rank
    task = TASKS.build(cfg.run.task, cfg.run)
    datasets = task.build_datasets(cfg.datasets)
    model = MODELS.build(cfg.model.arch, cfg.model, device=info.device)  # LLM loaded in its GPU dtype there
    du.seed_everything(cfg.run.seed + info.rank)
    runner = RUNNERS.build(cfg.run.runner, cfg, task=task, model=model, datasets=datasets, run_dir=run_dir,
                           dist_info=info)
    try:
        records = runner.train()
    except KeyboardInterrupt:
        log.error("Interrupted. Nothing is half-written; the last complete checkpoint is %s "
                  "(continue with --resume auto)", runner.last_checkpoint or "none")
        raise SystemExit(130) from None
    except NonFiniteLossError as e:  # every rank stops at the same step
        log.error("%s", e)
        raise SystemExit(1) from None
    du.cleanup()
    return records
