"""The training loop (``epoch_runner``; the official name ``runner_iter`` is an alias): epochs of
``iters_per_epoch`` optimizer steps over an endless data stream, a checkpoint after every epoch (and every
``save_every_steps`` steps, and where a stop signal ends the run), exact resume from any of them.

One optimizer step = ``accum_grad_iters`` forward/backward passes of ``batch_size_train`` samples
per rank. Before each backward the step's statistics (loss, samples, counts) are summed over ranks
(one small all-reduce, also used for logging), so a NaN/inf or a signal on any rank stops every rank
at the same step, before any collective that could wait forever.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import Dataset

from minigpt4.errors import NonFiniteLossError
from minigpt4.models.flops import peak_flops_per_s
from minigpt4.models.protocol import TrainableModel
from minigpt4.registry import LR_SCHEDULERS, RUNNERS
from minigpt4.tasks.protocol import THROUGHPUT_COUNTS, TrainingTask, missing_members
from minigpt4.training.data import batch_size_of, to_device
from minigpt4.training.loaders import build_train_loader
from minigpt4.training.meter import TrainMeter
from minigpt4.training.optim import build_optimizer, count_parameters
from minigpt4.training.run_checkpoints import RunCheckpoints
from minigpt4.training.schema import RUN_SCHEMA
from minigpt4.training.step_stats import StepStats, dataset_loss_stat, dataset_stat
from minigpt4.training.stream_loader import StreamLoader
from minigpt4.utils import dist, signals
from minigpt4.utils.logging import EpochLog, get_logger, max_memory_mb
from minigpt4.utils.progress import progress
from minigpt4.utils.tracking import Trackers

# per micro-step, summed over ranks besides the counts: mean loss, samples, dropped samples, pending signals
STEP_STATS = ("loss", "samples", "skipped", "signal", "signalled")


def check_components(task: object, model: object) -> None:
    """Raise ``TypeError`` naming what ``task`` or ``model`` lacks of the contracts the runner relies on."""
    problems = [
        f"{kind} {type(obj).__name__} lacks {', '.join(missing)} ({proto.__module__}.{proto.__name__})"
        for kind, obj, proto in (("run.task", task, TrainingTask), ("the model", model, TrainableModel))
        if (missing := missing_members(obj, proto))
    ]
    if problems:
        raise TypeError("; ".join(problems))


@RUNNERS.register("epoch_runner", aliases=["runner_iter"])
class EpochRunner(RunCheckpoints):
    """Trains ``model`` on ``datasets`` with ``task.train_step``; outputs go to ``run_dir``."""

    SCHEMA = RUN_SCHEMA  # the run section's keys (load_config asks the runner for them)

    def __init__(
        self,
        cfg: Any,
        task: TrainingTask,
        model: TrainableModel,
        datasets: dict[str, Dataset],
        run_dir: str | Path,
        dist_info: dist.DistInfo,
    ) -> None:
        self.cfg, self.run = cfg, cfg.run
        self.task = task
        self.info = dist_info
        self.device = dist_info.device
        self.run_dir = Path(run_dir)
        self.log = get_logger()
        check_components(task, model)
        self.model_without_ddp = model.place(self.device)
        task.prepare_training(self.model_without_ddp, datasets)  # e.g. the feature cache of the model's frozen part
        self.model = self._wrap(self.model_without_ddp)
        self.optimizer = build_optimizer(self.model_without_ddp, self.run)
        self.scheduler = LR_SCHEDULERS.get(self.run.lr_sched).from_config(self.run, self.optimizer)
        use_amp = bool(self.run.amp) and self.device.type == "cuda"
        self.amp_dtype = torch.float16 if self.run.amp_dtype == "fp16" else torch.bfloat16
        self.use_amp = use_amp
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_amp and self.amp_dtype == torch.float16)
        self.dataset_names = list(datasets)
        ratios = [(cfg.datasets.get(n) or {}).get("sample_ratio") for n in self.dataset_names]
        ratios = None if None in ratios else ratios
        self.loader = build_train_loader(datasets, ratios, self.run, dist_info.rank, dist_info.world_size, self.device.type == "cuda")
        if self.run.group_by_length and not self.loader.grouped:
            if isinstance(self.loader, StreamLoader):
                self.log.info("run.group_by_length: streamed batches are not grouped by length (their samples are not known ahead)")
            else:
                self.log.warning("run.group_by_length: a training dataset has no lengths(); batches are not grouped")
        self.count_names = (*THROUGHPUT_COUNTS, *task.count_names)
        per_dataset = [s(n) for n in self.dataset_names for s in (dataset_stat, dataset_loss_stat)]
        self.stats = StepStats([*STEP_STATS, *self.count_names, *per_dataset])
        peak = peak_flops_per_s(self.device, self.run.peak_tflops)
        self._log_datasets(datasets, ratios)
        self.epoch_log = EpochLog(self.run_dir / "log.txt")
        self.trackers = Trackers.from_run(self.run, self.run_dir, OmegaConf.to_container(cfg, resolve=True), dist_info.is_main)
        self.meter = TrainMeter(
            self.run.iters_per_epoch,
            self.run.log_freq,
            self.count_names,
            self.dataset_names,
            peak * dist_info.world_size if peak else None,
            task.count_rates,
            task.count_record,
            self.log,
            self.trackers.scalars,
            lambda: max_memory_mb(self.device),
        )
        self.start_epoch, self.start_step = 0, 0
        self._boundary: dict[str, Any] | None = None  # the loader and RNG states where the current step began
        self.last_checkpoint: Path | None = None
        if self.run.resume_ckpt_path:
            self._resume(self.run.resume_ckpt_path)

    def _log_datasets(self, datasets: dict, ratios: list[float] | None) -> None:
        if isinstance(self.loader, StreamLoader):
            self.log.info("Training data (streamed, each batch from one entry): %s", self.loader.describe())
            return
        sizes = {n: len(d) for n, d in datasets.items()}
        total = sum(sizes.values())
        weights = ratios or list(sizes.values())
        parts = [f"{n}: {size:,} samples ({100 * w / sum(weights):.1f}% of each pass)" for (n, size), w in zip(sizes.items(), weights)]
        how = "mixed by sample_ratio" if ratios else "one pool, each sample once per pass"
        if self.run.group_by_length:
            how += "; batches grouped by length"
        self.log.info("Training data (%s; %s samples per pass): %s", how, f"{total:,}", "; ".join(parts))

    @classmethod
    def from_config(cls, cfg: Any, **kwargs: Any) -> EpochRunner:
        return cls(cfg, **kwargs)

    def _wrap(self, model: nn.Module) -> nn.Module:
        """DDP when world_size > 1. Frozen parameters and buffers are excluded from DDP (no start-up
        broadcast of the frozen LLM, no gradient buckets): every rank loads them from the same files."""
        if not self.info.distributed:
            return model
        frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
        frozen += [n for n, _ in model.named_buffers()]
        ignore = getattr(DDP, "_set_params_and_buffers_to_ignore_for_model", None)
        if ignore is not None:  # a private torch API (present since 1.8); without it DDP just syncs more
            ignore(model, frozen)
        n_trainable = sum(1 for p in model.parameters() if p.requires_grad)
        self.log.info("DDP over %d trainable tensors; %d frozen parameters/buffers excluded from DDP", n_trainable, len(frozen))
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(model, device_ids=device_ids, broadcast_buffers=False)

    # ------------------------------------------------------------------ training
    def train(self) -> list[dict[str, Any]]:
        """Train from ``start_epoch`` to ``max_epoch`` (or ``stop_after_epoch``); returns the epoch records."""
        trainable, total = count_parameters(self.model_without_ddp)
        self.log.info(
            "Trainable parameters: %d of %d; %d rank(s) on %s; run folder %s",
            trainable,
            total,
            self.info.world_size,
            self.device,
            self.run_dir,
        )
        records = []
        stop = self.run.stop_after_epoch
        if self.start_epoch >= self.run.max_epoch:
            self.log.info("Nothing to do: all %d epochs are done", self.run.max_epoch)
        elif stop is not None and stop < self.start_epoch:
            self.log.info("run.stop_after_epoch %d is already done: training on to epoch %d", stop, self.run.max_epoch - 1)
        with signals.deferred():  # SIGINT/SIGTERM stop every rank at the next step boundary
            for epoch in range(self.start_epoch, self.run.max_epoch):
                try:
                    record = self.train_epoch(epoch, self.start_step if epoch == self.start_epoch else 0)
                except signals.Interrupted:
                    self.save_at_boundary()  # where the run stopped: --resume auto goes on from there
                    raise
                record.update(self._data_problems(epoch))
                self.save(epoch)
                if self.info.is_main:
                    self.epoch_log.append(record)
                    self.trackers.scalars(
                        {"epoch/loss": record["loss"], "epoch/samples_per_s": record["samples_per_s"], "epoch": epoch},
                        (epoch + 1) * self.run.iters_per_epoch - 1,
                    )
                records.append(record)
                self.log.info("Epoch %d done: %s", epoch, record)
                if epoch == stop and epoch + 1 < self.run.max_epoch:
                    self.log.info("Stopping after epoch %d (run.stop_after_epoch); continue with --resume auto", epoch)
                    break
        self.trackers.close()
        self.loader.close()
        dist.barrier()
        return records

    def train_epoch(self, epoch: int, first_step: int = 0) -> dict[str, Any]:
        """The optimizer steps ``first_step`` .. ``iters_per_epoch - 1`` of ``epoch``; returns its ``log.txt`` record."""
        self.model.train()
        iters, accum = self.run.iters_per_epoch, self.run.accum_grad_iters
        params = [p for p in self.model_without_ddp.parameters() if p.requires_grad]
        meter = self.meter
        self._begin_epoch(epoch, first_step)
        bar = progress(
            total=iters, initial=first_step, desc=f"epoch {epoch}", disable=not self.info.is_main, leave=False, dynamic_ncols=True
        )
        try:
            for step in range(first_step, iters):
                self._mark_boundary(epoch, step)
                t0 = time.perf_counter()
                lr = self.scheduler.step(epoch, step)
                step_loss, data_s = 0.0, 0.0
                for micro in range(accum):
                    td = time.perf_counter()
                    batch, skipped = self._next_batch()
                    data_s += time.perf_counter() - td
                    with self._grad_sync(last=micro == accum - 1):
                        loss, stats, signum = self._forward(batch, skipped)
                        mean_loss = self._check(stats, signum, epoch, step)  # every rank stops here, or none
                        self.scaler.scale(loss / accum).backward()
                    step_loss += mean_loss / accum
                    meter.add(stats)
                self._optimizer_step(params)
                meter.step(step_loss, time.perf_counter() - t0, data_s)
                bar.update(1)
                if meter.due(step):
                    meter.log_window(step, lr)
                if self._step_checkpoint_due(epoch, step):
                    self.save(epoch, step + 1)
        finally:
            bar.close()  # also when interrupted: no stale bar on the terminal
        return meter.record(lr)

    def _data_problems(self, epoch: int) -> dict[str, Any]:
        """``{"data_problems": {entry: {shard: count}}}`` over all ranks (logged), or {} when there were none."""
        merged: dict[str, dict[str, int]] = {}
        for per_rank in dist.all_gather_object(self.loader.epoch_problems()):
            for name, shards in per_rank.items():
                for url, n in shards.items():
                    merged.setdefault(name, {})[url] = merged.get(name, {}).get(url, 0) + n
        for name, shards in merged.items():
            worst = sorted(shards.items(), key=lambda kv: -kv[1])
            named = ", ".join(f"{url} ({n})" for url, n in worst[:5]) + (f" and {len(worst) - 5} more" if len(worst) > 5 else "")
            self.log.warning("datasets.%s: %d bad samples or shards skipped in epoch %d: %s", name, sum(shards.values()), epoch, named)
        return {"data_problems": merged} if merged else {}

    def _grad_sync(self, last: bool) -> contextlib.AbstractContextManager:
        """DDP's gradient all-reduce only in the last micro-step of an optimizer step."""
        return contextlib.nullcontext() if last or not self.info.distributed else self.model.no_sync()

    def _forward(self, batch: dict[str, Any], skipped: int) -> tuple[torch.Tensor, dict[str, float], int | None]:
        """The task's loss on ``batch`` (under autocast), the step's statistics summed over ranks (loss,
        samples, skipped, pending signals, the counts, samples per dataset) and this rank's pending signal."""
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            out = self.task.train_step(self.model, batch)
        out = out if isinstance(out, Mapping) else {"loss": out}  # a bare loss: no counts
        loss = out["loss"]
        signum = signals.requested()
        names = batch.get("dataset", [])
        loss_value = loss.detach().float().item()
        values = {
            "loss": loss_value,
            "samples": batch_size_of(batch),
            "skipped": skipped,
            "signal": signum or 0,
            "signalled": float(signum is not None),
            **{n: out.get(n) for n in self.count_names},
            **{dataset_stat(n): names.count(n) for n in self.dataset_names},
            **{dataset_loss_stat(n): loss_value * names.count(n) for n in self.dataset_names},
        }
        return loss, self.stats.reduce(values, self.device), signum

    def _check(self, stats: Mapping[str, float], signum: int | None, epoch: int, step: int) -> float:
        """The loss's mean over ranks; raises, on every rank alike, when a rank got a signal
        (``signals.Interrupted`` with this rank's ``signum``, else the ranks' mean: the step is abandoned
        before backward) or when the loss is not finite."""
        if stats["signalled"] > 0:
            raise signals.Interrupted(signum or round(stats["signal"] / stats["signalled"]), where=f"epoch {epoch} step {step}")
        mean_loss = stats["loss"] / self.info.world_size
        if not math.isfinite(mean_loss):
            raise NonFiniteLossError(self._nan_message(mean_loss, epoch, step))
        return mean_loss

    def _optimizer_step(self, params: list[torch.Tensor]) -> None:
        """Unscale and clip (``run.grad_clip``), step, update the scaler, drop the gradients."""
        if self.run.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(params, self.run.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def _next_batch(self) -> tuple[dict[str, Any], int]:
        """The next non-empty batch on the device and the samples the collater dropped for it."""
        skipped = 0
        while True:
            batch = next(self.loader)
            skipped += int(batch.get("skipped", 0))
            if batch_size_of(batch) > 0:
                return to_device(batch, self.device), skipped

    def _nan_message(self, value: float, epoch: int, step: int) -> str:
        last = self.last_checkpoint or "none (no epoch has finished yet)"
        return (
            f"Loss is {value} at epoch {epoch} step {step} (global step {epoch * self.run.iters_per_epoch + step}); "
            f"stopping. The last good checkpoint is {last}"
        )
