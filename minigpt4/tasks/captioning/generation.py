"""Caption generation over an evaluation split, sharded over ranks by whole batches: the split is
encoded once (``encode_split``: the frozen vision stack's output, or the feature cache's), then
captioned from those features by each checkpoint (``generate_captions``).

The split is cut into fixed batches of ``batch_size`` consecutive images; rank r generates batches
r, r + world, r + 2*world, ... Every image is therefore generated in the same batch, with the same
instruction, whatever the number of ranks, and the gathered captions do not depend on it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from minigpt4.errors import EvalError
from minigpt4.utils import dist
from minigpt4.utils.progress import progress


def shard_batches(num_items: int, batch_size: int, rank: int, world_size: int) -> list[list[int]]:
    """Index lists of the batches rank ``rank`` generates (batch k goes to rank k % world_size)."""
    if batch_size < 1:
        raise ValueError(f"run.batch_size_eval must be >= 1, got {batch_size}")
    batches = [list(range(s, min(s + batch_size, num_items))) for s in range(0, num_items, batch_size)]
    return batches[rank::world_size]


def _image_error(e: Exception) -> str:
    """The 'cannot load image ...' part of a dataset error (also when re-raised by a DataLoader worker)."""
    m = re.search(r"cannot load image .*?(?= \[strict:|\Z)", str(e), re.S)
    return m.group(0).strip() if m else str(e)


@dataclass
class EncodedBatch:
    """One batch of the split as the frozen vision stack's output, with what scoring needs."""

    indices: list[int]
    features: torch.Tensor  # on the CPU
    image_id: list[str]
    image: list[str]
    references: list[list[str]]


@dataclass
class EncodedSplit:
    """This rank's batches of a split, encoded once for any number of checkpoints; ``encoded``/``hits``:
    images run through the frozen stack / read from the feature cache (this rank)."""

    batches: list[EncodedBatch]
    size: int
    cut: str  # the features' cut point (``MiniGPT4.frozen_features``)
    encoded: int = 0
    hits: int = 0
    seconds: float = 0.0


@torch.no_grad()
def encode_split(
    model: Any,
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    features: Callable[[dict[str, Any]], tuple[torch.Tensor, int, int]],
    cut: str,
    desc: str = "encoding",
) -> EncodedSplit:
    """This rank's batches (``shard_batches``) of ``dataset`` as ``features(batch)`` = (frozen-stack
    output at ``cut``, hits, encoded). ``dataset`` items are ``{"image", "image_id", "captions", "image_path"}``
    (or cached ``features``); unreadable images are an error, since scoring a silently smaller split
    misleads."""
    t0 = time.perf_counter()
    rank, world = dist.get_rank(), dist.get_world_size()
    batches = shard_batches(len(dataset), batch_size, rank, world)
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=dataset.collater, num_workers=num_workers)
    out = EncodedSplit([], len(dataset), cut)
    bar = progress(total=len(batches), desc=desc, unit="batch", disable=rank != 0, dynamic_ncols=True)
    try:
        for indices, batch in zip(batches, loader):
            if batch.get("skipped"):
                raise EvalError(
                    f"{batch['skipped']} image(s) of batch {indices[0]}..{indices[-1]} could not "
                    "be read (see the warnings above); evaluation scores every image"
                )
            feats, hits, encoded = features(batch)
            out.hits += hits
            out.encoded += encoded
            out.batches.append(
                EncodedBatch(indices, feats.cpu(), list(batch["image_id"]), list(batch["image_path"]), [list(c) for c in batch["captions"]])
            )
            bar.update(1)
    except EvalError:
        raise
    except Exception as e:
        if "cannot load image" in str(e):
            raise EvalError(
                f"{_image_error(e)}. Evaluation scores every image of the split and does not skip unreadable "
                "ones: restore the file or remove it from the annotation file"
            ) from e
        raise
    finally:
        bar.close()
    out.seconds = time.perf_counter() - t0
    return out


@torch.no_grad()
def generate_captions(
    model: Any,
    encoded: EncodedSplit,
    instruction: str,
    max_new_tokens: int,
    num_beams: int = 1,
    desc: str = "captioning",
) -> list[dict[str, Any]]:
    """Caption this rank's encoded batches and gather them: on rank 0 the list of
    ``{"index", "image_id", "image", "caption", "references"}`` in dataset order; ``[]`` elsewhere."""
    rank = dist.get_rank()
    local: list[dict[str, Any]] = []
    bar = progress(total=len(encoded.batches), desc=desc, unit="batch", disable=rank != 0, dynamic_ncols=True)
    try:
        for b in encoded.batches:
            captions = model.generate(
                None,
                [instruction] * len(b.indices),
                max_new_tokens=max_new_tokens,
                num_beams=num_beams,
                features=b.features.to(model.device),
                cut=encoded.cut,
            )
            for i, idx in enumerate(b.indices):
                local.append(
                    {"index": idx, "image_id": b.image_id[i], "image": b.image[i], "caption": captions[i], "references": b.references[i]}
                )
            bar.update(1)
    finally:
        bar.close()
    gathered = dist.all_gather_object(local)
    if rank != 0:
        return []
    results = sorted((r for part in gathered for r in part), key=lambda r: r["index"])
    if [r["index"] for r in results] != list(range(encoded.size)):
        raise RuntimeError(f"gathered {len(results)} captions for {encoded.size} images: sharding lost or duplicated items")
    return results


def select(dataset: Dataset, limit: int | None) -> Dataset:
    """The first ``limit`` items of ``dataset`` (all when None), keeping its ``collater``."""
    if limit is None or limit >= len(dataset):
        return dataset
    subset = torch.utils.data.Subset(dataset, range(limit))
    subset.collater = dataset.collater  # type: ignore[attr-defined]
    return subset


def batch_size_eval(run_cfg: Any, device: torch.device) -> int:
    """``run.batch_size_eval``, or when null 64 images per call on CUDA and 8 on CPU."""
    size = run_cfg.get("batch_size_eval")
    return int(size) if size is not None else (64 if device.type == "cuda" else 8)
