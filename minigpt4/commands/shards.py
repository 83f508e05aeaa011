"""``minigpt4-shards``: write webdataset shards (img2dataset's layout) from a caption file we read, so
stage 1 (the ``laion`` / ``cc_sbu`` / ``webdataset_caption`` builders) can be tried without LAION."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from minigpt4.errors import DataError, run_command

SPLITS = ("train", "val", "test", "all")


def read_records(ann: Path, image_key: str, captions_key: str, split: str) -> list:
    """Caption records of ``ann``: a Flickr30k annotation CSV (rows of ``split``) or a caption JSON."""
    from minigpt4.datasets.flickr30k_prepare import read_csv_rows
    from minigpt4.datasets.records import CaptionRecord, read_caption_json

    if ann.suffix.lower() == ".csv":
        rows, _ = read_csv_rows(ann)
        return [CaptionRecord(r.filename, Path(r.filename).stem, tuple(r.captions)) for r in rows if split in ("all", r.split)]
    return read_caption_json(ann, image_key, captions_key)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="minigpt4-shards",
        description="Write webdataset shards in img2dataset's layout (NNNNN.tar with .jpg/.txt/.json, NNNNN_stats.json) "
        "from a caption JSON (caption_json records, the Flickr30k split files) or the Flickr30k annotation CSV.",
    )
    ap.add_argument("--ann", required=True, help="caption JSON (a list of {image, captions}) or flickr_annotations_30k.csv")
    ap.add_argument(
        "--images", default=None, help="folder the records' image names are relative to (CSV: default <its folder>/flickr30k-images)"
    )
    ap.add_argument("--out", required=True, help="output folder (created); shards 00000.tar, 00001.tar, ...")
    ap.add_argument("--split", choices=SPLITS, default="train", help="CSV only: the rows of this split (default train)")
    ap.add_argument("--image-key", default="image", help="JSON: record key of the image file name (default image)")
    ap.add_argument("--captions-key", default="captions", help="JSON: record key of the caption(s) (default captions)")
    ap.add_argument("--captions", choices=("all", "first"), default="all", help="one sample per caption (all) or per image (first)")
    ap.add_argument("--per-shard", type=int, default=10000, help="samples per shard (img2dataset's default 10000)")
    ap.add_argument("--image-size", type=int, default=224, help="side of the border-resized images (default 224, as the official run)")
    args = ap.parse_args(argv)
    if args.per_shard < 1 or args.image_size < 1:
        raise DataError("--per-shard and --image-size must be positive")
    ann = Path(args.ann)
    if not ann.is_file():
        raise DataError(f"--ann {ann}: file not found")
    images = Path(args.images) if args.images else ann.parent / "flickr30k-images" if ann.suffix.lower() == ".csv" else None
    if images is None or not images.is_dir():
        raise DataError(f"--images {images}: folder not found (the folder the image names in {ann} are relative to)")

    from minigpt4.datasets.shard_writer import pairs, write_shards

    rows = list(pairs(read_records(ann, args.image_key, args.captions_key, args.split), images, args.captions))
    if not rows:
        raise DataError(f"{ann}: no records{f' of split {args.split}' if ann.suffix.lower() == '.csv' else ''}")
    summary = write_shards(rows, Path(args.out), args.per_shard, args.image_size)
    print(
        f"Wrote {summary.shards} shard(s), {summary.successes} samples ({summary.failed} unreadable images left out) to {args.out}; "
        f"use it as build_info.storage: {Path(args.out).resolve()}/{{00000..{summary.shards - 1:05d}}}.tar"
    )


def run(argv: Sequence[str] | None = None) -> int:
    return run_command(main, argv)
