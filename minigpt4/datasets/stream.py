"""``ShardStream``: caption samples streamed from webdataset tar shards, seeded and resumable.

Each (rank, worker) reads its own stream, a pure function of ``(run seed, entry, epoch, rank,
worker)``: in each pass over the shard list, every stream takes its share of one seeded permutation
(``shard_sampling: split``: with S streams, stream s reads shards s, s+S, ...; no two streams read
the same shard in a pass while there are at least S shards) or draws shards with replacement from
its own seed (``resampled``, as the official code, but seeded). Records go through a seeded shuffle
buffer; the i-th record out of it is the stream's position i. A stream started with ``skips`` passes
over its first positions without decoding them, so a resumed run continues with exactly the samples an
uninterrupted run would have read. Any random draw of the image processor is seeded by the position.

Bad data never stops or stalls the stream: a shard that cannot be opened or read (truncated, corrupt),
a record without image or caption and an undecodable image are skipped, counted per shard and
reported with the next sample (``data_errors``, ``skipped``). A stream that drops more than
``max_drop_share`` of its records, finds no record in a whole pass or yields nothing for
``stall_seconds`` ends with a ``fatal`` sample naming the shards; the loader raises it as an error.
"""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.tariterators import tarfile_samples

from minigpt4.utils.prompt import IMAGE_PLACEHOLDER

from .shards import is_remote

SHARD_SAMPLING = ("split", "resampled")
MIN_RECORDS_FOR_SHARE = 100  # the drop share is judged after this many records


def stream_rng(*parts: object) -> random.Random:
    """A generator determined by ``parts`` alone (same draws in any process)."""
    return random.Random("minigpt4-stream/" + "/".join(map(str, parts)))


def tar_complete(url: str) -> bool:
    """False for a local tar that does not end with the end-of-archive marker (two zero blocks): a copy or
    download cut short. Python's streaming tar reader stops there silently. Remote URLs: True (unknown)."""
    if is_remote(url):
        return True
    try:
        with open(url, "rb") as f:
            size = f.seek(0, io.SEEK_END)
            if size < 1024 or size % 512:
                return False
            f.seek(size - 1024)
            return f.read(1024) == bytes(1024)
    except OSError:
        return True  # unreadable: the reader reports it


class StreamError(Exception):
    """Ends a stream: the message names the entry and the shards."""


class ShardStream(IterableDataset):
    """Training samples ``{"image", "instruction_input": "<ImageHere>", "answer", "image_id", "dataset",
    "stream_pos", "stream_worker", "data_errors", "skipped"}`` of the entry ``name`` (see the module
    docstring). ``configure`` sets the run's part (seed, rank, epoch, resume positions) before each
    iteration; ``collater`` batches samples in the DataLoader's workers."""

    def __init__(
        self,
        name: str,
        urls: list[str],
        vis_processor: Callable,
        text_processor: Callable[[str], str],
        image_key: str = "jpg",
        caption_key: str = "json.caption",
        shuffle_buffer: int = 1000,
        shuffle_initial: int = 100,
        shard_sampling: str = "split",
        max_drop_share: float = 0.5,
        stall_seconds: float = 300.0,
        strict: bool = False,
    ) -> None:
        if shard_sampling not in SHARD_SAMPLING:
            raise ValueError(f"shard_sampling must be one of {SHARD_SAMPLING}, got {shard_sampling!r}")
        self.name, self.urls = name, list(urls)
        self.vis_processor, self.text_processor = vis_processor, text_processor
        self.image_key, self.caption_key = image_key, caption_key
        self.shuffle_buffer, self.shuffle_initial = max(1, shuffle_buffer), max(1, min(shuffle_initial, shuffle_buffer))
        self.shard_sampling = shard_sampling
        self.max_drop_share, self.stall_seconds = max_drop_share, stall_seconds
        self.strict = strict  # run.strict_data: the first bad sample ends the stream
        self.configure(0, 0, 1, 0)

    def configure(self, seed: int, rank: int, world_size: int, epoch: int, worker_offset: int = 0, skips: dict | None = None) -> None:
        """The run's part: DataLoader worker w plays stream worker ``(w + worker_offset) % workers``,
        which passes over its first ``skips[worker]`` positions (a resumed epoch)."""
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, epoch
        self.worker_offset = worker_offset
        self.skips = {int(k): int(v) for k, v in (skips or {}).items()}

    # ---- the stream -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        workers, physical = (info.num_workers, info.id) if info is not None else (1, 0)
        worker = (physical + self.worker_offset) % workers
        stream = self.rank * workers + worker
        run = _StreamRun(self, worker, stream, self.world_size * workers)
        yield from run.samples(self.skips.get(worker, 0))

    def shard_order(self, stream: int, streams: int, data_pass: int) -> list[str]:
        """The shards ``stream`` (of ``streams``) reads in pass ``data_pass`` of this epoch."""
        urls = self.urls
        if self.shard_sampling == "resampled":
            rng = stream_rng("resampled", self.seed, self.name, self.epoch, stream, data_pass)
            return [rng.choice(urls) for _ in range(max(1, len(urls) // streams))]
        order = list(urls)
        stream_rng("split", self.seed, self.name, self.epoch, data_pass).shuffle(order)
        return order[stream::streams] or [order[stream % len(order)]]

    def decode(self, record: dict[str, Any]) -> tuple[Image.Image, str]:
        """The record's RGB image and raw caption; raises ``ValueError`` naming what is wrong."""
        data = record.get(self.image_key)
        if data is None:
            raise ValueError(f"no .{self.image_key} (has {sorted(k for k in record if not k.startswith('__'))})")
        field, _, inner = self.caption_key.partition(".")
        raw = record.get(field)
        if raw is None:
            raise ValueError(f"no .{field} for the caption")
        caption = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        if inner:
            try:
                caption = json.loads(caption)[inner]
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f".{field} has no {inner!r} field ({type(e).__name__})") from None
            if isinstance(caption, list):  # LAVIS's list captions: the first
                caption = caption[0] if caption else ""
        if not isinstance(caption, str) or not caption.strip():
            raise ValueError(f"empty caption in .{field}")
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                image = im.convert("RGB")
        except Exception as e:  # PIL raises many types for undecodable bytes
            raise ValueError(f"undecodable .{self.image_key}: {type(e).__name__}: {e}") from None
        return image, caption

    def collater(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """One batch: images stacked, texts as lists, the stream's position after the batch, the
        problems met while reading it; a ``fatal`` sample makes a ``{"fatal": message}`` batch."""
        for s in samples:
            if "fatal" in s:
                return {"fatal": s["fatal"], "skipped": 0}
        batch: dict[str, Any] = {"image": torch.stack([s["image"] for s in samples])}
        for key in ("instruction_input", "answer", "image_id", "dataset"):
            batch[key] = [s[key] for s in samples]
        batch["stream_pos"] = samples[-1]["stream_pos"]
        batch["stream_worker"] = samples[-1]["stream_worker"]
        batch["data_errors"] = [e for s in samples for e in s["data_errors"]]
        batch["skipped"] = sum(s["skipped"] for s in samples)
        return batch


class _StreamRun:
    """One iteration of one (rank, worker) stream, with its counters."""

    def __init__(self, ds: ShardStream, worker: int, stream: int, streams: int) -> None:
        self.ds, self.worker, self.stream, self.streams = ds, worker, stream, streams
        self.key = (ds.seed, ds.name, ds.epoch, ds.rank, worker)
        self.errors: list[tuple[str, str]] = []  # since the last sample
        self.per_shard: dict[str, int] = {}
        self.records = self.dropped = 0
        self.checked: set[str] = set()  # shards checked for completeness (once each)

    def error(self, url: str, message: str) -> None:
        self.errors.append((url, message))
        self.per_shard[url] = self.per_shard.get(url, 0) + 1

    def _tar_error(self, exn: Exception) -> bool:
        url = next((a for a in reversed(exn.args) if isinstance(a, str) and a in self.ds.urls), self.current)
        self.error(url, f"unreadable shard: {type(exn).__name__}: {exn.args[0] if exn.args else exn}")
        return True  # go on with the next shard

    def records_of_pass(self, data_pass: int) -> Iterator[dict[str, Any]]:
        for url in self.ds.shard_order(self.stream, self.streams, data_pass):
            self.current = url
            if url not in self.checked and not tar_complete(url):
                self.error(url, "truncated tar (no end-of-archive marker): its complete samples are used")
            self.checked.add(url)
            yield from tarfile_samples([{"url": url}], handler=self._tar_error)

    def shuffled(self) -> Iterator[dict[str, Any]]:
        """Every pass's records through one seeded shuffle buffer (raw bytes: nothing decoded yet)."""
        rng = stream_rng("shuffle", *self.key)
        buf: list[dict[str, Any]] = []
        data_pass = 0
        while True:
            found = 0
            for record in self.records_of_pass(data_pass):
                found += 1
                buf.append(record)
                if len(buf) >= self.ds.shuffle_buffer or (len(buf) >= self.ds.shuffle_initial and found > self.ds.shuffle_initial):
                    yield buf.pop(rng.randrange(len(buf)))
            if not found:
                shards = self.ds.shard_order(self.stream, self.streams, data_pass)
                raise StreamError(f"no readable sample in {len(shards)} shard(s) of pass {data_pass}: {self.named(shards)}")
            data_pass += 1

    def named(self, urls: list[str] | None = None) -> str:
        """The first few shards (with their error counts)."""
        if urls is None:
            urls = sorted(self.per_shard, key=lambda u: -self.per_shard[u])
        shown = [f"{u} ({self.per_shard[u]} bad)" if u in self.per_shard else u for u in urls[:5]]
        return ", ".join(shown) + (f" and {len(urls) - 5} more" if len(urls) > 5 else "")

    def samples(self, skip: int) -> Iterator[dict[str, Any]]:
        ds = self.ds
        last_good = time.monotonic()
        try:
            for pos, record in enumerate(self.shuffled()):
                if pos < skip:
                    continue  # read before the resume point: not decoded
                self.records += 1
                url = record.get("__url__", "?")
                try:
                    image, caption = ds.decode(record)
                    generator = torch.Generator().manual_seed(stream_rng("sample", *self.key, pos).getrandbits(63))
                    sample = {
                        "image": ds.vis_processor(image, generator),
                        "instruction_input": IMAGE_PLACEHOLDER,
                        "answer": ds.text_processor(caption),
                    }
                except ValueError as e:
                    self.dropped += 1
                    self.error(url, f"sample {record.get('__key__')}: {e}")
                    if ds.strict:
                        raise StreamError(
                            f"{url}: sample {record.get('__key__')}: {e} [run.strict_data: set it to false to skip and count such samples]"
                        ) from None
                    self._check(last_good)
                    continue
                errors, self.errors = self.errors, []
                yield {
                    **sample,
                    "image_id": record.get("__key__", ""),
                    "dataset": ds.name,
                    "stream_pos": pos + 1,
                    "stream_worker": self.worker,
                    "data_errors": errors,
                    "skipped": sum(1 for _, m in errors if m.startswith("sample ")),
                }
                last_good = time.monotonic()
        except StreamError as e:
            yield {"fatal": f"datasets.{ds.name}: {e}"}

    def _check(self, last_good: float) -> None:
        ds = self.ds
        if self.records >= MIN_RECORDS_FOR_SHARE and self.dropped > ds.max_drop_share * self.records:
            raise StreamError(
                f"{self.dropped} of {self.records} samples were unusable (more than max_drop_share "
                f"{ds.max_drop_share:g}); the worst shards: {self.named()}"
            )
        if time.monotonic() - last_good > ds.stall_seconds:
            raise StreamError(f"no usable sample for {ds.stall_seconds:g} s (stall_seconds); the worst shards: {self.named()}")
