"""torch.distributed helpers: one code path for ``python train.py``, ``torchrun`` and ``srun``.

Where the process sits comes from, in this order: torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
(one or several nodes: torchrun's rendezvous sets them); else SLURM's ``SLURM_PROCID``/
``SLURM_NTASKS``/``SLURM_LOCALID`` (``srun python train.py``, one task per process; see
:mod:`minigpt4.utils.slurm` for ``MASTER_ADDR``/``MASTER_PORT``); else rank 0 of 1. For
``WORLD_SIZE > 1`` a process group is created (nccl on CUDA, gloo on CPU); otherwise the collectives
below are no-ops, so callers never branch on "distributed or not". The *global* rank decides who
writes (rank 0: run folder, config, checkpoints, results); the *local* rank picks the GPU.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
import torch
import torch.distributed as dist

from minigpt4.utils import slurm
from minigpt4.utils.slurm import LaunchEnvError, env_int

IGNORE_SLURM_ENV = "MINIGPT4_IGNORE_SLURM"  # =1: treat a process with SLURM variables as a plain one
TORCHRUN_VARS = ("RANK", "WORLD_SIZE")  # either set: torchrun (or another env:// launcher) placed us


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    launcher: str = "none"  # "torchrun" (its variables), "slurm" (srun's), "none" (one process)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


@dataclass(frozen=True)
class LaunchEnv:
    """This process's place in the job, before any process group exists."""

    rank: int
    world_size: int
    local_rank: int
    launcher: str
    exports: dict[str, str]  # variables to set for init_process_group (SLURM: MASTER_ADDR, RANK, ...)


def read_launch_env(env: Mapping[str, str] | None = None, gpus_per_node: int | None = None) -> LaunchEnv:
    """Rank, world size and local rank from torchrun's variables, else SLURM's, else 0/1/0.
    A malformed value is a ``LaunchEnvError`` (a ``ValueError``) naming the variable."""
    env = os.environ if env is None else env
    if any(env.get(k, "").strip() for k in TORCHRUN_VARS):
        world_size = env_int(env, "WORLD_SIZE", 1, minimum=1)
        rank = env_int(env, "RANK", 0)
        if rank >= world_size:
            raise LaunchEnvError(f"environment variable RANK={rank} is not below WORLD_SIZE={world_size}")
        return LaunchEnv(rank, world_size, env_int(env, "LOCAL_RANK", 0), "torchrun", {})
    if slurm.in_slurm_step(env) and env.get(IGNORE_SLURM_ENV, "").strip() in ("", "0"):
        if gpus_per_node is None:
            gpus_per_node = torch.cuda.device_count()
        lay = slurm.slurm_layout(env, gpus_per_node)
        exports = {
            "RANK": lay.rank,
            "WORLD_SIZE": lay.world_size,
            "LOCAL_RANK": lay.local_rank,
            "MASTER_ADDR": lay.master_addr,
            "MASTER_PORT": lay.master_port,
        }
        return LaunchEnv(lay.rank, lay.world_size, lay.local_rank, "slurm", {k: str(v) for k, v in exports.items()})
    return LaunchEnv(0, 1, 0, "none", {})


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("run.device is 'cuda' but CUDA is not available (use 'auto' or 'cpu')")
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise LaunchEnvError(
                f"local rank {local_rank} (LOCAL_RANK / SLURM_LOCALID) needs GPU {local_rank}, but this "
                f"process sees {count} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
                "start at most as many processes per node as it has GPUs"
            )
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if device != "cpu":
        raise ValueError(f"run.device: expected auto, cuda or cpu, got {device!r}")
    return torch.device("cpu")


def init_distributed(device: str = "auto", backend: str = "auto") -> DistInfo:
    """Find this process's place (:func:`read_launch_env`), pick the device of its local rank and, for
    world_size > 1, join the process group. Under SLURM the derived ``RANK``/``WORLD_SIZE``/
    ``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT`` are exported first (set ones are kept), as torchrun would."""
    launch = read_launch_env()
    for key, value in launch.exports.items():
        os.environ.setdefault(key, value)
    gpu = launch.local_rank
    if launch.launcher == "slurm" and torch.cuda.is_available():
        gpu %= torch.cuda.device_count()  # srun --gpus-per-task=1 shows each task its own GPU as cuda:0
    dev = resolve_device(device, gpu)
    if launch.world_size > 1 and not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if dev.type == "cuda" else "gloo"
        if backend == "nccl" and dev.type != "cuda":
            raise ValueError("run.dist_backend 'nccl' needs CUDA; use 'gloo' (or 'auto') on CPU")
        if launch.launcher == "slurm" and launch.rank == 0:
            print(
                f"SLURM: {launch.world_size} tasks (SLURM_NTASKS), rendezvous at {os.environ['MASTER_ADDR']}:"
                f"{os.environ['MASTER_PORT']}; waiting for every task (start them all with srun)",
                file=sys.stderr,
                flush=True,
            )
        kwargs = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, rank=launch.rank, world_size=launch.world_size, **kwargs)
    return DistInfo(launch.rank, launch.world_size, launch.local_rank, dev, launch.launcher)


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_dist():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
    if not is_dist():
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over ranks (a new tensor; ``t`` is left unchanged)."""
    t = t.detach().clone()
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def cleanup() -> None:
    """Leave the process group (call on normal exit only; on errors just let the process die)."""
    if is_dist():
        dist.destroy_process_group()


def exit_interrupted(code: int) -> NoReturn:
    """End an interrupted process with ``code``. A rank of a process group leaves with ``os._exit``
    after flushing its output: tearing the group down in interpreter shutdown can deadlock (the gloo
    worker thread waits for the GIL that the destructor joining it holds). Its files are closed
    already: every write is atomic."""
    if not is_dist():
        raise SystemExit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    """This process's RNG states in a ``torch.load(weights_only=True)``-safe form."""
    py = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": py,
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states from :func:`get_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
