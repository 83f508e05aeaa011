"""``StreamLoader``: endless training batches from streamed datasets (``ShardStream``), one DataLoader
per dataset entry, mixed per batch, resumable to the batch.

As the official stage 1, every batch comes from one entry: batch ``t`` of an epoch is drawn from entry i
with probability ``sample_ratio_i / sum`` by a generator of ``(run seed, rank, epoch, t)`` alone. Each
entry's DataLoader builds whole batches in its workers, which take turns (batch n of an entry comes
from worker n mod workers). The state (``state_dict``) is the epoch, the batches drawn and, per entry,
each worker's stream position after its last batch; a loader restarted from it in the same epoch gives
the batches an uninterrupted run would have given next (workers pass over what was read, undecoded).
Each epoch (``begin_epoch``) starts new streams seeded by the epoch.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any

from torch.utils.data import DataLoader

from minigpt4.datasets.stream import ShardStream
from minigpt4.errors import DataError

log = logging.getLogger("minigpt4")
NAMED_ERRORS = 10  # data problems named in the log per entry and epoch (all are counted)


class StreamLoader:
    """Batches of the ``streams`` (entry name -> ShardStream) for one rank; see the module docstring."""

    grouped = False  # run.group_by_length: streamed samples are not known in advance

    def __init__(
        self,
        streams: Mapping[str, ShardStream],
        ratios: Sequence[float] | None,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.streams = dict(streams)
        for name, stream in self.streams.items():
            stream.name = name  # samples carry their entry's name
        self.names = list(self.streams)
        weights = list(ratios) if ratios is not None else [1.0] * len(self.names)
        total = float(sum(weights))
        self.cumulative = [sum(weights[: i + 1]) / total for i in range(len(weights))]
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.epoch = 0
        self._resume_epoch: int | None = None
        self._reset()

    def _reset(self) -> None:
        self.drawn = 0
        self.consumed = {n: 0 for n in self.names}
        self.positions: dict[str, dict[int, int]] = {n: {} for n in self.names}
        self.problems: dict[str, dict[str, int]] = {n: {} for n in self.names}
        self._its: dict[str, Any] = {}

    # ---- the run's side ---------------------------------------------------------------------
    def begin_epoch(self, epoch: int) -> None:
        """Start ``epoch``'s streams, or, for the epoch a loaded state stopped in, continue it."""
        if self._resume_epoch == epoch:
            self._resume_epoch = None
            return
        self._resume_epoch = None
        self.close()
        self.epoch = epoch
        self._reset()

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "stream",
            "epoch": self.epoch,
            "drawn": self.drawn,
            "consumed": dict(self.consumed),
            "positions": {n: {str(w): p for w, p in ps.items()} for n, ps in self.positions.items()},
            "workers": self.workers,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue where ``state`` stopped (the next ``begin_epoch`` of its epoch keeps it); a state
        of other entries or worker counts starts the epoch's streams afresh, with a warning."""
        self.close()
        self._reset()
        self.epoch = int(state.get("epoch", 0))
        same = state.get("kind") == "stream" and set(state.get("consumed", {})) == set(self.names) and state.get("workers") == self.workers
        if not same:
            log.warning(
                "The checkpoint's data streams (entries %s, %s worker(s)) differ from this run's (%s, %d): epoch %d's "
                "streams start afresh instead of continuing",
                sorted(state.get("consumed", {})),
                state.get("workers"),
                self.names,
                self.workers,
                self.epoch,
            )
        else:
            self.drawn = int(state["drawn"])
            self.consumed = {n: int(c) for n, c in state["consumed"].items()}
            self.positions = {n: {int(w): int(p) for w, p in ps.items()} for n, ps in state["positions"].items()}
        self._resume_epoch = self.epoch

    @property
    def workers(self) -> int:
        return max(1, self.num_workers)

    def describe(self) -> str:
        """One line on the entries: shards, mixing weights."""
        parts = []
        for name, c in zip(self.names, [0.0, *self.cumulative]):
            share = self.cumulative[self.names.index(name)] - c
            shards = getattr(self.streams[name], "shards", None)
            what = shards.describe() if shards is not None else f"{len(self.streams[name].urls):,} shard(s)"
            parts.append(f"{name}: {what}, {100 * share:.1f}% of the batches")
        return "; ".join(parts)

    # ---- batches ----------------------------------------------------------------------------
    def choose(self, t: int) -> str:
        """The entry batch ``t`` of the epoch comes from."""
        if len(self.names) == 1:
            return self.names[0]
        u = random.Random(f"minigpt4-mix/{self.seed}/{self.rank}/{self.epoch}/{t}").random()
        return next((n for n, c in zip(self.names, self.cumulative) if u < c), self.names[-1])

    def _start(self, name: str) -> Any:
        stream = self.streams[name]
        stream.configure(
            self.seed, self.rank, self.world_size, self.epoch, worker_offset=self.consumed[name] % self.workers, skips=self.positions[name]
        )
        loader = DataLoader(
            stream,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=stream.collater,
            pin_memory=self.pin_memory,
            timeout=stream.stall_seconds if self.num_workers else 0,
        )
        return iter(loader)

    def __iter__(self) -> StreamLoader:
        return self

    def __next__(self) -> dict[str, Any]:
        name = self.choose(self.drawn)
        if name not in self._its:
            self._its[name] = self._start(name)
        try:
            batch = next(self._its[name])
        except RuntimeError as e:
            if "timed out" not in str(e):
                raise
            raise DataError(
                f"datasets.{name}: no batch for {self.streams[name].stall_seconds:g} s (stall_seconds) from its "
                f"{len(self.streams[name].urls)} shard(s) (first: {self.streams[name].urls[0]})"
            ) from None
        if "fatal" in batch:
            raise DataError(batch["fatal"])
        self.drawn += 1
        self.consumed[name] += 1
        self.positions[name][int(batch["stream_worker"])] = int(batch["stream_pos"])
        self._note(name, batch["data_errors"])
        return batch

    def _note(self, name: str, errors: list[tuple[str, str]]) -> None:
        counts = self.problems[name]
        for url, message in errors:
            if sum(counts.values()) < NAMED_ERRORS:
                log.warning("datasets.%s: skipped: %s: %s", name, url, message)
            counts[url] = counts.get(url, 0) + 1

    def epoch_problems(self) -> dict[str, dict[str, int]]:
        """This rank's skipped samples and unreadable shards of the epoch, per entry and shard."""
        return {n: dict(c) for n, c in self.problems.items() if c}

    def close(self) -> None:
        """Stop the DataLoader workers."""
        self._its = {}
