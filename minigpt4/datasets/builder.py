"""Base of the registered dataset builders: schema pieces shared by the caption builders and dataset
construction. An entry of ``load_config``'s result is already validated; a plain mapping given to
``from_config`` (direct use) is validated there, once, the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch.utils.data import Dataset

from minigpt4.config import resolve_path, validate_section
from minigpt4.config.schema import Key, at_least
from minigpt4.processors import processors_key
from minigpt4.processors.base import create_processor, plain
from minigpt4.utils.prompt import load_instructions

from .caption_datasets import CAPTION_SAMPLING, CaptionEvalDataset, CaptionTrainDataset
from .records import CaptionRecord

VIS_DEFAULT = {
    "train": {"name": "blip2_image_train", "image_size": 224},
    "eval": {"name": "blip2_image_eval", "image_size": 224},
}
TEXT_DEFAULT = {"train": {"name": "blip_caption"}, "eval": {"name": "blip_caption"}}


def builder_key(name: str) -> Key:
    return Key("Registered builder of this entry (defaults to the entry's name; set it to use a custom name).", str, name)


def build_info_key(ann_doc: str, ann_kind: str) -> Key:
    return Key(
        "Where the data lives.",
        children={
            "ann_path": Key(ann_doc, str, path=ann_kind),
            "image_path": Key("Image folder; the annotations' image names are relative to it.", str, path="dir"),
        },
    )


VIS_KEY = processors_key(
    "Image processors: {train: {name, ...keys}, eval: {name, ...keys}}; train is used by training "
    "datasets, eval by evaluation datasets. Set image_size to the model's.",
    VIS_DEFAULT,
)
TEXT_KEY = processors_key("Caption processors for training answers: {train: {name, ...}, eval: {name, ...}}.", TEXT_DEFAULT)
TRAIN_KEYS = {
    "caption_sampling": Key(
        "all: every (image, caption) pair is a sample; random: one sample per image, caption drawn per "
        "epoch (seeded); concat: one sample per image, its captions joined (older practice, comparison only).",
        str,
        "all",
        choices=CAPTION_SAMPLING,
    ),
    "prompt_path": Key(
        "Instruction file, one per line, each containing <ImageHere>; one is drawn per sample.", str, "prompts/alignment.txt", path="file"
    ),
    "seed": Key("Seed of the per-sample draws (instruction, caption, crop); an item depends only on (seed, epoch, index).", int, 0),
    "sample_ratio": Key(
        "Mixing weight when training on several datasets (as LAVIS's sample_ratio): each sample comes from this "
        "entry with probability sample_ratio / the sum over entries. Set it on every entry or on none; null "
        "everywhere = one pool, each sample once per data pass (shares follow the dataset sizes).",
        float,
        None,
        nullable=True,
        check=lambda v: [] if v > 0 else [f"expected a value > 0, got {v}"],
    ),
    "batch_size": Key(
        "The official configs' per-dataset batch size (newer files): used as run.batch_size_train; every entry that "
        "sets it must give the same value, and run.batch_size_train, when also set, that value too. null = "
        "run.batch_size_train.",
        int,
        None,
        nullable=True,
        check=at_least(1),
    ),
}


class CaptionBuilder:
    """A builder configured by one dataset entry. ``strict`` (the runner's ``run.strict_data``) makes
    a missing or corrupt image an error instead of a skipped, counted item; it is passed to
    ``from_config`` or set as an attribute before ``build_datasets()``."""

    SCHEMA: dict[str, Key] = {}
    DEFAULT_CONFIG_PATH: str = ""
    registry_name: str = ""

    def __init__(self, cfg: dict, strict: bool = False) -> None:
        self.config = cfg
        self.strict = bool(strict)

    @classmethod
    def splits(cls) -> tuple[str, ...]:
        """The splits this builder can give: its ``split`` key's choices; a builder without one gives
        ``train`` only. ``train`` fits a ``datasets`` entry, the others ``evaluation_datasets``."""
        key = cls.SCHEMA.get("split")
        return tuple(key.choices) if key is not None and key.choices else ("train",)

    @classmethod
    def from_config(cls, cfg: Any, strict: bool = False) -> CaptionBuilder:
        """Keep the entry ``cfg``: a validated section of ``load_config``'s result (a DictConfig), or a
        plain mapping, validated here (missing keys take the schema defaults; raises ``ConfigError``)."""
        if isinstance(cfg, DictConfig):
            return cls(plain(cfg), strict=strict)
        return cls(validate_section(plain(cfg) or {}, cls.SCHEMA, "the dataset config", f"{cls.registry_name}."), strict=strict)

    def build_datasets(self) -> dict[str, Dataset]:
        raise NotImplementedError

    # helpers for subclasses
    def path(self, key: str) -> Path:
        return resolve_path(self.config["build_info"][key])

    def train_dataset(
        self, records: list[CaptionRecord], source: str, image_root: Path | None = None, text_processor: dict | None = None
    ) -> CaptionTrainDataset:
        """The training dataset of ``records``; images under ``image_root`` (default: ``build_info.image_path``),
        answers through ``text_processor`` (default: the entry's ``text_processor.train``)."""
        c = self.config
        return CaptionTrainDataset(
            records,
            image_root or self.path("image_path"),
            create_processor(c["vis_processor"]["train"]),
            create_processor(text_processor or c["text_processor"]["train"]),
            load_instructions(resolve_path(c["prompt_path"])),
            caption_sampling=c.get("caption_sampling", "all"),
            seed=c["seed"],
            strict=self.strict,
            source=source,
        )

    def eval_dataset(self, records: list[CaptionRecord], source: str) -> CaptionEvalDataset:
        vis = create_processor(self.config["vis_processor"]["eval"])
        return CaptionEvalDataset(records, self.path("image_path"), vis, strict=self.strict, source=source)
