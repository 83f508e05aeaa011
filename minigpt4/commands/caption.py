"""``minigpt4-caption``: caption image files as the evaluation would (``path<TAB>caption`` on stdout);
exit status 1 when an image could not be read (the others are captioned)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence

from minigpt4.errors import run_command
from minigpt4.evaluation.caption_images import IMAGE_SUFFIXES, caption, tsv_field
from minigpt4.run_dir import PRETRAINED
from minigpt4.utils import dist, signals
from minigpt4.utils.io import atomic_write_json
from minigpt4.utils.logging import setup_logger

log = logging.getLogger("minigpt4")
EXIT_SKIPPED = 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Caption image files with an evaluation config and a checkpoint, "
        "exactly as minigpt4-eval would; prints path<TAB>caption lines."
    )
    ap.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE_OR_DIR",
        help=f"image files, or folders: their {'/'.join(IMAGE_SUFFIXES)} files (not sub-folders)",
    )
    ap.add_argument("--cfg-path", required=True, help="evaluation config (model + evaluation_datasets + run)")
    ap.add_argument(
        "--ckpt",
        default=PRETRAINED,
        metavar="PATH",
        help="checkpoint to caption with (default: the config's model.ckpt; null = the fresh projection)",
    )
    ap.add_argument(
        "--train-config",
        default=None,
        metavar="RUN_DIR/config.yaml",
        help="the run's config, for the LoRA settings of a checkpoint with adapters (default: the config.yaml next to the checkpoint)",
    )
    ap.add_argument("--json", default=None, metavar="FILE", help='also write the captions to FILE: [{"image": path, "caption": text}, ...]')
    ap.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides (after the images)")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """The command: exit status 0, or 1 when an image was skipped (``UserError``s are raised)."""
    args = parse_args(argv)
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr), signals.stop_signals():  # logs and progress: stderr
        setup_logger(dist.read_launch_env().rank)
        try:
            captions, skipped = caption(args.cfg_path, args.images, args.ckpt, args.options, args.train_config, args.json)
        except signals.Interrupted as e:
            log.error("Interrupted by %s: no captions printed", e.name)
            return e.exit_code
        if args.json is not None:
            atomic_write_json(args.json, captions)
            log.info("wrote %d caption(s) to %s", len(captions), args.json)
        if skipped:
            log.warning("%d image path(s) skipped (see the warnings above)", skipped)
    for c in captions:
        print(f"{c['image']}\t{tsv_field(c['caption'])}", file=stdout)
    return EXIT_SKIPPED if skipped else 0


def run(argv: Sequence[str] | None = None) -> int:
    """The exit status: ``main``'s, or 2 on a ``UserError``."""
    status: list[int] = []
    return run_command(lambda a: status.append(main(a)), argv) or status[0]
