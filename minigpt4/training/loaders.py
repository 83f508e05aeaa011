"""The training loader for a run's datasets: ``InfiniteLoader`` over map-style datasets (a fixed list of
samples), ``StreamLoader`` over streamed ones (``ShardStream``); both are resumable to the batch and
told each epoch's start (``begin_epoch``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch.utils.data import Dataset, IterableDataset

from minigpt4.datasets.stream import ShardStream
from minigpt4.errors import ConfigError
from minigpt4.training.data import InfiniteLoader, concat_datasets
from minigpt4.training.stream_loader import StreamLoader


def build_train_loader(
    datasets: Mapping[str, Dataset],
    ratios: Sequence[float] | None,
    run: Any,
    rank: int,
    world_size: int,
    pin_memory: bool,
) -> InfiniteLoader | StreamLoader:
    """The loader of ``datasets`` (entry name -> train split) for one rank, by the ``run`` settings."""
    streamed = {n for n, d in datasets.items() if isinstance(d, IterableDataset)}
    if streamed:
        other = sorted(set(datasets) - streamed)
        if other or not all(isinstance(d, ShardStream) for d in datasets.values()):
            raise ConfigError(
                f"datasets: the streamed entries {sorted(streamed)} cannot be mixed with the map-style entries {other} in one "
                "run; make shards of the others (minigpt4-shards) or train them in separate stages"
            )
        return StreamLoader(datasets, ratios, run.batch_size_train, run.seed, rank, world_size, run.num_workers, pin_memory)
    data, collate = concat_datasets(datasets)
    return InfiniteLoader(
        data,
        collate,
        run.batch_size_train,
        run.seed,
        rank,
        world_size,
        run.num_workers,
        pin_memory=pin_memory,
        sample_ratios=ratios,
        group_by_length=run.group_by_length,
    )
