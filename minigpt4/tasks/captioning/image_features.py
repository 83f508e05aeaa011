"""Between the datasets and the model's frozen vision stack: the feature cache (``run.feature_cache``).

Datasets given a cache (``datasets.protocol.FeatureReading.use_features``) return the cached features of an image instead of
decoding it (``datasets.caption_datasets.image_fields``); ``complete`` computes the missing ones
in one batched pass through the frozen stack, stores them (first writer wins) and gives the model
the stored values, so a cold and a warm cache train and caption the same. Without a cache,
``complete`` just runs the frozen stack on the batch's images.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import Dataset

from minigpt4.datasets.protocol import FeatureReading
from minigpt4.errors import ConfigError
from minigpt4.features import FeatureCache, stack_key

log = logging.getLogger(__name__)


def processor_problem(name: str, dataset: Dataset, slot: str) -> str | None:
    """Why the images of ``dataset`` (entry ``name``) cannot have cached features, or None."""
    proc = getattr(dataset, "vis_processor", None)
    if proc is None or getattr(proc, "cache_identity", lambda: None)() is not None:
        return None
    key = f"datasets.{name}.vis_processor.{slot}"
    if getattr(proc, "min_scale", 1.0) < 1.0:
        return (
            f"{key}.min_scale is {proc.min_scale} (< 1: a random crop per sample and epoch), so the frozen "
            "image features differ every epoch and cannot be cached: set run.feature_cache: null to train "
            f"without the cache (the ViT then runs every step), or {key}.min_scale: 1.0 (the deterministic "
            "resize of the current official code)"
        )
    return (
        f"{key}: processor {type(proc).__name__} does not declare a cache_identity() (its output may be "
        "random): set run.feature_cache: null, or give the processor a cache_identity()"
    )


class ImageFeatures:
    """The frozen vision stack's output for batches, through a ``FeatureCache`` under ``root``
    (None: computed every time, nothing stored)."""

    def __init__(self, root: str | None, dtype: str = "fp16") -> None:
        self.root, self.dtype = root, dtype
        self.caches: dict[str, FeatureCache] = {}  # by stack-key digest

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def check(self, datasets: Mapping[str, Dataset], slot: str = "train") -> None:
        """Raise ``ConfigError`` when a dataset's images cannot be cached (random crops)."""
        if not self.enabled:
            return
        problems = [p for n, d in datasets.items() if (p := processor_problem(n, d, slot))]
        if problems:
            raise ConfigError(["run.feature_cache is on (" + str(self.root) + "), but " + p for p in problems])

    def attach(self, model: Any, dataset: Dataset, cut: str | None) -> FeatureCache | None:
        """Give ``dataset`` (``use_features``) the cache of ``model``'s features at ``cut``; None (nothing
        given) when the cache is off, nothing is frozen or the dataset reads no features."""
        if not self.enabled or cut is None or not isinstance(dataset, FeatureReading):
            return None
        key = stack_key(model, cut, dataset.vis_processor.cache_identity())
        cache = FeatureCache(self.root, key, self.dtype)
        cache = self.caches.setdefault(str(cache.folder), cache)
        dataset.use_features(cache)
        return cache

    @staticmethod
    def detach(dataset: Dataset) -> None:
        """``dataset`` decodes every image again (no cache), if it reads features at all."""
        if isinstance(dataset, FeatureReading):
            dataset.use_features(None)

    def describe(self, model: Any) -> str:
        """One log line: where the cache is, what it holds, the disk use per image."""
        if not self.enabled:
            return "feature cache off (run.feature_cache: null): the frozen vision stack runs on every image each time"
        parts = []
        for cache in self.caches.values():
            n, size = cache.size()
            shape = _feature_shape(model, cache.key["cut"])
            per = shape[0] * shape[1] * cache.dtype.itemsize / 1024
            parts.append(
                f"{cache.folder} ({cache.key['cut']} output {list(shape)} in {self.dtype}, about "
                f"{per:.0f} KiB per image; {n:,} images cached, {size / 2**20:,.1f} MiB)"
            )
        return "feature cache: " + ("; ".join(parts) or f"{self.root} (not used: nothing to cache)")

    def complete(self, model: Any, batch: dict[str, Any], cut: str) -> tuple[torch.Tensor, int, int]:
        """(features [B,...] at ``cut`` on the model's device, hits, encoded) for a collated batch."""
        feats = batch.get("features")
        if feats is None:  # no cache on these datasets: run the frozen stack on every image
            images = batch["image"]
            return model.frozen_features(images, cut), 0, len(images)
        if isinstance(feats, torch.Tensor):
            return feats.to(model.device), len(feats), 0
        feats, hits = list(feats), len(feats)
        missing: dict[tuple[str, str], list[int]] = {}  # (cache, image sha256) -> positions: copies once
        for i, f in enumerate(feats):
            if f is None:
                where = (batch["feature_cache"][i], batch["image_sha256"][i])
                found = None if where in missing else self.caches[where[0]].read(where[1])[0]  # written since
                if found is None:  # the worker looked (an image seen twice in a pass)
                    missing.setdefault(where, []).append(i)
                feats[i] = found
        if missing:
            first = [positions[0] for positions in missing.values()]
            computed = model.frozen_features(torch.stack([batch["image"][i] for i in first]), cut)
            for j, ((folder, sha), positions) in enumerate(missing.items()):
                stored = self.caches[folder].store(sha, computed[j])
                for i in positions:
                    feats[i] = stored
        hits -= len(missing)
        return torch.stack(feats).to(model.device), hits, len(missing)


def _feature_shape(model: Any, cut: str) -> tuple[int, int]:
    if cut == "qformer":
        return int(model.query_tokens.shape[1]), int(model.qformer.config.hidden_size)
    cfg = model.visual_encoder.config
    return (cfg.image_size // cfg.patch_size) ** 2 + 1, int(cfg.hidden_size)
