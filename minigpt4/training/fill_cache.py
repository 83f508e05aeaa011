"""Fill the feature cache ahead of training and evaluation, over all ranks; rerun it to resume
(the command: ``minigpt4.commands.cache``).

    python -m minigpt4.cli cache --cfg-path CONFIG.yaml [--options k=v ...]
    python -m minigpt4.cli torchrun --nproc-per-node N -m minigpt4.cli cache --cfg-path CONFIG.yaml

Every image of the config's training ``datasets`` and ``evaluation_datasets`` entries (each image
once) goes through the frozen vision stack unless its features are cached already; rank r takes
batches r, r + world, ... Each image's features are written atomically as soon as its batch is
done, so an interrupted fill loses at most one batch per rank and the next run skips what is there.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from minigpt4.datasets.caption_datasets import CaptionEvalDataset
from minigpt4.datasets.protocol import FeatureReading, ImageRecords
from minigpt4.errors import ConfigError
from minigpt4.registry import MODELS, TASKS
from minigpt4.tasks.captioning.generation import batch_size_eval, shard_batches
from minigpt4.utils import dist
from minigpt4.utils.progress import progress

log = logging.getLogger("minigpt4")


def unique_images(name: str, dataset: Dataset) -> CaptionEvalDataset:
    """One item per image of a caption dataset, through its own image processor and cache."""
    if not isinstance(dataset, ImageRecords) or not isinstance(dataset, FeatureReading):
        raise ConfigError(f"{name}: {type(dataset).__name__} has no image records; the cache command fills caption datasets")
    images = CaptionEvalDataset(dataset.records, dataset.image_root, dataset.vis_processor, strict=False, source=dataset.source or name)
    images.use_features(dataset.features)
    return images


def fill(model: Any, task: Any, name: str, images: CaptionEvalDataset, batch_size: int, num_workers: int) -> list[int]:
    """Encode this rank's share of ``images`` that is not cached; returns [encoded, cached, unreadable]."""
    rank, world = dist.get_rank(), dist.get_world_size()
    batches = shard_batches(len(images), batch_size, rank, world)
    loader = DataLoader(images, batch_sampler=batches, collate_fn=images.collater, num_workers=num_workers)
    counts = [0, 0, 0]
    with progress(total=len(images), desc=f"feature cache: {name}", unit="img", disable=rank != 0, dynamic_ncols=True) as bar:
        for indices, batch in zip(batches, loader):
            counts[2] += int(batch.get("skipped", 0))
            if batch.get("image") is not None:
                _, hits, encoded = task.features.complete(model, batch, model.feature_cut)
                counts[0] += encoded
                counts[1] += hits
            bar.update(len(indices) * world)
            bar.set_postfix(encoded=counts[0], cached=counts[1])
    return counts


def require_cache(cfg: DictConfig) -> None:
    """A ``ConfigError`` when ``run.feature_cache`` is null (there is nothing to fill)."""
    if not cfg.run.get("feature_cache"):
        raise ConfigError("run.feature_cache is null: there is no cache to fill (set it to a folder)")


def fill_cache(cfg: DictConfig, info: dist.DistInfo, batch_size: int | None = None, source: str = "the config") -> dict[str, list[int]]:
    """Fill ``run.feature_cache`` for every image of ``cfg``'s ``datasets`` and ``evaluation_datasets``;
    returns {entry: [encoded, already cached, unreadable]} summed over ranks (``batch_size``: default
    ``run.batch_size_eval``; ``source`` names the config in errors)."""
    require_cache(cfg)
    task = TASKS.build(cfg.run.task, cfg.run)
    entries = dict(task.build_datasets(cfg.datasets)) if cfg.get("datasets") else {}
    if cfg.get("evaluation_datasets"):
        dataset, name, _ = task.build_eval_split(cfg)
        entries[name] = dataset
    if not entries:
        raise ConfigError(f"{source}: no datasets or evaluation_datasets entries: nothing to fill")
    model = MODELS.build(cfg.model.arch, cfg.model, device=info.device)
    if model.feature_cut is None:
        raise ConfigError("model.freeze_vit is false: the ViT trains, so there are no frozen features to cache")
    batch = batch_size or batch_size_eval(cfg.run, info.device)
    out: dict[str, list[int]] = {}
    for name, dataset in entries.items():
        task.features.attach(model, dataset, model.feature_cut)
        counts = fill(model, task, name, unique_images(name, dataset), batch, cfg.run.num_workers)
        out[name] = [int(c) for c in dist.all_reduce_sum(torch.tensor(counts, dtype=torch.float64, device=info.device)).tolist()]
        if info.is_main:
            log.info("%s: %d images encoded now, %d were cached already, %d unreadable (skipped)", name, *out[name])
    if info.is_main:
        log.info(task.features.describe(model))
    return out
