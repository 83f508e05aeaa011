"""``minigpt4-eval`` / ``evaluate.sh`` / ``eval_scripts/eval_flickr30k.py``: caption a split with one or more
checkpoints, score the captions, and for a run folder write the summary, all in one process (or one per
rank under torchrun).

    minigpt4-eval RUN_DIR --cfg-path EVAL.yaml [--limit N] [--split S] [--options k=v ...]
        the baseline (``pretrained``) and every RUN_DIR/checkpoint_<epoch>.pth not yet scored, into
        RUN_DIR/eval/ (RUN_DIR/eval_limit<N>/ with --limit), then summary.{csv,md,png} there
    minigpt4-eval --cfg-path EVAL.yaml --save-path DIR [--ckpt PATH ...] [--limit N] [--split S]
        the given checkpoints (``pretrained`` = the config's own ``model.ckpt``; the default) into DIR

``evaluate.sh RUN_DIR`` runs the first form; ``eval_scripts/eval_flickr30k.py`` the second. Everything the
user gave is checked before any work (``evaluation.plan``); ``evaluation.job`` does the work.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from minigpt4.config import load_config
from minigpt4.errors import run_command
from minigpt4.evaluation.job import evaluate
from minigpt4.evaluation.plan import Request, describe, make_plan
from minigpt4.evaluation.summary import write_summary
from minigpt4.models.preflight import raise_problems
from minigpt4.tasks.captioning.scoring import check_java, check_writable
from minigpt4.utils import dist, signals
from minigpt4.utils.logging import setup_logger

log = logging.getLogger("minigpt4")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Caption a split with MiniGPT-4 checkpoints and score it (BLEU, METEOR, ROUGE-L, CIDEr).")
    ap.add_argument(
        "run_dir",
        nargs="?",
        default=None,
        help="training run folder: evaluate pretrained + every checkpoint not yet scored with these settings, then summarise",
    )
    ap.add_argument("--cfg-path", required=True, help="evaluation config (model + evaluation_datasets + run)")
    ap.add_argument(
        "--ckpt",
        action="append",
        default=None,
        metavar="PATH",
        help="without RUN_DIR: checkpoint to evaluate; repeat for several (one METEOR start-up for "
        "all). 'pretrained' (the default) = the config's model.ckpt",
    )
    ap.add_argument("--save-path", default=None, help="without RUN_DIR: results go to <save-path>/<name>/")
    ap.add_argument("--split", default=None, help="split to score (default: the dataset entry's split)")
    ap.add_argument(
        "--limit", type=_positive, default=None, help="score only the first N images (CIDEr is then not comparable with the full split)"
    )
    ap.add_argument(
        "--train-config",
        default=None,
        metavar="RUN_DIR/config.yaml",
        help="the training run's config, whose model the eval config must match (default with RUN_DIR: RUN_DIR/config.yaml)",
    )
    ap.add_argument(
        "--allow-model-mismatch",
        action="store_true",
        help="evaluate although the eval config's model differs from the training run's (recorded in metrics.json)",
    )
    ap.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    args = ap.parse_args(argv)
    if (args.run_dir is None) == (args.save_path is None):
        ap.error("give either RUN_DIR or --save-path DIR")
    if args.run_dir is not None and args.ckpt:
        ap.error("--ckpt is for --save-path; with RUN_DIR every checkpoint of the run is evaluated")
    return args


def request_of(args: argparse.Namespace) -> Request:
    """The parsed command line as the plan's ``Request``."""
    return Request(args.run_dir, args.save_path, args.ckpt, args.split, args.limit, args.train_config, args.allow_model_mismatch)


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """The job; returns the metrics.json paths written (rank 0). Errors are ``UserError``s;
    SIGINT/SIGTERM exit 130/143 keeping every finished result."""
    args = parse_args(argv)
    setup_logger(dist.read_launch_env().rank)  # torchrun's or SLURM's rank, before the group exists
    check_java()  # before anything is built or generated
    check_writable()
    cfg = load_config(args.cfg_path, args.options, evaluation=True)
    raise_problems(cfg.model, args.cfg_path)  # minigpt4-check: seconds, before any weight is read
    written: list[Path] = []
    with signals.stop_signals():
        try:
            info = dist.init_distributed(cfg.run.device, cfg.run.dist_backend)
            plan = make_plan(request_of(args), cfg, info)
            if info.is_main:
                for line in describe(plan):
                    log.info("%s", line)
            if plan.todo:
                evaluate(cfg, plan, info, written)
            if args.run_dir is not None and info.is_main:
                out = write_summary(args.run_dir, plan.save_path, settings_digest=plan.settings_digest)
                print(out["md"].read_text())
                print("wrote " + ", ".join(str(p) for p in out.values()))
        except signals.Interrupted as e:
            if dist.is_main_process():  # the rank that writes results says which are kept
                kept = ", ".join(p.parent.name for p in written) or "none"
                log.error("Interrupted by %s; finished results are kept (%s); rerun the same command to evaluate the rest", e.name, kept)
            dist.exit_interrupted(e.exit_code)
    dist.cleanup()
    return written


def run(argv: Sequence[str] | None = None) -> int:
    """The exit status of ``main(argv)``."""
    return run_command(main, argv)
