"""``caption_json``: any JSON list of ``{image, captions}`` records as a training or evaluation set,
added by a YAML entry alone (``builder: caption_json`` under a dataset name of your choice)."""

from __future__ import annotations

from torch.utils.data import Dataset

from minigpt4.config.schema import Key
from minigpt4.registry import DATASETS

from .builder import TEXT_KEY, TRAIN_KEYS, VIS_KEY, CaptionBuilder, build_info_key, builder_key
from .records import SPLITS, read_caption_json


@DATASETS.register("caption_json")
class CaptionJsonBuilder(CaptionBuilder):
    """A caption JSON file: ``{split: dataset}``; ``split: train`` gives training items (as
    ``flickr30k_caption``), ``val``/``test`` evaluation items (as ``flickr30k_eval``)."""

    DEFAULT_CONFIG_PATH = "configs/datasets/caption_json/defaults.yaml"
    SCHEMA = {
        "builder": builder_key("caption_json"),
        "build_info": build_info_key("JSON file: a list of records with an image file name and its caption(s).", "file"),
        "split": Key(
            "train: training samples (instruction, answer); val/test: evaluation samples (references).", str, "train", choices=SPLITS
        ),
        "image_key": Key("Record key of the image file name (relative to build_info.image_path).", str, "image"),
        "captions_key": Key("Record key of the captions: a list of strings or a single string.", str, "captions"),
        "image_id_key": Key("Record key of the image id; null = the image file name's stem.", str, None, nullable=True),
        "vis_processor": VIS_KEY,
        "text_processor": TEXT_KEY,
        **TRAIN_KEYS,
    }

    def build_datasets(self) -> dict[str, Dataset]:
        c = self.config
        path = self.path("ann_path")
        records = read_caption_json(path, c["image_key"], c["captions_key"], c["image_id_key"])
        if c["split"] == "train":
            return {"train": self.train_dataset(records, str(path))}
        return {c["split"]: self.eval_dataset(records, str(path))}
