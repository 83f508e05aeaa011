"""Console logging (rank 0 only, tqdm-safe) and the per-epoch ``log.txt`` (trackers: ``minigpt4.utils.tracking``)."""

from __future__ import annotations

import datetime
import json
import logging
import resource
import sys
from pathlib import Path
from typing import Any

import torch
import tqdm

from minigpt4.errors import DataError
from minigpt4.utils.io import atomic_write_text
from minigpt4.utils.progress import quiet_library_bars

LOGGER_NAME = "minigpt4"


class _TqdmHandler(logging.StreamHandler):
    """Writes through ``tqdm.write`` so log lines do not break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.tqdm.write(self.format(record), file=sys.stdout)
            sys.stdout.flush()
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def setup_logger(rank: int = 0) -> logging.Logger:
    """The ``minigpt4`` logger: INFO to stdout on rank 0, warnings only on other ranks (and, off a
    terminal, no progress bars from the libraries: see ``minigpt4.utils.progress``)."""
    quiet_library_bars()
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    handler = _TqdmHandler()
    prefix = "" if rank == 0 else f"[rank {rank}] "
    handler.setFormatter(logging.Formatter(prefix + "%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    logger.propagate = False
    return logger


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def max_memory_mb(device: torch.device) -> int:
    """Peak memory in MiB: CUDA allocator peak on GPU, the process's peak RSS on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device) / 2**20)
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # Linux: KiB


_RATES = ("samples_per_s", "tokens_per_s", "padding", "mfu")  # the throughput rates, in their own formats


def format_train_line(
    epoch: int,
    step: int,
    iters: int,
    eta_s: float,
    lr: float,
    loss: float,
    step_s: float,
    data_s: float,
    mem_mb: int,
    rates: dict[str, float | None] | None = None,
) -> str:
    """``Train: epoch [0] [ 50/500] eta 0:04:30 lr 0.000028 loss 1.5284 time 0.5750 data 0.0000 max mem 18202``
    then, from ``rates``, ``samples/s 20.9 tokens/s 1,432 pad 1.6% mfu 31.0%`` and any other rate (a
    task's fraction, e.g. ``cache_hits``) as a whole percentage under its name: ``cache hits 100%``.
    None rates are left out."""
    width = len(str(iters))
    eta = str(datetime.timedelta(seconds=int(max(eta_s, 0))))
    line = (
        f"Train: epoch [{epoch}] [{step:>{width}}/{iters}] eta {eta} lr {lr:.6f} loss {loss:.4f} "
        f"time {step_s:.4f} data {data_s:.4f} max mem {mem_mb}"
    )
    r = rates or {}
    parts = [
        f"samples/s {r['samples_per_s']:.1f}" if r.get("samples_per_s") is not None else None,
        f"tokens/s {r['tokens_per_s']:,.0f}" if r.get("tokens_per_s") is not None else None,
        f"pad {100 * r['padding']:.1f}%" if r.get("padding") is not None else None,
        f"mfu {100 * r['mfu']:.1f}%" if r.get("mfu") is not None else None,
    ]
    parts += [f"{name.replace('_', ' ')} {100 * value:.0f}%" for name, value in r.items() if name not in _RATES and value is not None]
    return " ".join([line, *(p for p in parts if p)])


class EpochLog:
    """``log.txt``: one JSON object per finished epoch, rewritten atomically on every append."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def records(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        for i, line in enumerate(self.path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{self.path} line {i}: not a JSON object ({e})") from None
        return out

    def _write(self, records: list[dict[str, Any]]) -> None:
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in records))

    def append(self, record: dict[str, Any]) -> None:
        self._write(self.records() + [record])

    def truncate_after(self, epoch: int) -> None:
        """Drop records of epochs after ``epoch`` (written before a crash that lost their checkpoint)."""
        records = self.records()
        kept = [r for r in records if r.get("epoch", -1) <= epoch]
        if len(kept) != len(records):
            self._write(kept)
