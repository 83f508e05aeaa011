"""An endless, resumable stream of training batches.

Data order is a pure function of ``(run.seed, rank, world_size, data pass, position)``: pass ``p``
is the permutation of ``DistributedSampler(seed=run.seed)`` with ``set_epoch(p)``; this rank takes
every ``world_size``-th index, cut into batches (``drop_last``). When a pass is used up the next one
starts, reshuffled. ``state_dict()`` is ``{"data_pass", "batch_in_pass"}``; after loading it the next
batch is exactly the one an uninterrupted run would have drawn (skipped indices are never loaded).

Datasets with ``set_epoch`` get the data-pass number at the start of each pass (before workers
start). DataLoader workers get a seed derived from ``(run.seed, rank, pass)``, not from the global
RNG. A dataset that draws random numbers should derive them from (its seed, pass, index), as the
caption datasets do, so its output does not depend on which worker loads it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, DistributedSampler


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` (shuffle, no drop_last) that starts ``skip`` samples into this rank's share."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.skip :])

    def __len__(self) -> int:
        return self.num_samples - self.skip


def concat_datasets(datasets: Sequence[Dataset]) -> tuple[Dataset, Callable]:
    """One dataset (``ConcatDataset`` when several) and the collater of the first."""
    if not datasets:
        raise ValueError("no training datasets: add at least one entry under 'datasets' in the config")
    collater = getattr(datasets[0], "collater", None)
    if collater is None:
        raise TypeError(f"{type(datasets[0]).__name__} has no collater(samples) method")
    data = datasets[0] if len(datasets) == 1 else ConcatDataset(list(datasets))
    return data, collater


class InfiniteLoader:
    """Endless batches for one rank; see the module docstring for the order and the resume state."""

    def __init__(
        self,
        dataset: Dataset,
        collate_fn: Callable,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"run.batch_size_train: expected a positive integer, got {batch_size}")
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.sampler = ResumableDistributedSampler(dataset, world_size, rank, seed)
        self.batches_per_pass = self.sampler.num_samples // batch_size
        if self.batches_per_pass == 0:
            raise ValueError(
                f"the training data has {len(dataset)} samples, {self.sampler.num_samples} per rank over "
                f"{world_size} rank(s): fewer than run.batch_size_train={batch_size}"
            )
        self.data_pass = 0
        self.batch_in_pass = 0
        self._it: Iterator | None = None

    def state_dict(self) -> dict[str, int]:
        return {"data_pass": self.data_pass, "batch_in_pass": self.batch_in_pass}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.data_pass = int(state["data_pass"])
        self.batch_in_pass = int(state["batch_in_pass"])
        self._it = None

    def _start_pass(self) -> None:
        self.sampler.set_epoch(self.data_pass)
        for ds in getattr(self.dataset, "datasets", [self.dataset]):  # ConcatDataset parts, or itself
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(self.data_pass)
        self.sampler.skip = self.batch_in_pass * self.batch_size
        g = torch.Generator()
        g.manual_seed((self.seed * 1_000_003 + self.rank) * 1_000_003 + self.data_pass)
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=self.sampler,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            pin_memory=self.pin_memory,
            drop_last=True,
            generator=g,
        )
        self._it = iter(loader)

    def __iter__(self) -> InfiniteLoader:
        return self

    def __next__(self) -> Any:
        if self.batch_in_pass >= self.batches_per_pass:
            self.data_pass += 1
            self.batch_in_pass = 0
            self._it = None
        if self._it is None:
            self._start_pass()
        batch = next(self._it)
        self.batch_in_pass += 1
        return batch

    def close(self) -> None:
        """Stop DataLoader workers."""
        self._it = None


def batch_size_of(batch: Any) -> int:
    """Samples in a collated batch (0 when the collater dropped every sample)."""
    image = batch.get("image") if isinstance(batch, dict) else None
    return 0 if image is None else len(image)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move the tensors of a (nested) batch to ``device``; other values are kept."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
