"""The runner's checkpoints: what every rank contributes, when a step checkpoint is due, and resuming
from an epoch or a step checkpoint to the same next batch (``EpochRunner`` inherits this)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from minigpt4.errors import StorageError
from minigpt4.models.weights import load_parameters
from minigpt4.run_dir import checkpoint_path, step_checkpoint_path
from minigpt4.training.checkpoint import load_checkpoint, save_checkpoint, save_step_checkpoint
from minigpt4.utils import dist


class RunCheckpoints:
    """Checkpoint writing and resuming for a runner with ``model_without_ddp``, ``optimizer``,
    ``scheduler``, ``scaler``, ``loader``, ``meter``, ``epoch_log``, ``run``, ``cfg``, ``info``, ``log``."""

    def _begin_epoch(self, epoch: int, first_step: int) -> None:
        """The loader's and meter's start of ``epoch`` (a resumed one continues their saved state)."""
        self.loader.begin_epoch(epoch)
        if first_step == 0 or getattr(self, "_meter_state", None) is None:
            self.meter.begin(epoch)
        else:
            self.meter.begin(epoch)
            self.meter.load_state_dict(self._meter_state)
        self._meter_state = None

    def _mark_boundary(self, epoch: int, step: int) -> None:
        """Remember where ``step`` begins: a stop signal during it saves this point."""
        self._boundary = {"epoch": epoch, "step": step, "data": self.loader.state_dict(), "rng": dist.get_rng_state()}

    def _step_checkpoint_due(self, epoch: int, step: int) -> bool:
        every = self.run.save_every_steps
        done = epoch * self.run.iters_per_epoch + step + 1
        return bool(every) and done % every == 0 and step + 1 < self.run.iters_per_epoch  # the epoch's end saves anyway

    def save_at_boundary(self) -> None:
        """After a stop signal: a step checkpoint where the abandoned step began (none at an epoch's start)."""
        b = self._boundary
        if b is None or b["step"] == 0:
            return
        self.save(b["epoch"], b["step"], rank_state={"rng": b["rng"], "data": b["data"]})

    def save(self, epoch: int, step: int | None = None, rank_state: dict | None = None) -> None:
        """The checkpoint of ``epoch`` when ``step`` is None (finished), else of ``step`` steps into it.
        All ranks contribute their RNG and data-stream states; rank 0 writes the file."""
        iters = self.run.iters_per_epoch
        mine = rank_state or {"rng": dist.get_rng_state(), "data": self.loader.state_dict()}
        rank_states = dist.all_gather_object(mine)
        done = iters if step is None else step
        path = checkpoint_path(self.run_dir, epoch) if step is None else step_checkpoint_path(self.run_dir, epoch, step)
        failed = None
        if self.info.is_main:
            try:
                self._write(epoch, step, done, rank_states)
            except StorageError as e:
                failed = f"{e}; the earlier checkpoints are intact: free space, then continue with --resume auto"
        failed = dist.broadcast_object(failed)  # every rank stops, none waits for rank 0 forever
        if failed:
            raise StorageError(failed)
        dist.barrier()
        self.last_checkpoint = path

    def _write(self, epoch: int, step: int | None, done: int, rank_states: list) -> None:
        """Rank 0: the checkpoint file (and, for a step checkpoint, the pruning of older ones)."""
        iters = self.run.iters_per_epoch
        path = checkpoint_path(self.run_dir, epoch) if step is None else step_checkpoint_path(self.run_dir, epoch, step)
        state = {
            "model": {k: v.detach().cpu() for k, v in self.model_without_ddp.trainable_state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": epoch,
            "step_in_epoch": done,
            "global_step": epoch * iters + done,
            "world_size": self.info.world_size,
            "rank_states": rank_states,
            "config": OmegaConf.to_container(self.cfg, resolve=True),
        }
        if step is None:
            save_checkpoint(self.run_dir, epoch, state)
        else:
            save_step_checkpoint(self.run_dir, epoch, step, {**state, "meter": self.meter.state_dict()}, self.run.keep_step_checkpoints)
        self.log.info("Saved %s", path)

    def _resume(self, path: str | Path) -> None:
        ckpt = load_checkpoint(path)
        load_parameters(self.model_without_ddp, ckpt["model"], path, exact=True)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["lr_scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        epoch, iters = int(ckpt["epoch"]), self.run.iters_per_epoch
        done = int(ckpt.get("step_in_epoch", iters))  # older checkpoints: finished epochs
        self.start_epoch, self.start_step = (epoch + 1, 0) if done >= iters else (epoch, done)
        self._meter_state = ckpt.get("meter") if done < iters else None
        self.last_checkpoint = Path(path)
        if ckpt["world_size"] == self.info.world_size:
            mine = ckpt["rank_states"][self.info.rank]
            self.loader.load_state_dict(mine["data"])
            dist.set_rng_state(mine["rng"])
        else:
            self._resume_other_world(path, ckpt)
        if self.info.is_main:
            self.epoch_log.truncate_after(epoch if done >= iters else epoch - 1)
        where = f"epoch {epoch} done" if done >= iters else f"epoch {epoch}, {done} of {iters} steps done"
        self.log.info("Resumed from %s (%s, global step %d)", path, where, ckpt["global_step"])

    def _resume_other_world(self, path: str | Path, ckpt: dict[str, Any]) -> None:
        """A checkpoint of another number of ranks: the data order cannot be continued exactly."""
        states = [s["data"] for s in ckpt["rank_states"]]
        if "data_pass" in states[0]:
            state: dict[str, Any] = {"data_pass": max(s["data_pass"] for s in states) + 1, "batch_in_pass": 0}
            how = f"continuing with data pass {state['data_pass']}"
        else:
            state = {"kind": "restart", "epoch": ckpt["epoch"]}
            how = f"epoch {ckpt['epoch']}'s streams start afresh"
        self.loader.load_state_dict(state)
        self.log.warning(
            "%s was written by %d rank(s), this run has %d: data order and RNG cannot be restored exactly; %s",
            path,
            ckpt["world_size"],
            self.info.world_size,
            how,
        )
