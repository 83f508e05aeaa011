"""``laion``: the official stage-1 dataset name, ``webdataset_caption`` with its defaults
(``configs/datasets/laion/defaults.yaml``: ``build_info.storage: /path/to/laion_dataset/{00000..10488}.tar``)."""

from __future__ import annotations

from minigpt4.registry import DATASETS

from .webdataset_caption import WebdatasetCaptionBuilder, stream_schema


@DATASETS.register("laion")
class LaionBuilder(WebdatasetCaptionBuilder):
    """The official ``laion`` entry: img2dataset shards, the caption in each sample's ``.json``."""

    DEFAULT_CONFIG_PATH = "configs/datasets/laion/defaults.yaml"
    SCHEMA = stream_schema(
        "laion", "img2dataset's shards, as the official config: /path/to/laion_dataset/{00000..10488}.tar (your folder)."
    )
