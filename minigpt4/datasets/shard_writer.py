"""Write webdataset shards in img2dataset's layout from caption records, so stage 1 can be tried on
data we already read (Flickr30k split files, ``caption_json`` files, the Flickr30k CSV layout).

Per shard ``NNNNN``: ``NNNNN.tar`` with ``{key}.jpg`` (``border`` resize to ``image_size``: scaled to fit,
padded white, JPEG quality 95, as img2dataset's defaults), ``{key}.txt`` (the caption) and ``{key}.json``
(``caption``, ``url``, ``key``, ``status``, ``error_message``, ``width``, ``height``,
``original_width``, ``original_height``, ``sha256``), then ``NNNNN_stats.json`` (``count``,
``successes``, ``failed_to_download``, ``failed_to_resize``, ``duration``, ``start_time``, ``end_time``,
``status_dict``). Keys are ``shard_id * 10**k + row`` padded to ``5 + k`` digits (k = digits of the
rows per shard). Each tar is written under a temporary name and renamed, then its stats file follows,
so a stopped run leaves no partial shard that readers would take. img2dataset's ``.parquet`` (the
rows that failed) is not written.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from webdataset import TarWriter

from minigpt4.utils.io import atomic_write, atomic_write_text

from .records import CaptionRecord
from .shards import STATS_SUFFIX

JPEG_QUALITY = 95
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Pair:
    """One row: an image file and one caption."""

    image: Path
    caption: str


def pairs(records: Iterable[CaptionRecord], image_root: Path, captions: str = "all") -> Iterator[Pair]:
    """One row per (image, caption) (``all``) or per image with its first caption (``first``)."""
    for rec in records:
        for caption in rec.captions if captions == "all" else rec.captions[:1]:
            yield Pair(image_root / rec.image, caption)


def border_resize(image: Image.Image, size: int) -> Image.Image:
    """img2dataset's ``border`` mode: scaled to fit ``size`` x ``size`` (area-averaging), padded white."""
    image = image.convert("RGB")
    scale = size / max(image.width, image.height)
    w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    resized = image.resize((w, h), Image.Resampling.BOX if scale < 1 else Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), WHITE)
    canvas.paste(resized, ((size - w) // 2, (size - h) // 2))
    return canvas


def encode(path: Path, size: int) -> tuple[bytes, dict[str, int]]:
    """The JPEG bytes of ``path`` after the border resize, and its sizes; raises OSError/ValueError."""
    with Image.open(path) as im:
        im.load()
        original = im.size
        out = border_resize(im, size)
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), {"width": size, "height": size, "original_width": original[0], "original_height": original[1]}


@dataclass
class ShardSummary:
    shards: int = 0
    successes: int = 0
    failed: int = 0


def _write_tar(tmp: Path, rows: list[Pair], shard_id: int, digits: int, image_size: int) -> tuple[dict, dict]:
    """Fill the tar ``tmp``; returns img2dataset's counts and its ``status_dict`` (error -> count)."""
    stats = {"count": 0, "successes": 0, "failed_to_download": 0, "failed_to_resize": 0}
    status: dict[str, int] = {}
    with TarWriter(str(tmp)) as sink:
        for i, row in enumerate(rows):
            key = f"{shard_id * 10**digits + i:0{5 + digits}d}"
            stats["count"] += 1
            try:
                jpg, sizes = encode(row.image, image_size)
            except (OSError, ValueError, Image.DecompressionBombError) as e:
                stats["failed_to_resize"] += 1
                message = f"{type(e).__name__}: {e}"
                status[message] = status.get(message, 0) + 1
                continue
            meta = {
                "caption": row.caption,
                "url": str(row.image),
                "key": key,
                "status": "success",
                "error_message": None,
                **sizes,
                "sha256": hashlib.sha256(jpg).hexdigest(),
            }
            sink.write({"__key__": key, "jpg": jpg, "txt": row.caption, "json": json.dumps(meta, indent=4)})
            stats["successes"] += 1
    return stats, status


def write_shards(rows: list[Pair], out: Path, per_shard: int = 10000, image_size: int = 224, report=print) -> ShardSummary:
    """Write ``rows`` as shards ``00000.tar``, ... under ``out``; unreadable images are counted as
    ``failed_to_resize`` in the stats, as img2dataset does, and not written."""
    out.mkdir(parents=True, exist_ok=True)
    digits = math.ceil(math.log10(per_shard)) if per_shard > 1 else 1
    summary = ShardSummary()
    for shard_id, start in enumerate(range(0, len(rows), per_shard)):
        begun = time.time()
        name = f"{shard_id:05d}"
        result: list[tuple[dict, dict]] = []
        shard_rows = rows[start : start + per_shard]
        atomic_write(
            out / f"{name}.tar", lambda tmp, r=shard_rows, s=shard_id, into=result: into.append(_write_tar(tmp, r, s, digits, image_size))
        )
        (stats, status), ended = result[0], time.time()
        record = {**stats, "duration": round(ended - begun, 3), "start_time": begun, "end_time": ended, "status_dict": status}
        atomic_write_text(out / f"{name}{STATS_SUFFIX}", json.dumps(record, indent=4))
        summary.shards += 1
        summary.successes += stats["successes"]
        summary.failed += stats["failed_to_resize"]
        report(f"{out / name}.tar: {stats['successes']} samples ({stats['failed_to_resize']} unreadable images left out)")
    return summary
