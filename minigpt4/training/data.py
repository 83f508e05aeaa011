"""An endless, resumable stream of training batches.

Data order is a pure function of ``(run.seed, rank, world_size, data pass, position)``: pass ``p``
is the permutation of ``DistributedSampler(seed=run.seed)`` with ``set_epoch(p)``; this rank takes
every ``world_size``-th index, cut into batches (``drop_last``). When a pass is used up the next one
starts, reshuffled. ``state_dict()`` is ``{"data_pass", "batch_in_pass"}``; after loading it the next
batch is exactly the one an uninterrupted run would have drawn (skipped indices are never loaded).

Datasets with ``set_epoch`` (``datasets.protocol.EpochAware``) get the data-pass number at the start of each pass (before workers
start). DataLoader workers get a seed derived from ``(run.seed, rank, pass)``, not from the global
RNG. A dataset that draws random numbers should derive them from (its seed, pass, index), as the
caption datasets do, so its output does not depend on which worker loads it.

Several datasets are one pool (each sample once per pass), or, with ``sample_ratio`` on every
entry, mixed by weight: each position of a pass draws its dataset with probability ratio_i / sum
(seeded by the pass), and each dataset walks through its own reshuffled order. Every sample carries
its entry's name under ``dataset`` so the runner can count what it trained on.

With ``run.group_by_length`` the pass's order is regrouped (``group_by_length``) so that the
samples of one global step (every rank's batch) have similar lengths, which cuts the LLM's padding;
it is still a pure function of (seed, pass, the datasets' ``lengths(pass)``), so resume stays exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, DistributedSampler

from minigpt4.datasets.protocol import EpochAware, Measurable
from minigpt4.errors import ConfigError

GROUP_BATCHES = 50  # length grouping sorts windows of this many global batches


def group_by_length(order: Sequence[int], lengths: Sequence[int], global_batch: int, generator: torch.Generator) -> list[int]:
    """``order`` regrouped so each run of ``global_batch`` indices holds similar lengths: windows of
    ``GROUP_BATCHES`` global batches are sorted by length (longest first, stable), cut into global
    batches, and the full batches are shuffled (a short remainder stays last)."""
    window = global_batch * GROUP_BATCHES
    batches = []
    for s in range(0, len(order), window):
        chunk = sorted(order[s : s + window], key=lambda i: -lengths[i])
        batches += [chunk[j : j + global_batch] for j in range(0, len(chunk), global_batch)]
    full = [b for b in batches if len(b) == global_batch]
    rest = [i for b in batches if len(b) < global_batch for i in b]
    return [i for k in torch.randperm(len(full), generator=generator).tolist() for i in full[k]] + rest


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` (shuffle, no drop_last) that starts ``skip`` samples into this rank's
    share. With ``lengths`` (pass -> length per index) and ``batch_size``, each global step's batches
    hold samples of similar length on every rank (``group_by_length``)."""

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int,
        rank: int,
        seed: int,
        lengths: Callable[[int], Sequence[int]] | None = None,
        batch_size: int = 1,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.skip = 0
        self.lengths, self.batch_size = lengths, batch_size

    def global_order(self) -> list[int]:
        """The pass's ``total_size`` indices over all ranks (rank r takes positions r, r + world, ...)."""
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.dataset), generator=g).tolist()
        return (order * (-(-self.total_size // len(order))))[: self.total_size]  # DistributedSampler's padding

    def __iter__(self) -> Iterator[int]:
        order = self.global_order()
        if self.lengths is not None:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 7 + 3)
            order = group_by_length(order, self.lengths(self.epoch), self.batch_size * self.num_replicas, g)
        return iter(order[self.rank :: self.num_replicas][self.skip :])

    def __len__(self) -> int:
        return self.num_samples - self.skip


class MixingSampler(ResumableDistributedSampler):
    """Like ``ResumableDistributedSampler`` over a ``ConcatDataset``, but each position of a pass comes
    from dataset i with probability ``ratios[i] / sum(ratios)``; a pass keeps the pool's length."""

    def __init__(
        self,
        dataset: ConcatDataset,
        ratios: Sequence[float],
        num_replicas: int,
        rank: int,
        seed: int,
        lengths: Callable[[int], Sequence[int]] | None = None,
        batch_size: int = 1,
    ) -> None:
        super().__init__(dataset, num_replicas, rank, seed, lengths, batch_size)
        self.sizes = [len(d) for d in dataset.datasets]
        self.offsets = [0, *dataset.cumulative_sizes[:-1]]
        self.weights = torch.tensor([float(r) for r in ratios], dtype=torch.float64)

    def global_order(self) -> list[int]:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 7 + 1)
        choice = torch.multinomial(self.weights, self.total_size, replacement=True, generator=g)
        order = torch.empty(self.total_size, dtype=torch.long)
        for i, (size, offset) in enumerate(zip(self.sizes, self.offsets)):
            where = (choice == i).nonzero().flatten()
            gi = torch.Generator().manual_seed(((self.seed * 1_000_003 + self.epoch) * 1_000_003 + i) * 7 + 2)
            rounds = -(-len(where) // size) if len(where) else 0
            stream = torch.cat([torch.randperm(size, generator=gi) for _ in range(rounds)] or [torch.empty(0, dtype=torch.long)])
            order[where] = stream[: len(where)] + offset
        return order.tolist()


def dataset_lengths(dataset: Dataset) -> Callable[[int], list[int]] | None:
    """pass -> approximate length of every sample (``lengths(pass)`` of each part), or None when a
    part is not ``Measurable``."""
    parts = getattr(dataset, "datasets", [dataset])
    inner = [getattr(p, "dataset", p) for p in parts]  # NamedDataset wraps
    if not all(isinstance(d, Measurable) for d in inner):
        return None
    return lambda data_pass: [n for d in inner for n in d.lengths(data_pass)]


class NamedDataset(Dataset):
    """A dataset whose samples carry ``dataset: name`` (its config entry), for per-dataset counts."""

    def __init__(self, name: str, dataset: Dataset) -> None:
        self.name, self.dataset = name, dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: Any) -> Any:
        item = self.dataset[index]
        return {**item, "dataset": self.name} if isinstance(item, dict) else item

    def set_epoch(self, epoch: int) -> None:
        if isinstance(self.dataset, EpochAware):
            self.dataset.set_epoch(epoch)


def concat_datasets(datasets: Mapping[str, Dataset]) -> tuple[Dataset, Callable]:
    """One dataset over the named ones (``ConcatDataset`` when several; samples tagged with their
    name) and the collater of the first."""
    if not datasets:
        raise ValueError("no training datasets: add at least one entry under 'datasets' in the config")
    first = next(iter(datasets.values()))
    collater = getattr(first, "collater", None)
    if collater is None:
        raise TypeError(f"{type(first).__name__} has no collater(samples) method")
    named = [NamedDataset(name, d) for name, d in datasets.items()]
    return (named[0] if len(named) == 1 else ConcatDataset(named)), collater


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
        sample_ratios: Sequence[float] | None = None,
        group_by_length: bool = False,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError(f"run.batch_size_train: expected a positive integer, got {batch_size}")
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        lengths = dataset_lengths(dataset) if group_by_length else None
        self.grouped = lengths is not None
        if sample_ratios is not None and isinstance(dataset, ConcatDataset):
            self.sampler: ResumableDistributedSampler = MixingSampler(dataset, sample_ratios, world_size, rank, seed, lengths, batch_size)
        else:
            self.sampler = ResumableDistributedSampler(dataset, world_size, rank, seed, lengths, batch_size)
        self.batches_per_pass = self.sampler.num_samples // batch_size
        if self.batches_per_pass == 0:
            raise ConfigError(
                f"run.batch_size_train: the training data has {len(dataset)} samples, {self.sampler.num_samples} per rank over "
                f"{world_size} rank(s): fewer than run.batch_size_train={batch_size}"
            )
        self.data_pass = 0
        self.batch_in_pass = 0
        self._it: Iterator | None = None

    def state_dict(self) -> dict[str, int]:
        return {"data_pass": self.data_pass, "batch_in_pass": self.batch_in_pass}

    def begin_epoch(self, epoch: int) -> None:
        """Epochs do not matter here: the order runs on over data passes."""

    def epoch_problems(self) -> dict[str, dict[str, int]]:
        """Skipped images are counted by the runner (``skipped``) and logged by the datasets."""
        return {}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.data_pass = int(state["data_pass"])
        self.batch_in_pass = int(state["batch_in_pass"])
        self._it = None

    def _start_pass(self) -> None:
        self.sampler.set_epoch(self.data_pass)
        for ds in getattr(self.dataset, "datasets", [self.dataset]):  # ConcatDataset parts, or itself
            if isinstance(ds, EpochAware):
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
