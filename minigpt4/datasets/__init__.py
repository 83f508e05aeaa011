"""Caption data: records and the Flickr30k layout (``records``), the datasets (``caption_datasets``),
the registered builders ``flickr30k_caption`` (training), ``flickr30k_eval`` (evaluation) and
``caption_json`` (any caption JSON), and ``flickr30k_prepare`` (what ``prepare_flickr30k.py`` runs).

A builder is built from one config entry: ``DATASETS.build(entry.builder, entry, strict=...)
.build_datasets() -> {split: Dataset}``; datasets have a ``collater``. See docs/data.md.
"""
from minigpt4.errors import DataError, ImageLoadError

from .caption_datasets import CaptionEvalDataset, CaptionTrainDataset, collate, join_captions
from .records import SPLITS, CaptionRecord, read_caption_json, read_flickr30k, split_file_name

__all__ = [
    "CaptionRecord", "DataError", "ImageLoadError", "SPLITS", "collate", "read_caption_json", "read_flickr30k",
    "split_file_name", "CaptionEvalDataset", "CaptionTrainDataset", "join_captions",
]
