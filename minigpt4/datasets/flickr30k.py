"""Flickr30k builders over the annotation files written by ``prepare_flickr30k.py``
(``flickr30k_{train,val,test}.json``: a list of ``{"image", "image_id", "captions": [5 strings]}``)."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from minigpt4.config.schema import Key
from minigpt4.errors import DataError
from minigpt4.registry import DATASETS

from .builder import TEXT_KEY, TRAIN_KEYS, VIS_KEY, CaptionBuilder, build_info_key, builder_key
from .records import read_flickr30k, split_file_name


def split_annotation(ann_path: Path, split: str) -> Path:
    """``ann_path`` itself when it is a file, else ``ann_path/flickr30k_<split>.json``."""
    if ann_path.is_dir():
        path = ann_path / split_file_name(split)
        if not path.is_file():
            raise DataError(f"{path}: annotation file not found (make it with prepare_flickr30k.py --root DIR)")
        return path
    return ann_path


@DATASETS.register("flickr30k_caption")
class Flickr30kCaptionBuilder(CaptionBuilder):
    """Flickr30k training set: ``{"train": CaptionTrainDataset}``.

    Items: ``image`` FloatTensor[3,S,S] (``vis_processor.train``), ``instruction_input`` str (drawn
    from ``prompt_path``), ``answer`` str (caption through ``text_processor.train``), ``image_id`` str.
    """

    DEFAULT_CONFIG_PATH = "configs/datasets/flickr30k/caption.yaml"
    SCHEMA = {
        "builder": builder_key("flickr30k_caption"),
        "build_info": build_info_key("flickr30k_train.json, or the folder holding it (prepare_flickr30k.py's --out-dir).", "any"),
        "vis_processor": VIS_KEY,
        "text_processor": TEXT_KEY,
        **TRAIN_KEYS,
    }

    def build_datasets(self) -> dict[str, Dataset]:
        path = split_annotation(self.path("ann_path"), "train")
        return {"train": self.train_dataset(read_flickr30k(path), str(path))}


@DATASETS.register("flickr30k_eval")
class Flickr30kEvalBuilder(CaptionBuilder):
    """Flickr30k evaluation set for ``split`` (test or val): ``{split: CaptionEvalDataset}``.

    Items: ``image`` FloatTensor[3,S,S] (``vis_processor.eval``), ``image_id`` str, ``captions``
    list of the raw reference strings, ``image_path`` file name relative to ``image_path``.
    """

    DEFAULT_CONFIG_PATH = "configs/datasets/flickr30k/eval.yaml"
    SCHEMA = {
        "builder": builder_key("flickr30k_eval"),
        "build_info": build_info_key(
            "The split's annotation file, or the folder holding flickr30k_<split>.json (prepare_flickr30k.py's --out-dir).", "any"
        ),
        "split": Key("Split to evaluate.", str, "test", choices=("test", "val")),
        "vis_processor": VIS_KEY,
    }

    def build_datasets(self) -> dict[str, Dataset]:
        split = self.config["split"]
        path = split_annotation(self.path("ann_path"), split)
        return {split: self.eval_dataset(read_flickr30k(path), str(path))}
