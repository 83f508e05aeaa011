"""Caption records, the files they come from, and the Flickr30k and cc_sbu_align layouts: defined once here.

``flickr_annotations_30k.csv`` + ``flickr30k-images/`` (the download), ``flickr30k_<split>.json`` (what
``prepare_flickr30k.py`` writes: a list of ``{"image", "image_id", "captions"}``) and the splits;
``filter_cap.json`` + ``image/`` (the official MiniGPT-4 stage-2 data, ``cc_sbu_align``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minigpt4.errors import DataError

SPLITS = ("train", "val", "test")
CSV_NAME = "flickr_annotations_30k.csv"
IMAGE_DIR = "flickr30k-images"
CC_SBU_ANN = "filter_cap.json"  # cc_sbu_align: <storage>/filter_cap.json + <storage>/image/<image_id>.jpg
CC_SBU_IMAGE_DIR = "image"


def split_file_name(split: str, concat: bool = False) -> str:
    """``flickr30k_<split>.json`` (``flickr30k_<split>_concat.json`` for joined captions)."""
    return f"flickr30k_{split}_concat.json" if concat else f"flickr30k_{split}.json"


@dataclass(frozen=True)
class CaptionRecord:
    """One image with its reference captions. ``image`` is relative to the dataset's image root."""

    image: str
    image_id: str
    captions: tuple[str, ...]


def read_json(path: Path) -> Any:
    """An annotation file's JSON content; a missing file, bad JSON or non-UTF-8 bytes are a ``DataError``."""
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}): not a JSON file") from None


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
    data = read_json(path)
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
            raise DataError(
                f"{where}: key {captions_key!r} must be a non-empty string or a non-empty list of non-empty strings, got {caps!r}"
            )
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


def read_cc_sbu_align(path: str | Path) -> list[CaptionRecord]:
    """Records of the official MiniGPT-4 stage-2 ``filter_cap.json``:
    ``{"annotations": [{"image_id": "2", "caption": "..."}, ...]}``, one caption per image.

    Each record becomes ``CaptionRecord(f"{image_id}.jpg", str(image_id), (caption,))``; the caption
    is kept exactly as written. Errors name the file, the record index and what was expected.
    """
    path = Path(path)
    data = read_json(path)
    anns = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(anns, list):
        got = f"keys {sorted(data)}" if isinstance(data, dict) else type(data).__name__
        raise DataError(f'{path}: expected {{"annotations": [{{"image_id", "caption"}}, ...]}}, got {got}')
    records, seen = [], {}
    for i, item in enumerate(anns):
        where = f"{path}: annotations[{i}]"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected an object with 'image_id' and 'caption', got {type(item).__name__}")
        for key in ("image_id", "caption"):
            if key not in item:
                raise DataError(f"{where}: key {key!r} is missing; the record has keys {sorted(item)}")
        image_id, caption = item["image_id"], item["caption"]
        if isinstance(image_id, bool) or not isinstance(image_id, (str, int)) or not str(image_id).strip():
            raise DataError(
                f"{where}: 'image_id' must be a non-empty string or an integer (the image is image/<image_id>.jpg), got {image_id!r}"
            )
        if not isinstance(caption, str) or not caption.strip():
            raise DataError(f"{where}: 'caption' must be a non-empty string, got {caption!r}")
        image_id = str(image_id)
        if image_id in seen:
            raise DataError(
                f"{where}: image_id {image_id!r} already used by annotations[{seen[image_id]}] (one caption per image expected)"
            )
        seen[image_id] = i
        records.append(CaptionRecord(f"{image_id}.jpg", image_id, (caption,)))
    if not records:
        raise DataError(f"{path}: the annotations list is empty")
    return records


def join_captions(captions: Sequence[str]) -> str:
    """The older practice: all captions of an image as one target, joined by a space."""
    return " ".join(c.strip() for c in captions)
