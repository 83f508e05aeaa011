"""``minigpt4-train`` / ``train.py``: fine-tune MiniGPT-4's llama_proj from a config (one process or torchrun)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from minigpt4.config import load_config
from minigpt4.errors import run_command
from minigpt4.models.preflight import raise_problems
from minigpt4.training import launch
from minigpt4.utils import dist, signals
from minigpt4.utils.logging import setup_logger


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Fine-tune MiniGPT-4's llama_proj (one process or torchrun).")
    ap.add_argument("--cfg-path", required=True, help="run config YAML (see train_configs/)")
    ap.add_argument(
        "--options", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys, e.g. run.init_lr=1e-4 model.ckpt=null"
    )
    ap.add_argument(
        "--resume",
        default=None,
        metavar="auto|PATH",
        help="auto: continue the newest checkpoint of output_dir/job_name in its run folder "
        "(start fresh when there is none); PATH: same as run.resume_ckpt_path=PATH",
    )
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> Any:
    """Train as configured; returns the runner's per-epoch records.

    Everything that can fail on the user's input (config, data, model files) is checked before a run
    folder is created. SIGINT/SIGTERM stop every rank at a step boundary with exit status 130/143.
    """
    args = parse_args(argv)
    setup_logger(dist.read_launch_env().rank)  # the config's notes (official names, ignored keys) are logged
    cfg = load_config(args.cfg_path, args.options)
    raise_problems(cfg.model, args.cfg_path)  # minigpt4-check: seconds, before any weight is read
    with signals.stop_signals():
        info = dist.init_distributed(cfg.run.device, cfg.run.dist_backend)
        log = setup_logger(info.rank)
        try:
            return launch.train(cfg, launch.Invocation(args.cfg_path, list(args.options), args.resume), info, log)
        except signals.Interrupted as e:  # during start-up (model loading can take minutes)
            if info.is_main:
                log.error("Interrupted by %s before training started: no step was taken", e.name)
            dist.exit_interrupted(e.exit_code)


def run(argv: Sequence[str] | None = None) -> int:
    """The exit status of ``main(argv)``."""
    return run_command(main, argv)
