"""The training loop (``epoch_runner``; the official name ``runner_iter`` is an alias): epochs of
``iters_per_epoch`` optimizer steps over an endless data stream, a checkpoint after every epoch, exact resume.

One optimizer step = ``accum_grad_iters`` forward/backward passes of ``batch_size_train`` samples
per rank. Before each backward the step's statistics (loss, samples, counts) are summed over ranks
(one small all-reduce, also used for logging), so a NaN/inf or a signal on any rank stops every rank
at the same step, before any collective that could wait forever.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import Dataset

from minigpt4.errors import NonFiniteLossError
from minigpt4.models.flops import mfu, peak_flops_per_s
from minigpt4.models.weights import load_parameters
from minigpt4.registry import LR_SCHEDULERS, RUNNERS
from minigpt4.run_dir import checkpoint_path
from minigpt4.training.checkpoint import load_checkpoint, save_checkpoint
from minigpt4.training.data import InfiniteLoader, batch_size_of, concat_datasets, to_device
from minigpt4.training.optim import build_optimizer, count_parameters
from minigpt4.training.schema import RUN_SCHEMA
from minigpt4.utils import dist, signals
from minigpt4.utils.logging import EpochLog, format_train_line, get_logger, max_memory_mb
from minigpt4.utils.progress import progress
from minigpt4.utils.tracking import Trackers

# what a task's train_step may report besides the loss, summed over ranks for the logs
COST_KEYS = ("tokens", "positions", "flops", "feature_hits", "feature_encoded")


@RUNNERS.register("epoch_runner", aliases=["runner_iter"])
class EpochRunner:
    """Trains ``model`` on ``datasets`` with ``task.train_step``; outputs go to ``run_dir``."""

    SCHEMA = RUN_SCHEMA  # the run section's keys (load_config asks the runner for them)

    def __init__(
        self, cfg: Any, task: Any, model: nn.Module, datasets: dict[str, Dataset], run_dir: str | Path, dist_info: dist.DistInfo
    ) -> None:
        self.cfg, self.run = cfg, cfg.run
        self.task = task
        self.info = dist_info
        self.device = dist_info.device
        self.run_dir = Path(run_dir)
        self.log = get_logger()
        self.model_without_ddp = model.place(self.device) if hasattr(model, "place") else model.to(self.device)
        if hasattr(task, "prepare_training"):  # e.g. the feature cache of the model's frozen part
            task.prepare_training(self.model_without_ddp, datasets)
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
        data, collate = concat_datasets(datasets)
        self.loader = InfiniteLoader(
            data,
            collate,
            self.run.batch_size_train,
            self.run.seed,
            dist_info.rank,
            dist_info.world_size,
            self.run.num_workers,
            pin_memory=self.device.type == "cuda",
            sample_ratios=ratios,
            group_by_length=self.run.group_by_length,
        )
        if self.run.group_by_length and not self.loader.grouped:
            self.log.warning("run.group_by_length: a training dataset has no lengths(); batches are not grouped")
        self.peak = peak_flops_per_s(self.device, self.run.peak_tflops)
        self.caching = bool(getattr(getattr(task, "features", None), "enabled", False))
        self._log_datasets(datasets, ratios)
        self.epoch_log = EpochLog(self.run_dir / "log.txt")
        self.trackers = Trackers.from_run(self.run, self.run_dir, OmegaConf.to_container(cfg, resolve=True), dist_info.is_main)
        self.start_epoch = 0
        self.last_checkpoint: Path | None = None
        if self.run.resume_ckpt_path:
            self._resume(self.run.resume_ckpt_path)

    def _log_datasets(self, datasets: dict, ratios: list[float] | None) -> None:
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
                record = self.train_epoch(epoch)
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

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """``iters_per_epoch`` optimizer steps; returns the ``log.txt`` record of the epoch."""
        self.model.train()
        iters, accum = self.run.iters_per_epoch, self.run.accum_grad_iters
        params = [p for p in self.model_without_ddp.parameters() if p.requires_grad]
        losses, samples, skipped = [], 0, 0
        per_dataset = torch.zeros(len(self.dataset_names), dtype=torch.float64)
        cost = torch.zeros(len(COST_KEYS), dtype=torch.float64)  # this epoch, summed over ranks
        win_loss, win_time, win_data, win_cost, win_samples = [], 0.0, 0.0, torch.zeros_like(cost), 0
        start = time.perf_counter()
        bar = progress(total=iters, desc=f"epoch {epoch}", disable=not self.info.is_main, leave=False, dynamic_ncols=True)
        try:
            for step in range(iters):
                t0 = time.perf_counter()
                lr = self.scheduler.step(epoch, step)
                step_loss, data_s = 0.0, 0.0
                for micro in range(accum):
                    td = time.perf_counter()
                    batch, n_skipped = self._next_batch()
                    data_s += time.perf_counter() - td
                    last = micro == accum - 1
                    sync = contextlib.nullcontext() if last or not self.info.distributed else self.model.no_sync()
                    with sync:
                        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
                            out = self.task.train_step(self.model, batch)
                        out = out if isinstance(out, dict) else {"loss": out}
                        loss = out["loss"]
                        stop = signals.requested()
                        counts = [batch.get("dataset", []).count(n) for n in self.dataset_names]
                        stats = dist.all_reduce_sum(
                            torch.tensor(  # on the device: nccl reduces CUDA tensors only
                                [
                                    loss.detach().float().item(),
                                    batch_size_of(batch),
                                    n_skipped,
                                    stop or 0,
                                    stop is not None,
                                    *[out.get(k) or 0 for k in COST_KEYS],
                                    *counts,
                                ],
                                dtype=torch.float64,
                                device=self.device,
                            )
                        )
                        if stats[4] > 0:  # a signal on any rank: every rank abandons this step, before backward
                            raise signals.Interrupted(stop or round(stats[3].item() / stats[4].item()), where=f"epoch {epoch} step {step}")
                        mean_loss = stats[0].item() / self.info.world_size
                        if not math.isfinite(mean_loss):
                            raise NonFiniteLossError(self._nan_message(mean_loss, epoch, step))
                        self.scaler.scale(loss / accum).backward()
                    step_loss += mean_loss / accum
                    samples += int(stats[1].item())
                    win_samples += int(stats[1].item())
                    skipped += int(stats[2].item())
                    win_cost += stats[5 : 5 + len(COST_KEYS)].cpu()
                    per_dataset += stats[5 + len(COST_KEYS) :].cpu()
                if self.run.grad_clip is not None:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(params, self.run.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                losses.append(step_loss)
                win_loss.append(step_loss)
                win_time += time.perf_counter() - t0
                win_data += data_s
                bar.update(1)
                if step % self.run.log_freq == 0 or step == iters - 1:
                    n = len(win_loss)
                    avg = sum(win_loss) / n
                    eta = (iters - step - 1) * win_time / n
                    rates = self._rates(win_cost, win_time, win_samples)
                    self.log.info(
                        format_train_line(epoch, step, iters, eta, lr, avg, win_time / n, win_data / n, max_memory_mb(self.device), rates)
                    )
                    self.trackers.scalars(
                        {"train/loss": avg, "train/lr": lr, **{f"train/{k}": v for k, v in rates.items() if v is not None}},
                        epoch * iters + step,
                    )
                    cost += win_cost
                    win_loss, win_time, win_data, win_cost, win_samples = [], 0.0, 0.0, torch.zeros_like(cost), 0
        finally:
            bar.close()  # also when interrupted: no stale bar on the terminal
        seconds = time.perf_counter() - start
        if skipped:
            self.log.warning("Epoch %d: skipped %d missing/corrupt samples (set run.strict_data to fail instead)", epoch, skipped)
        rates = self._rates(cost, seconds, samples)
        return {
            "epoch": epoch,
            "loss": sum(losses) / len(losses),
            "lr": lr,
            "seconds": round(seconds, 3),
            "samples_per_s": rates["samples_per_s"],
            "tokens_per_s": rates["tokens_per_s"],
            "padding": rates["padding"],
            "mfu": rates["mfu"],
            "feature_cache": {"hits": int(cost[3]), "encoded": int(cost[4])},
            "samples": samples,
            "samples_per_dataset": {n: int(c) for n, c in zip(self.dataset_names, per_dataset.tolist())},
            "skipped": skipped,
            "global_step": (epoch + 1) * iters,
        }

    def _rates(self, cost: torch.Tensor, seconds: float, samples: int) -> dict[str, float | None]:
        """Throughput of ``samples`` and ``cost`` (``COST_KEYS``, both summed over ranks) in ``seconds``."""
        tokens, positions, flops, hits, encoded = cost.tolist()
        peak = self.peak * self.info.world_size if self.peak else None
        return {
            "samples_per_s": round(samples / seconds, 3) if seconds > 0 and samples else None,
            "tokens_per_s": round(tokens / seconds, 1) if seconds > 0 else None,
            "padding": round(1 - tokens / positions, 4) if positions else None,
            "mfu": round(m, 4) if (m := mfu(flops, seconds, peak)) is not None and flops else None,
            "cache_hits": round(hits / (hits + encoded), 4) if self.caching and hits + encoded else None,
        }

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

    # ------------------------------------------------------------------ checkpoints
    def save(self, epoch: int) -> None:
        """All ranks contribute their RNG and data-stream states; rank 0 writes the checkpoint."""
        rank_states = dist.all_gather_object({"rng": dist.get_rng_state(), "data": self.loader.state_dict()})
        path = checkpoint_path(self.run_dir, epoch)
        if self.info.is_main:
            save_checkpoint(
                self.run_dir,
                epoch,
                {
                    "model": {k: v.detach().cpu() for k, v in self.model_without_ddp.trainable_state_dict().items()},
                    "optimizer": self.optimizer.state_dict(),
                    "lr_scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    "epoch": epoch,
                    "global_step": (epoch + 1) * self.run.iters_per_epoch,
                    "world_size": self.info.world_size,
                    "rank_states": rank_states,
                    "config": OmegaConf.to_container(self.cfg, resolve=True),
                },
            )
            self.log.info("Saved %s", path)
        dist.barrier()
        self.last_checkpoint = path

    def _resume(self, path: str | Path) -> None:
        ckpt = load_checkpoint(path)
        load_parameters(self.model_without_ddp, ckpt["model"], path, exact=True)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["lr_scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.last_checkpoint = Path(path)
        if ckpt["world_size"] == self.info.world_size:
            mine = ckpt["rank_states"][self.info.rank]
            self.loader.load_state_dict(mine["data"])
            dist.set_rng_state(mine["rng"])
        else:
            next_pass = max(s["data"]["data_pass"] for s in ckpt["rank_states"]) + 1
            self.loader.load_state_dict({"data_pass": next_pass, "batch_in_pass": 0})
            self.log.warning(
                "%s was written by %d rank(s), this run has %d: data order and RNG cannot be "
                "restored exactly; continuing with data pass %d",
                path,
                ckpt["world_size"],
                self.info.world_size,
                next_pass,
            )
        if self.info.is_main:
            self.epoch_log.truncate_after(int(ckpt["epoch"]))
        self.log.info("Resumed from %s (epoch %d done, global step %d)", path, ckpt["epoch"], ckpt["global_step"])
