"""Caption data: records and the Flickr30k layout (``records``), the datasets (``caption_datasets``),
the registered builders ``flickr30k_caption`` (training), ``flickr30k_eval`` (evaluation) and
``caption_json`` (any caption JSON), and ``flickr30k_prepare`` (what ``prepare_flickr30k.py`` runs).

A builder is built from one config entry: ``DATASETS.build(entry.builder, entry, strict=...)
.build_datasets() -> {split: Dataset}``; datasets have a ``collater``. See docs/data.md.
"""

from typing import Any

from minigpt4.errors import DataError, ImageLoadError

from .records import SPLITS, CaptionRecord, join_captions, read_caption_json, read_flickr30k, split_file_name

_TORCH_NAMES = ("CaptionEvalDataset", "CaptionTrainDataset", "collate")


def __getattr__(name: str) -> Any:
    """The torch datasets on first use, so that the records alone (the CSV layout, prepare_flickr30k)
    do not import torch."""
    if name in _TORCH_NAMES:
        from . import caption_datasets

        return getattr(caption_datasets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CaptionRecord",
    "DataError",
    "ImageLoadError",
    "SPLITS",
    "collate",
    "read_caption_json",
    "read_flickr30k",
    "split_file_name",
    "CaptionEvalDataset",
    "CaptionTrainDataset",
    "join_captions",
]
