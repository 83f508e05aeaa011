"""BLIP-2 image processors (Pillow + torch): bicubic resize, optional random resized crop, CLIP
normalisation. Input: a PIL image (any mode, converted to RGB); output: FloatTensor [3, S, S]."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image

from minigpt4.config.schema import Key
from minigpt4.registry import PROCESSORS

from .base import BaseProcessor

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
BICUBIC = Image.Resampling.BICUBIC


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> FloatTensor [3, H, W] with values in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def normalize(x: torch.Tensor, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """(x - mean) / std per channel of a [3, H, W] tensor."""
    m = torch.tensor(mean, dtype=x.dtype).view(3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(3, 1, 1)
    return (x - m) / s


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return float(torch.empty(1).uniform_(lo, hi, generator=generator))


def random_resized_crop_box(
    width: int,
    height: int,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """A crop (left, top, w, h) covering a random fraction ``scale`` of the area with a random
    aspect ratio in ``ratio`` (log-uniform); 10 tries, then a centred crop with the ratio clamped."""
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * _uniform(scale[0], scale[1], generator)
        aspect = math.exp(_uniform(log_lo, log_hi, generator))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return left, top, w, h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def resize_identity(size: int) -> dict[str, Any]:
    """The cache identity of the deterministic resize both BLIP-2 processors do."""
    return {"op": "resize", "size": size, "resample": "bicubic", "mean": CLIP_MEAN, "std": CLIP_STD}


_SIZE = Key("Output side length S in pixels (square S x S); match the model's image_size.", int, 224)


@PROCESSORS.register("blip2_image_eval")
class Blip2ImageEvalProcessor(BaseProcessor):
    """Bicubic resize to (S, S), to [0, 1], CLIP mean/std normalisation."""

    SCHEMA = {"image_size": _SIZE}

    def __init__(self, image_size: int = 224) -> None:
        if image_size <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}")
        self.image_size = image_size

    def cache_identity(self) -> dict[str, Any]:
        return resize_identity(self.image_size)

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        """``generator`` is accepted for a uniform signature and ignored (deterministic)."""
        s = self.image_size
        return normalize(to_tensor(image.convert("RGB").resize((s, s), BICUBIC)))


@PROCESSORS.register("blip2_image_train")
class Blip2ImageTrainProcessor(BaseProcessor):
    """Training images: the deterministic eval resize by default (as the current official code);
    with ``min_scale < 1`` a random resized crop (scale (min_scale, max_scale), aspect 3/4..4/3,
    bicubic) as in the v1 release, its draws taken from the ``generator`` passed per call."""

    SCHEMA = {
        "image_size": _SIZE,
        "min_scale": Key("Random resized crop: smallest crop area fraction; 1.0 = no crop (deterministic resize).", float, 1.0),
        "max_scale": Key("Random resized crop: largest crop area fraction.", float, 1.0),
    }

    def __init__(self, image_size: int = 224, min_scale: float = 1.0, max_scale: float = 1.0) -> None:
        if image_size <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}")
        if not 0 < min_scale <= max_scale <= 1:
            raise ValueError(f"need 0 < min_scale <= max_scale <= 1, got min_scale={min_scale}, max_scale={max_scale}")
        self.image_size = image_size
        self.min_scale = min_scale
        self.max_scale = max_scale

    def cache_identity(self) -> dict[str, Any] | None:
        return resize_identity(self.image_size) if self.min_scale >= 1.0 else None  # random crops: None

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        """Process one image; the crop (if any) is drawn from ``generator`` (torch's global RNG if None)."""
        s = self.image_size
        image = image.convert("RGB")
        if self.min_scale >= 1.0:
            return normalize(to_tensor(image.resize((s, s), BICUBIC)))
        left, top, w, h = random_resized_crop_box(image.width, image.height, (self.min_scale, self.max_scale), generator=generator)
        crop = image.resize((s, s), BICUBIC, box=(left, top, left + w, top + h))
        return normalize(to_tensor(crop))
