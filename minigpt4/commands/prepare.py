"""``minigpt4-prepare`` / ``prepare_flickr30k.py``: write the per-split Flickr30k annotation files."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from minigpt4.datasets.flickr30k_prepare import CAPTION_MODES, prepare_flickr30k
from minigpt4.datasets.records import CSV_NAME, IMAGE_DIR
from minigpt4.errors import run_command


def main(argv: Sequence[str] | None = None) -> int:
    """Validate and write the split files; prints what was read and written (errors: ``PrepareError``)."""
    ap = argparse.ArgumentParser(description="Write flickr30k_{train,val,test}.json from the Flickr30k annotations.")
    ap.add_argument("--root", required=True, help=f"folder with {CSV_NAME} and {IMAGE_DIR}/")
    ap.add_argument("--out-dir", default=None, help="where to write the split files (default: --root)")
    ap.add_argument(
        "--check-images",
        action="store_true",
        help="also open and decode every image; undecodable ones are dropped and counted like missing ones",
    )
    ap.add_argument("--strict", action="store_true", help="a missing (or undecodable) image is an error instead")
    ap.add_argument(
        "--skip-image-check",
        action="store_true",
        help="write the annotations without looking for the images (by default the rows of missing images are dropped and counted)",
    )
    ap.add_argument(
        "--caption-mode",
        choices=CAPTION_MODES,
        default="separate",
        help="separate: 5 captions per image (default); concat: one joined caption "
        "(older practice, kept only for comparison; writes flickr30k_<split>_concat.json)",
    )
    ap.add_argument(
        "--karpathy-json", default=None, help="read Karpathy's dataset_flickr30k.json instead of the CSV ('restval' is counted as train)"
    )
    args = ap.parse_args(argv)
    summary = prepare_flickr30k(
        args.root, args.out_dir, args.check_images, args.strict, args.caption_mode, args.karpathy_json, args.skip_image_check
    )
    print(summary.format())
    return 0


def run(argv: Sequence[str] | None = None) -> int:
    """The exit status of ``main(argv)``."""
    return run_command(main, argv)
