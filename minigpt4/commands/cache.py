"""``minigpt4-cache``: fill run.feature_cache for a config's images ahead of time (resumable)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from minigpt4.config import load_config
from minigpt4.errors import run_command
from minigpt4.training.fill_cache import fill_cache, require_cache
from minigpt4.utils import dist, signals
from minigpt4.utils.logging import setup_logger

log = logging.getLogger("minigpt4")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Fill run.feature_cache with the frozen vision stack's output for every "
        "training and evaluation image of a config (resumable)."
    )
    ap.add_argument("--cfg-path", required=True, help="a training or evaluation config")
    ap.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    ap.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: run.batch_size_eval)")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, list[int]]:
    """The fill; returns {entry: [encoded, already cached, unreadable]} summed over ranks."""
    args = parse_args(argv)
    setup_logger(dist.read_launch_env().rank)
    cfg = load_config(args.cfg_path, args.options)
    out: dict[str, list[int]] = {}
    require_cache(cfg)  # before the process group starts
    with signals.stop_signals():
        try:
            info = dist.init_distributed(cfg.run.device, cfg.run.dist_backend)
            setup_logger(info.rank)
            out = fill_cache(cfg, info, args.batch_size, args.cfg_path)
        except signals.Interrupted as e:
            if dist.is_main_process():
                log.error("Interrupted by %s; every finished batch is in the cache: rerun to continue", e.name)
            dist.exit_interrupted(e.exit_code)
    dist.cleanup()
    return out


def run(argv: Sequence[str] | None = None) -> int:
    """The exit status of ``main(argv)``."""
    return run_command(main, argv)
