"""The captioning task (``run.task: image_text_pretrain``): what a sample is, how a batch is trained
on, which split is evaluated and how its captions are generated and scored.

Training samples are ``{"image", "instruction_input", "answer", "image_id"}`` from the ``train``
split of every ``datasets`` entry; the loss is the model's token-mean cross-entropy over the answer.
Evaluation samples are ``{"image", "image_id", "captions", "image_path"}`` of the one
``evaluation_datasets`` entry; each image gets one caption from the same instruction and is scored
against its reference captions with the COCO caption metrics.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import Dataset

from minigpt4.errors import ConfigError, EvalError
from minigpt4.evaluation.generation import generate_captions
from minigpt4.evaluation.scoring import CaptionScorer
from minigpt4.registry import DATASETS, TASKS
from minigpt4.utils.prompt import PromptTemplate, load_instructions


def check_unique_ids(items: list[tuple[str, str]], source: str) -> None:
    """Scoring pairs each caption with its image's references by ``image_id``: ids must be unique."""
    first: dict[str, int] = {}
    for i, (image_id, image) in enumerate(items):
        if image_id in first:
            j = first[image_id]
            raise EvalError(
                f"{source}: image_id {image_id!r} appears twice (items {j} and {i}: {items[j][1]!r}, {image!r}); "
                "scoring needs one record per image with all its reference captions (group a file with one "
                "record per caption by image, captions as a list)")
        first[image_id] = i


@TASKS.register("image_text_pretrain")
class ImageTextPretrainTask:
    """Image-caption training and evaluation over the config's dataset entries."""

    def __init__(self, strict_data: bool = False) -> None:
        self.strict_data = strict_data

    @classmethod
    def from_config(cls, run_cfg: Any) -> ImageTextPretrainTask:
        return cls(strict_data=bool(run_cfg.get("strict_data", False)))

    # ---- training -----------------------------------------------------------------------
    def build_datasets(self, datasets_cfg: Any) -> dict[str, Dataset]:
        """The ``train`` split of each entry (built by its registered builder), by entry name in config order."""
        if not datasets_cfg:
            raise ConfigError("the config has no 'datasets' entries: nothing to train on")
        ratios = {name: entry.get("sample_ratio") for name, entry in datasets_cfg.items()}
        if len(ratios) > 1 and None in ratios.values() and set(ratios.values()) != {None}:
            raise ConfigError(f"datasets.*.sample_ratio is set on {sorted(n for n, r in ratios.items() if r is not None)} "
                              f"but not on {sorted(n for n, r in ratios.items() if r is None)}: set it on every entry "
                              "(mixing weights) or on none (one pool)")
        out = {}
        for name, entry in datasets_cfg.items():
            splits = DATASETS.build(entry.builder, entry, strict=self.strict_data).build_datasets()
            if "train" not in splits:
                raise ConfigError(f"datasets.{name}: builder '{entry.builder}' built splits {sorted(splits)}, "
                                  "but training needs a 'train' split (set split: train)")
            out[name] = splits["train"]
        return out

    def train_step(self, model: nn.Module, samples: dict[str, Any]) -> torch.Tensor:
        """The scalar training loss of one batch."""
        return model(samples)["loss"]

    # ---- evaluation ---------------------------------------------------------------------
    def build_eval_split(self, cfg: DictConfig, split: str | None = None) -> tuple[Dataset, str, str]:
        """(dataset, entry name, split) of the one ``evaluation_datasets`` entry; ``split`` overrides the
        entry's own only where its ``ann_path`` is a folder of per-split files. Unreadable images fail."""
        entries = cfg.get("evaluation_datasets") or {}
        if len(entries) != 1:
            raise EvalError(f"the config needs exactly one evaluation_datasets entry (e.g. flickr30k_eval), "
                            f"found {list(entries) or 'none'}")
        name, entry = next(iter(entries.items()))
        configured = entry.get("split")
        if split is not None and split != configured:
            ann = Path(entry.build_info.ann_path)  # absolute: load_config resolved it
            if configured is None or ann.is_file():
                raise EvalError(
                    f"--split {split}: evaluation_datasets.{name} is the {configured!r} split of the file {ann}; "
                    f"set its build_info.ann_path to the {split} file (and split: {split}), or to the folder "
                    "holding flickr30k_<split>.json")
            entry = entry.copy()
            entry.split = split
        split = split or configured
        datasets = DATASETS.build(entry.builder, entry, strict=True).build_datasets()
        if split not in datasets:
            raise EvalError(f"evaluation_datasets.{name} has no split {split!r} (has {sorted(datasets)})")
        dataset = datasets[split]
        if hasattr(dataset, "records"):  # from the annotations alone, before any model is built
            check_unique_ids([(r.image_id, r.image) for r in dataset.records],
                             f"evaluation_datasets.{name} ({getattr(dataset, 'source', '') or entry.build_info.ann_path})")
        return dataset, name, split

    def instruction(self, cfg: DictConfig) -> str:
        """The one instruction every image is captioned with: ``run.eval_instruction`` or the first line
        of ``model.prompt_path`` (known from the config alone, before the model is built)."""
        instruction = cfg.run.get("eval_instruction") or load_instructions(cfg.model.prompt_path)[0]
        try:
            PromptTemplate(cfg.model.prompt_template).split(instruction)
        except ValueError as e:
            raise ConfigError(f"run.eval_instruction: {e}") from None
        return instruction

    def generate(self, model: Any, dataset: Dataset, instruction: str, run_cfg: Any,
                 desc: str = "captioning") -> list[dict[str, Any]]:
        """Captions of ``dataset`` over all ranks: on rank 0 ``[{"index", "image_id", "image", "caption",
        "references"}]`` in dataset order, ``[]`` elsewhere."""
        return generate_captions(model, dataset, instruction, run_cfg.batch_size_eval, run_cfg.max_new_tokens,
                                 run_cfg.num_beams, run_cfg.num_workers, desc=desc)

    @staticmethod
    def predictions_and_references(results: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, list[str]]]:
        """``({image_id: caption}, {image_id: references})`` of generated results (ids must be unique)."""
        check_unique_ids([(r["image_id"], r["image"]) for r in results], "the generated results")
        return ({r["image_id"]: r["caption"] for r in results}, {r["image_id"]: r["references"] for r in results})

    def score(self, results: list[dict[str, Any]], scorer: CaptionScorer) -> dict[str, float]:
        """COCO caption metrics of the results against their references."""
        return scorer.score(*self.predictions_and_references(results))
