"""Caption records, the files they come from, and the Flickr30k layout: defined once here.

``flickr_annotations_30k.csv`` + ``flickr30k-images/`` (the download), ``flickr30k_<split>.json`` (what
``prepare_flickr30k.py`` writes: a list of ``{"image", "image_id", "captions"}``) and the splits.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from minigpt4.errors import DataError

SPLITS = ("train", "val", "test")
CSV_NAME = "flickr_annotations_30k.csv"
IMAGE_DIR = "flickr30k-images"


def split_file_name(split: str, concat: bool = False) -> str:
    """``flickr30k_<split>.json`` (``flickr30k_<split>_concat.json`` for joined captions)."""
    return f"flickr30k_{split}_concat.json" if concat else f"flickr30k_{split}.json"


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
        for key, role in ((image_key, "image_key"), (captions_key, "captions_key"), (image_id_key, "image_id_key")):
            if key is not None and key not in item:
                raise DataError(f"{where}: key {key!r} ({role}) is missing; the item has keys {sorted(item)}")
        image = item[image_key]
        if not isinstance(image, str) or not image.strip():
            raise DataError(f"{where}: key {image_key!r} must be a non-empty string (image file relative to image_path), got {image!r}")
        caps = item[captions_key]
        if isinstance(caps, str):
            caps = [caps]
        if not isinstance(caps, list) or not caps or not all(isinstance(c, str) and c.strip() for c in caps):
            raise DataError(f"{where}: key {captions_key!r} must be a non-empty string or a non-empty list of "
                            f"non-empty strings, got {caps!r}")
        if image_id_key is not None:
            image_id = str(item[image_id_key])
        else:
            image_id = Path(image).stem
        records.append(CaptionRecord(image, image_id, tuple(caps)))
    if not records:
        raise DataError(f"{path}: the annotation list is empty")
    return records


def read_flickr30k(path: str | Path) -> list[CaptionRecord]:
    """Records of a ``flickr30k_<split>.json`` (its ``image_id`` key is required)."""
    return read_caption_json(path, image_key="image", captions_key="captions", image_id_key="image_id")
