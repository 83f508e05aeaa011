"""Shared fixtures and helpers: a tiny MiniGPT-4 stack in the official file formats, the synthetic
Flickr30k sample, the evaluation stand-ins, config, subprocess and signal helpers."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import minigpt4.testing  # noqa: F401  (registers model_type tiny in this process, as custom_imports does)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MINIGPT4_IGNORE_SLURM", "1")  # a suite run inside a SLURM allocation stays one process

from minigpt4.cli import evaluate as eval_main  # noqa: E402
from minigpt4.testing.stacks import build_tiny_stack  # noqa: E402
from minigpt4.testing.tasks import NAN_STEP_ENV  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TINY_CFG = REPO / "train_configs" / "minigpt4_flickr_tiny.yaml"


@pytest.fixture(autouse=True)
def _minigpt4_logs_reach_caplog(monkeypatch):
    """``setup_logger`` (run in-process by an earlier test) stops the minigpt4 logger's propagation;
    each test starts with it on, so ``caplog`` sees the project's log records."""
    monkeypatch.setattr(logging.getLogger("minigpt4"), "propagate", True)


@pytest.fixture(scope="session")
def tiny_stack(tmp_path_factory) -> dict[str, str]:
    """Paths of a random tiny stack: llama_model, vit_ckpt, q_former_model, ckpt (official layouts)."""
    return build_tiny_stack(tmp_path_factory.mktemp("tiny_stack"))


@pytest.fixture(scope="session")
def tiny_llama2_stack(tmp_path_factory) -> dict[str, str]:
    """A random tiny stack of the Llama-2 variant (no BLIP-2 file): llama_model, vit_ckpt, ckpt."""
    return build_tiny_stack(tmp_path_factory.mktemp("tiny_llama2_stack"), has_qformer=False)


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


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tiny_model_section(stack: dict[str, str], **overrides) -> dict:
    """A ``model`` config section for the tiny stack."""
    return {"arch": "minigpt4", "model_type": "tiny", **stack, **overrides}


@pytest.fixture()
def tiny_cfg_path(tmp_path, tiny_stack) -> Path:
    """A minimal valid config file for the tiny model."""
    return write_yaml(tmp_path / "tiny.yaml", {"model": tiny_model_section(tiny_stack)})


@pytest.fixture(scope="session")
def synthetic_flickr(tmp_path_factory) -> Path:
    """40 synthetic 56-px images (32 train) with Flickr30k-style split files."""
    from minigpt4.commands import prepare
    from minigpt4.quickstart import synthetic

    out = tmp_path_factory.mktemp("synthetic_flickr30k")
    assert synthetic.main(["--out", str(out), "--images", "40", "--image-size", "56"]) in (0, None)
    assert prepare.main(["--root", str(out)]) in (0, None)
    return out


def interrupt_when(
    cmd: list, log_path: Path, pattern: str, sig: int, env: dict, to_group: bool = False, timeout: float = 180
) -> tuple[int, str, float]:
    """Run ``cmd`` (output to ``log_path``), send ``sig`` once ``pattern`` appears in its output (to
    its whole process group with ``to_group``); returns (exit status, output, seconds it took to stop).

    SIGINT is reset to its default in the child: a shell that started the test suite in the
    background ignores it, and Python would then never see it."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            deadline = time.time() + timeout
            while not re.search(pattern, log_path.read_text()):
                assert proc.poll() is None, f"{cmd[:4]} ended early:\n{log_path.read_text()[-3000:]}"
                assert time.time() < deadline, f"{pattern!r} never appeared:\n{log_path.read_text()[-3000:]}"
                time.sleep(0.02)
            os.killpg(proc.pid, sig) if to_group else proc.send_signal(sig)
            sent = time.time()
            rc = proc.wait(timeout=90)
            return rc, log_path.read_text(), time.time() - sent
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)


# ---- training runs (tests/test_train_*.py) ----------------------------------------------
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
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop(NAN_STEP_ENV, None)
    return {**env, **(extra or {})}


def train_cmd(opts: list[str], nproc: int = 0, resume: str | None = None) -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"] if nproc else [sys.executable]
    cmd = launcher + ["train.py", "--cfg-path", str(TINY_CFG), "--options", *opts]
    return cmd + (["--resume", resume] if resume else [])


def run_train(
    opts: list[str], nproc: int = 0, resume: str | None = None, env: dict | None = None, check: bool = True, timeout: int = 240
) -> subprocess.CompletedProcess:
    proc = subprocess.run(train_cmd(opts, nproc, resume), cwd=REPO, env=train_env(env), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"train.py exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def run_dirs(out: Path, job: str = "minigpt4_flickr_tiny") -> list[Path]:
    return sorted(p for p in (out / job).iterdir() if p.is_dir())


def epoch_records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.txt").read_text().splitlines()]


# ---- evaluation (tests/test_evaluate*.py) ----------------------------------------------
def subprocess_env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_ok(cmd: list[str], cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def adapted_lora_checkpoint(model_section: dict, cfg_path: Path, ckpt_path: Path):
    """A LoRA model (``model_section`` has ``lora``) with moved adapters and projection: its config is
    written to ``cfg_path``, its trainable state to ``ckpt_path`` (epoch 3); returns it in eval mode."""
    import minigpt4
    from minigpt4.config import load_model_config

    write_yaml(cfg_path, {"custom_imports": ["minigpt4.testing"], "model": {**model_section, "ckpt": None}})
    model = minigpt4.build_model(load_model_config(cfg_path))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * (0.5 if ".lora_" in name else 0.05))
    torch.save({"model": model.trainable_state_dict(), "epoch": 3}, ckpt_path)
    return model.eval()


def write_ckpt(path: Path, base: dict, epoch: int, scale: float) -> Path:
    """A checkpoint in the runner's format (trainable params only under "model"), near ``base``."""
    g = torch.Generator().manual_seed(epoch)
    model = {k: v + scale * torch.randn(v.shape, generator=g) for k, v in base.items()}
    torch.save({"model": model, "epoch": epoch, "global_step": 10 * (epoch + 1)}, path)
    return path


def eval_outputs(save: Path, name: str) -> tuple[list, dict]:
    return (json.loads((save / name / "captions.json").read_text()), json.loads((save / name / "metrics.json").read_text()))


def eval_fails(args: list[str], capsys) -> str:
    assert eval_main([str(a) for a in args]) == 2
    return capsys.readouterr().err


@pytest.fixture(scope="session")
def standin_eval(tmp_path_factory) -> dict:
    """Synthetic 112-px Flickr30k sample (10 test images), stand-ins after a short stage 1 (long enough for
    image-dependent captions), an eval config."""
    from minigpt4.datasets import flickr30k_prepare
    from minigpt4.quickstart import synthetic
    from minigpt4.quickstart.standins import STANDIN, model_section, train_standins

    root = tmp_path_factory.mktemp("eval_e2e")
    data = root / "data"
    synthetic.make_synthetic_flickr30k(data, 100, seed=0, image_size=112)
    flickr30k_prepare.prepare_flickr30k(data)
    paths = train_standins(
        data / "flickr30k_train.json",
        data / "flickr30k-images",
        root / "standins",
        steps=150,
        vision_steps=300,
        vision_batch_size=16,
        vision_lr=1e-3,
    )  # a quarter of the default's
    # stage-0 samples: captions no better for these tests with more
    stage1 = paths["stage1_ckpt"]
    cfg = {
        "custom_imports": ["minigpt4.quickstart"],
        "model": model_section(paths, ckpt=stage1),
        "evaluation_datasets": {
            "flickr30k_eval": {
                "build_info": {"ann_path": str(data), "image_path": str(data / "flickr30k-images")},
                "vis_processor": {"eval": {"name": "blip2_image_eval", "image_size": STANDIN["image_size"]}},
            }
        },
        "run": {
            "device": "cpu",
            "batch_size_eval": 4,
            "max_new_tokens": 16,
            "num_workers": 0,
            "feature_cache": str(root / "feature_cache"),
        },
    }
    cfg_path = root / "eval.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    base = torch.load(stage1, weights_only=True)["model"]
    base = {k: v for k, v in base.items() if k.startswith("llama_proj.")}
    return {"root": root, "data": data, "cfg": cfg_path, "cfg_dict": cfg, "base": base}
