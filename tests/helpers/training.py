"""Training runs of the tiny stack (``train.py`` under torchrun, or its command in this process), their
run folders and epoch records, and a short in-process overfit."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch

from minigpt4.testing.tasks import NAN_STEP_ENV
from tests.helpers.paths import REPO, TINY_CFG
from tests.helpers.processes import torchrun

TRAINABLE = {"llama_proj.weight", "llama_proj.bias"}


def overfit(model, batch: dict, steps: int = 60, lr: float = 3e-3) -> float:
    """Train ``model``'s trainable parameters on one batch (Adam); returns the last loss, model in eval mode."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return loss.item()


def options(stack: dict, data: Path, out: Path, **run) -> list[str]:
    opts = [
        f"model.llama_model={stack['llama_model']}",
        f"model.vit_ckpt={stack['vit_ckpt']}",
        f"model.q_former_model={stack['q_former_model']}",
        f"datasets.flickr30k_caption.build_info.ann_path={data / 'flickr30k_train.json'}",
        f"datasets.flickr30k_caption.build_info.image_path={data / 'flickr30k-images'}",
        f"run.output_dir={out}",
        f"run.feature_cache={out / 'feature_cache'}",
        "run.device=cpu",
    ]
    return opts + [f"run.{k}={v}" for k, v in run.items()]


def train_env(extra: dict | None = None) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # one thread, no tokenizer threads: tests/conftest.py
    env.pop(NAN_STEP_ENV, None)
    return {**env, **(extra or {})}


def train_cmd(opts: list[str], nproc: int = 0, resume: str | None = None, cfg: Path = TINY_CFG) -> list[str]:
    args = ["train.py", "--cfg-path", str(cfg), "--options", *opts]
    cmd = torchrun(nproc, *args) if nproc else [sys.executable, *args]
    return cmd + (["--resume", resume] if resume else [])


def run_train(
    opts: list[str],
    nproc: int = 0,
    resume: str | None = None,
    env: dict | None = None,
    check: bool = True,
    timeout: int = 240,
    process: bool = False,
    cfg: Path = TINY_CFG,
) -> subprocess.CompletedProcess:
    """``train.py --cfg-path cfg`` with these options under torchrun with ``nproc`` processes, or with
    ``nproc`` 0 the same command in this process (``process``: as a process of its own)."""
    if nproc or process:
        cmd = train_cmd(opts, nproc, resume, cfg)
        proc = subprocess.run(cmd, cwd=REPO, env=train_env(env), capture_output=True, text=True, timeout=timeout)
    else:
        proc = train_here(opts, resume, env, cfg)
    if check and proc.returncode != 0:
        pytest.fail(f"train.py exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def train_here(opts: list[str], resume: str | None = None, env: dict | None = None, cfg: Path = TINY_CFG) -> subprocess.CompletedProcess:
    """The train command in this process, its exit status and output as a finished process's."""
    from minigpt4.cli import train

    args = train_cmd(opts, 0, resume, cfg)[2:]  # without the interpreter and train.py
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, train_env(env), clear=True), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = train(args)
        except SystemExit as e:  # how the command ends on a NaN loss or a signal
            status = e.code
    return subprocess.CompletedProcess(["train.py", *args], status, out.getvalue(), err.getvalue())


def run_dirs(out: Path, job: str = "minigpt4_flickr_tiny") -> list[Path]:
    return sorted(p for p in (out / job).iterdir() if p.is_dir())


def epoch_records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.txt").read_text().splitlines()]


def final_weights(run_dir: Path, epoch: int) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / f"checkpoint_{epoch}.pth", weights_only=True)["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert set(a) == set(b) == TRAINABLE
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs (max abs diff {(a[k] - b[k]).abs().max().item():.3g})"


def build_runner(cfg, run_dir: Path, model=None):
    """The config's task and runner in this process (one CPU rank), around ``model`` (default: built from
    ``cfg.model``), writing to ``run_dir``."""
    import minigpt4
    from minigpt4.registry import RUNNERS, TASKS
    from minigpt4.utils import dist
    from minigpt4.utils.logging import setup_logger

    info = dist.init_distributed("cpu")
    setup_logger(0)
    task = TASKS.build(cfg.run.task, cfg.run)
    model = model if model is not None else minigpt4.build_model(cfg.model)
    return RUNNERS.build(
        cfg.run.runner, cfg, task=task, model=model, datasets=task.build_datasets(cfg.datasets), run_dir=run_dir, dist_info=info
    )
