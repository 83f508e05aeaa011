"""Shared pieces of the caption datasets: annotation records, image loading (skip or fail),
instruction prompts, per-sample seeded RNG and the batch collater."""
from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

log = logging.getLogger(__name__)


class DataError(ValueError):
    """Bad annotation or prompt file; the message names the file and item/line."""


class ImageLoadError(RuntimeError):
    """A missing or undecodable image met while ``strict`` is on."""


@dataclass(frozen=True)
class CaptionRecord:
    """One image with its reference captions. ``image`` is relative to the dataset's image root."""

    image: str
    image_id: str
    captions: tuple[str, ...]


def read_caption_json(
    path: str | Path,
    image_key: str = "image",
    captions_key: str = "captions",
    image_id_key: str | None = None,
) -> list[CaptionRecord]:
    """Read a JSON list of ``{image_key: str, captions_key: list[str] | str}`` records.

    ``image_id`` is ``item[image_id_key]`` when given, else the image file's stem. Errors name the
    file, the item index and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of {{{image_key!r}, {captions_key!r}}} records, got {type(data).__name__}")
    records = []
    for i, item in enumerate(data):
        where = f"{path}: item {i}"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected an object, got {type(item).__name__}")
        image = item.get(image_key)
        if not isinstance(image, str) or not image.strip():
            raise DataError(f"{where}: key {image_key!r} must be a non-empty string (image file relative to image_path), got {image!r}")
        caps = item.get(captions_key)
        if isinstance(caps, str):
            caps = [caps]
        if not isinstance(caps, list) or not caps or not all(isinstance(c, str) and c.strip() for c in caps):
            raise DataError(f"{where}: key {captions_key!r} must be a non-empty string or a non-empty list of non-empty strings, got {caps!r}")
        if image_id_key is not None:
            if image_id_key not in item:
                raise DataError(f"{where}: key {image_id_key!r} (image_id_key) is missing")
            image_id = str(item[image_id_key])
        else:
            image_id = Path(image).stem
        records.append(CaptionRecord(image, image_id, tuple(caps)))
    if not records:
        raise DataError(f"{path}: the annotation list is empty")
    return records


def open_image(path: Path) -> Image.Image:
    """Open and fully decode an image as RGB (raises OSError/ValueError when missing or corrupt)."""
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


def load_image_or_none(path: Path, strict: bool, where: str = "") -> Image.Image | None:
    """The RGB image, or None (logged) when it is missing or corrupt; ``strict`` raises instead."""
    try:
        return open_image(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        msg = f"cannot load image {path}{f' ({where})' if where else ''}: {type(e).__name__}: {e}"
        if strict:
            raise ImageLoadError(msg + " [strict: set run.strict_data=false to skip and count such images]") from e
        log.warning("skipping %s", msg)
        return None


def sample_rng(seed: int, epoch: int, index: int) -> random.Random:
    """A generator determined by (seed, epoch, index) alone: same draws on any rank, worker or resume."""
    return random.Random(f"minigpt4-sample/{seed}/{epoch}/{index}")


def torch_generator(rng: random.Random) -> torch.Generator:
    """A torch.Generator seeded from ``rng`` (for image augmentation draws)."""
    return torch.Generator().manual_seed(rng.getrandbits(63))


def collate(samples: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """Drop ``None`` items; stack tensors, keep other values as lists; add ``skipped`` (dropped count).

    When every item was dropped the batch is ``{"skipped": n}`` only.
    """
    kept = [s for s in samples if s is not None]
    batch: dict[str, Any] = {}
    if kept:
        for key in kept[0]:
            values = [s[key] for s in kept]
            batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    batch["skipped"] = len(samples) - len(kept)
    return batch
