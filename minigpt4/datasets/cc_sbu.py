"""``cc_sbu``: the official stage-1 dataset name, ``webdataset_caption`` with its defaults
(``configs/datasets/cc_sbu/defaults.yaml``: ``build_info.storage: /path/to/cc_sbu_dataset/{00000..01255}.tar``)."""

from __future__ import annotations

from minigpt4.registry import DATASETS

from .webdataset_caption import WebdatasetCaptionBuilder, stream_schema


@DATASETS.register("cc_sbu")
class CCSBUBuilder(WebdatasetCaptionBuilder):
    """The official ``cc_sbu`` entry: img2dataset shards, the caption in each sample's ``.json``."""

    DEFAULT_CONFIG_PATH = "configs/datasets/cc_sbu/defaults.yaml"
    SCHEMA = stream_schema(
        "cc_sbu", "img2dataset's shards, as the official config: /path/to/cc_sbu_dataset/{00000..01255}.tar (your folder)."
    )
