"""Registered dataset builders; importing this package registers them.

``flickr30k_caption`` (training), ``flickr30k_eval`` (evaluation) and ``caption_json`` (any caption
JSON). Each is built from one config entry: ``DATASETS.get(name).from_config(entry, strict=...)
.build_datasets() -> {split: Dataset}``; datasets have a ``collater``. See docs/data.md.
"""
from .base import CaptionRecord, DataError, ImageLoadError, collate, read_caption_json
from .caption_datasets import CaptionEvalDataset, CaptionTrainDataset, join_captions
from .caption_json import CaptionJsonBuilder
from .flickr30k import Flickr30kCaptionBuilder, Flickr30kEvalBuilder

__all__ = [
    "CaptionRecord", "DataError", "ImageLoadError", "collate", "read_caption_json",
    "CaptionEvalDataset", "CaptionTrainDataset", "join_captions",
    "CaptionJsonBuilder", "Flickr30kCaptionBuilder", "Flickr30kEvalBuilder",
]
