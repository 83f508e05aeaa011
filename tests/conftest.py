"""Shared fixtures: a tiny MiniGPT-4 stack in the official file formats, and config helpers."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

import minigpt4.testing  # noqa: F401  (registers model_type tiny in this process, as custom_imports does)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from minigpt4.testing.stacks import build_tiny_stack  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def tiny_stack(tmp_path_factory) -> dict[str, str]:
    """Paths of a random tiny stack: llama_model, vit_ckpt, q_former_model, ckpt (official layouts)."""
    return build_tiny_stack(tmp_path_factory.mktemp("tiny_stack"))


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
    from minigpt4.datasets import flickr30k_prepare
    from minigpt4.quickstart import synthetic

    out = tmp_path_factory.mktemp("synthetic_flickr30k")
    assert synthetic.main(["--out", str(out), "--images", "40", "--image-size", "56"]) in (0, None)
    assert flickr30k_prepare.main(["--root", str(out)]) in (0, None)
    return out


def interrupt_when(cmd: list, log_path: Path, pattern: str, sig: int, env: dict, to_group: bool = False,
                   timeout: float = 180) -> tuple[int, str, float]:
    """Run ``cmd`` (output to ``log_path``), send ``sig`` once ``pattern`` appears in its output (to
    its whole process group with ``to_group``); returns (exit status, output, seconds it took to stop).

    SIGINT is reset to its default in the child: a shell that started the test suite in the
    background ignores it, and Python would then never see it."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
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
