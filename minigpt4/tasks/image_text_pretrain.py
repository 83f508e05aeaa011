"""The ``image_text_pretrain`` task: build the training datasets, compute the loss of a batch."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from minigpt4.common.registry import DATASETS, TASKS


@TASKS.register("image_text_pretrain")
class ImageTextPretrainTask:
    """Image-caption training: ``model(samples)["loss"]`` on every dataset under ``cfg.datasets``."""

    def __init__(self, strict_data: bool = False) -> None:
        self.strict_data = strict_data

    @classmethod
    def from_config(cls, run_cfg: Any) -> "ImageTextPretrainTask":
        return cls(strict_data=bool(run_cfg.get("strict_data", False)))

    def build_datasets(self, datasets_cfg: Any) -> list[Dataset]:
        """The ``train`` split of each entry (built by its registered builder), in config order."""
        if not datasets_cfg:
            raise ValueError("the config has no 'datasets' entries: nothing to train on")
        out = []
        for name, entry in datasets_cfg.items():
            builder = DATASETS.get(entry.builder).from_config(entry, strict=self.strict_data)
            splits = builder.build_datasets()
            if "train" not in splits:
                raise ValueError(
                    f"datasets.{name}: builder '{entry.builder}' built splits {sorted(splits)}, "
                    "but training needs a 'train' split"
                )
            out.append(splits["train"])
        return out

    def train_step(self, model: nn.Module, samples: dict[str, Any]) -> torch.Tensor:
        """The scalar training loss of one batch."""
        return model(samples)["loss"]
