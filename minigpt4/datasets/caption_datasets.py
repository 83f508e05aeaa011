"""Training and evaluation datasets over a list of ``CaptionRecord``s (Flickr30k or any caption JSON)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from minigpt4.errors import ImageLoadError

from .records import CaptionRecord, join_captions

log = logging.getLogger(__name__)
CAPTION_SAMPLING = ("all", "random", "concat")


def open_image(path: Path) -> Image.Image:
    """Open and fully decode an image as RGB (raises OSError/ValueError when missing or corrupt)."""
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


def load_image_or_none(path: Path, strict: bool, where: str = "") -> Image.Image | None:
    """The RGB image, or None (logged) when it is missing or corrupt; ``strict`` raises instead."""
    try:
        return open_image(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        msg = f"cannot load image {path}{f' ({where})' if where else ''}: {type(e).__name__}: {e}"
        if strict:
            raise ImageLoadError(msg + " [strict: set run.strict_data=false to skip and count such images]") from e
        log.warning("skipping %s", msg)
        return None


def sample_rng(seed: int, epoch: int, index: int) -> random.Random:
    """A generator determined by (seed, epoch, index) alone: same draws on any rank, worker or resume."""
    return random.Random(f"minigpt4-sample/{seed}/{epoch}/{index}")


def torch_generator(rng: random.Random) -> torch.Generator:
    """A torch.Generator seeded from ``rng`` (for image augmentation draws)."""
    return torch.Generator().manual_seed(rng.getrandbits(63))


def image_fields(
    path: Path, process: Callable[[Image.Image], torch.Tensor], strict: bool, where: str, features: Any = None
) -> dict[str, Any] | None:
    """``{"image": tensor}`` of one image; with a feature cache (``features``) ``{"image": tensor or
    None, "features": tensor or None, "image_sha256", "feature_status", "feature_cache" (its folder)}``:
    a cached image is not even decoded. None when the image is missing or corrupt (``strict`` raises)."""
    found = None
    if features is not None:
        try:
            found = features.lookup(path)
        except FileNotFoundError:  # a missing image: reported (or raised) by the load below
            found = None
        if found is not None and found.features is not None:
            return {
                "image": None,
                "features": found.features,
                "image_sha256": found.sha256,
                "feature_status": "hit",
                "feature_cache": str(features.folder),
            }
    image = load_image_or_none(path, strict, where)
    if image is None:
        return None
    if features is None:
        return {"image": process(image)}
    return {
        "image": process(image),
        "features": None,
        "image_sha256": found.sha256 if found else None,
        "feature_status": found.status if found else "miss",
        "feature_cache": str(features.folder),
    }


def collate(samples: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """Drop ``None`` items; stack a key's values when all are tensors, else keep a list; add
    ``skipped`` (dropped count).

    When every item was dropped the batch is ``{"skipped": n}`` only.
    """
    kept = [s for s in samples if s is not None]
    batch: dict[str, Any] = {}
    if kept:
        for key in kept[0]:
            values = [s[key] for s in kept]
            batch[key] = torch.stack(values) if all(isinstance(v, torch.Tensor) for v in values) else values
    batch["skipped"] = len(samples) - len(kept)
    return batch


class CaptionTrainDataset(Dataset):
    """Training samples ``{"image": FloatTensor[3,S,S], "instruction_input": str, "answer": str,
    "image_id": str}`` (or None when the image is missing/corrupt and ``strict`` is off).

    ``caption_sampling``: ``all`` = one sample per (image, caption) pair; ``random`` = one sample per
    image with a caption drawn per epoch; ``concat`` = one sample per image, its captions joined.
    Every random draw (instruction, caption, crop) comes from ``sample_rng(seed, epoch, index)``, so
    an item depends only on (seed, epoch, index): ranks, workers and resumed runs agree. Call
    ``set_epoch(epoch)`` each epoch, or index with ``(epoch, index)`` tuples.
    """

    def __init__(
        self,
        records: Sequence[CaptionRecord],
        image_root: str | Path,
        vis_processor: Callable,
        text_processor: Callable[[str], str],
        instructions: Sequence[str],
        caption_sampling: str = "all",
        seed: int = 0,
        strict: bool = False,
        source: str = "",
    ) -> None:
        if caption_sampling not in CAPTION_SAMPLING:
            raise ValueError(f"caption_sampling must be one of {CAPTION_SAMPLING}, got {caption_sampling!r}")
        if not instructions:
            raise ValueError("instructions must not be empty")
        self.records = list(records)
        self.image_root = Path(image_root)
        self.vis_processor = vis_processor
        self.text_processor = text_processor
        self.instructions = list(instructions)
        self.caption_sampling = caption_sampling
        self.seed = seed
        self.strict = strict
        self.source = source
        self.features: Any = None  # a FeatureCache (``use_features``, by the task when run.feature_cache is on)
        self.use_token_counter(None)  # text -> tokens, for lengths() (words until the task gives one)
        self.epoch = 0
        if caption_sampling == "all":
            self.index = [(r, c) for r, rec in enumerate(self.records) for c in range(len(rec.captions))]
        else:
            self.index = [(r, None) for r in range(len(self.records))]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draws (caption in ``random`` mode, instruction, crop) are used."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def use_features(self, cache: Any | None) -> None:
        """Read image features from ``cache`` (a ``FeatureCache``) where it has them; None: decode every image."""
        self.features = cache

    @property
    def count_tokens(self) -> Callable[[str], int] | None:
        """The ``text -> tokens`` count of ``lengths`` (None: words); set with ``use_token_counter``."""
        return self._count_tokens

    def use_token_counter(self, count: Callable[[str], int] | None) -> None:
        """Measure ``lengths`` with ``count`` (the task gives the LLM tokenizer's); None: words."""
        self._count_tokens, self._length_memo = count, {}  # lengths counted before were another count's

    def lengths(self, epoch: int) -> list[int]:
        """The length of each item's instruction and (processed) answer in ``epoch``, the same draws as
        ``__getitem__``: tokens when a count is given (``use_token_counter``: the task gives the LLM tokenizer's),
        else words. For length-grouped batches; each distinct text is counted once."""
        count = self.count_tokens or (lambda text: len(text.split()))
        memo: dict[str, int] = self._length_memo

        def n(text: str, answer: bool) -> int:
            key = ("a:" if answer else "i:") + text
            if key not in memo:
                memo[key] = count(self.text_processor(text) if answer else text)
            return memo[key]

        out = []
        for index, (r, c) in enumerate(self.index):
            captions = self.records[r].captions
            if self.caption_sampling == "all" and len(self.instructions) == 1:
                out.append(n(self.instructions[0], False) + n(captions[c], True))
                continue
            rng = sample_rng(self.seed, epoch, index)
            instruction = rng.choice(self.instructions)
            if self.caption_sampling == "random":
                answer = rng.choice(captions)
            else:
                answer = join_captions(captions) if self.caption_sampling == "concat" else captions[c]
            out.append(n(instruction, False) + n(answer, True))
        return out

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any] | None:
        epoch, index = index if isinstance(index, tuple) else (self.epoch, index)
        r, c = self.index[index]
        rec = self.records[r]
        rng = sample_rng(self.seed, epoch, index)
        instruction = rng.choice(self.instructions)
        if self.caption_sampling == "random":
            caption = rng.choice(rec.captions)
        elif self.caption_sampling == "concat":
            caption = join_captions(rec.captions)
        else:
            caption = rec.captions[c]
        crop_generator = torch_generator(rng)
        where = f"{self.source} item {r}" if self.source else f"item {r}"
        fields = image_fields(
            self.image_root / rec.image, lambda im: self.vis_processor(im, crop_generator), self.strict, where, self.features
        )
        if fields is None:
            return None
        return {
            **fields,
            "instruction_input": instruction,
            "answer": self.text_processor(caption),
            "image_id": rec.image_id,
        }

    def collater(self, samples: Sequence[dict | None]) -> dict[str, Any]:
        """Batch dict (images stacked, strings as lists) plus ``skipped`` (None items dropped)."""
        return collate(samples)


class CaptionEvalDataset(Dataset):
    """Evaluation samples ``{"image": FloatTensor[3,S,S], "image_id": str, "captions": list[str],
    "image_path": str}``, one per image; ``captions`` are the raw references, ``image_path`` the
    file name relative to the image root. None when the image is missing/corrupt (strict raises)."""

    def __init__(
        self,
        records: Sequence[CaptionRecord],
        image_root: str | Path,
        vis_processor: Callable,
        strict: bool = False,
        source: str = "",
    ) -> None:
        self.records = list(records)
        self.image_root = Path(image_root)
        self.vis_processor = vis_processor
        self.strict = strict
        self.source = source
        self.features: Any = None  # a FeatureCache (``use_features``, by the task when run.feature_cache is on)

    def use_features(self, cache: Any | None) -> None:
        """Read image features from ``cache`` (a ``FeatureCache``) where it has them; None: decode every image."""
        self.features = cache

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        rec = self.records[index]
        where = f"{self.source} item {index}" if self.source else f"item {index}"
        fields = image_fields(self.image_root / rec.image, self.vis_processor, self.strict, where, self.features)
        if fields is None:
            return None
        return {
            **fields,
            "image_id": rec.image_id,
            "captions": list(rec.captions),
            "image_path": rec.image,
        }

    def collater(self, samples: Sequence[dict | None]) -> dict[str, Any]:
        """Batch dict (images stacked, ``captions`` a list of lists) plus ``skipped``."""
        return collate(samples)
