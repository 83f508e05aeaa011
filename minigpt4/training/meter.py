"""What one epoch of training did, as the console, the trackers and ``log.txt`` show it.

``TrainMeter`` takes each micro-step's statistics (summed over ranks: ``step_stats``) and each
optimizer step's loss and times. Every ``log_freq`` steps and at the last step of an epoch it
closes a window: one console line (``format_train_line``) and the ``train/*`` tracker scalars with
the window's mean loss and rates. The epoch's totals (the sums of its windows) make its ``log.txt``
record. Rates: samples/s, tokens/s, padding (share of padded LLM positions), MFU (given a peak) and
the task's own (``TrainingTask.count_rates``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from minigpt4.models.flops import mfu
from minigpt4.tasks.protocol import THROUGHPUT_COUNTS
from minigpt4.training.step_stats import dataset_loss_stat, dataset_stat
from minigpt4.utils.logging import format_train_line

Counts = Mapping[str, float]


@dataclass
class Totals:
    """Sums over a window or an epoch: optimizer-step losses, seconds, samples and counts."""

    count_names: Sequence[str]
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    data_seconds: float = 0.0
    samples: int = 0
    counts: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = {n: 0.0 for n in self.count_names}

    def add_counts(self, counts: Counts) -> None:
        for n in self.count_names:
            self.counts[n] += counts[n]


class TrainMeter:
    """One epoch at a time (``begin``): windows of ``log_freq`` steps and the epoch's totals.

    ``count_names``: every count summed (``THROUGHPUT_COUNTS`` first, then the task's); ``peak``:
    the FLOP/s of all ranks together (None: no MFU); ``task_rates`` / ``task_record``: the task's
    rates and record fields from summed counts; ``scalars(values, global_step)``: the trackers."""

    def __init__(
        self,
        iters: int,
        log_freq: int,
        count_names: Sequence[str],
        dataset_names: Sequence[str],
        peak: float | None,
        task_rates: Callable[[Counts], dict[str, float | None]],
        task_record: Callable[[Counts], dict[str, Any]],
        log: logging.Logger,
        scalars: Callable[[dict[str, float], int], None],
        memory_mb: Callable[[], int],
    ) -> None:
        self.iters, self.log_freq = iters, log_freq
        self.count_names, self.dataset_names = tuple(count_names), tuple(dataset_names)
        self.peak = peak
        self.task_rates, self.task_record = task_rates, task_record
        self.log, self.scalars, self.memory_mb = log, scalars, memory_mb
        self.begin(0)

    def begin(self, epoch: int) -> None:
        """Start ``epoch``: empty totals and window, the clock at zero."""
        self.epoch = epoch
        self.total = Totals(self.count_names)
        self.window = Totals(self.count_names)
        self.skipped = 0
        self.per_dataset = {n: 0.0 for n in self.dataset_names}
        self.loss_per_dataset = {n: 0.0 for n in self.dataset_names}  # loss x samples
        self.window_datasets = {n: [0.0, 0.0] for n in self.dataset_names}  # samples, loss x samples
        self.start = time.perf_counter()

    def state_dict(self) -> dict[str, Any]:
        """The epoch so far, for a step checkpoint (``load_state_dict`` continues it after a resume)."""
        t = self.total
        return {
            "losses": list(t.losses),
            "samples": t.samples,
            "counts": {n: t.counts[n] + self.window.counts[n] for n in self.count_names},
            "skipped": self.skipped,
            "per_dataset": dict(self.per_dataset),
            "loss_per_dataset": dict(self.loss_per_dataset),
            "seconds": time.perf_counter() - self.start,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        t = self.total
        t.losses, t.samples = list(state["losses"]), int(state["samples"])
        t.counts.update({n: state["counts"].get(n, 0.0) for n in self.count_names})
        self.skipped = int(state["skipped"])
        self.per_dataset.update({n: state["per_dataset"].get(n, 0.0) for n in self.dataset_names})
        self.loss_per_dataset.update({n: state["loss_per_dataset"].get(n, 0.0) for n in self.dataset_names})
        self.start = time.perf_counter() - float(state["seconds"])

    # ---- feeding --------------------------------------------------------------------------
    def add(self, stats: Counts) -> None:
        """One micro-step's statistics, summed over ranks (``samples``, ``skipped``, counts, per dataset)."""
        samples = int(stats["samples"])
        self.total.samples += samples
        self.window.samples += samples
        self.skipped += int(stats["skipped"])
        self.window.add_counts(stats)
        for n in self.dataset_names:
            samples, loss = stats[dataset_stat(n)], stats.get(dataset_loss_stat(n), 0.0)
            self.per_dataset[n] += samples
            self.loss_per_dataset[n] += loss
            self.window_datasets[n][0] += samples
            self.window_datasets[n][1] += loss

    def step(self, loss: float, seconds: float, data_seconds: float) -> None:
        """One optimizer step: its loss (mean over ranks and micro-steps), its time and the data loading's."""
        self.total.losses.append(loss)
        self.window.losses.append(loss)
        self.window.seconds += seconds
        self.window.data_seconds += data_seconds

    # ---- reporting ------------------------------------------------------------------------
    def due(self, step: int) -> bool:
        """Whether ``step`` closes a window (every ``log_freq`` steps and the epoch's last)."""
        return step % self.log_freq == 0 or step == self.iters - 1

    def log_window(self, step: int, lr: float) -> None:
        """The window's console line and tracker scalars; its counts go into the epoch's totals."""
        w = self.window
        n = len(w.losses)
        avg = sum(w.losses) / n
        eta = (self.iters - step - 1) * w.seconds / n
        rates = self.rates(w.counts, w.seconds, w.samples)
        line = format_train_line(self.epoch, step, self.iters, eta, lr, avg, w.seconds / n, w.data_seconds / n, self.memory_mb(), rates)
        self.log.info(line + self.datasets_part())
        self.scalars(
            {"train/loss": avg, "train/lr": lr, **{f"train/{k}": v for k, v in rates.items() if v is not None}},
            self.epoch * self.iters + step,
        )
        self.total.add_counts(w.counts)
        self.window = Totals(self.count_names)
        self.window_datasets = {n: [0.0, 0.0] for n in self.dataset_names}

    def datasets_part(self) -> str:
        """`` | laion 3,712 loss 2.3105, cc_sbu 448 loss 2.4011``: the window's samples and mean loss per
        entry (all ranks), when there are several entries."""
        if len(self.dataset_names) < 2:
            return ""
        parts = [f"{n} {int(s):,}" + (f" loss {loss / s:.4f}" if s else "") for n, (s, loss) in self.window_datasets.items()]
        return " | " + ", ".join(parts)

    def rates(self, counts: Counts, seconds: float, samples: int) -> dict[str, float | None]:
        """Throughput of ``samples`` and ``counts`` (summed over ranks) in ``seconds``, then the task's rates."""
        tokens, positions, flops = (counts[n] for n in THROUGHPUT_COUNTS)
        return {
            "samples_per_s": round(samples / seconds, 3) if seconds > 0 and samples else None,
            "tokens_per_s": round(tokens / seconds, 1) if seconds > 0 else None,
            "padding": round(1 - tokens / positions, 4) if positions else None,
            "mfu": round(m, 4) if (m := mfu(flops, seconds, self.peak)) is not None and flops else None,
            **self.task_rates(counts),
        }

    def record(self, lr: float) -> dict[str, Any]:
        """The epoch's ``log.txt`` record (call after its last window); warns about skipped samples."""
        seconds = time.perf_counter() - self.start
        if self.skipped:
            self.log.warning("Epoch %d: skipped %d missing/corrupt samples (set run.strict_data to fail instead)", self.epoch, self.skipped)
        t = self.total
        rates = self.rates(t.counts, seconds, t.samples)
        return {
            "epoch": self.epoch,
            "loss": sum(t.losses) / len(t.losses),
            "lr": lr,
            "seconds": round(seconds, 3),
            **{k: rates[k] for k in ("samples_per_s", "tokens_per_s", "padding", "mfu")},
            **self.task_record(t.counts),
            "samples": t.samples,
            "samples_per_dataset": {n: int(c) for n, c in self.per_dataset.items()},
            "loss_per_dataset": {n: (self.loss_per_dataset[n] / c if c else None) for n, c in self.per_dataset.items()},
            "skipped": self.skipped,
            "global_step": (self.epoch + 1) * self.iters,
        }
