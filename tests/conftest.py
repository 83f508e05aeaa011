"""Fixtures and hooks shared by the whole suite: a tiny MiniGPT-4 stack in the official file formats,
the synthetic Flickr30k sample, the evaluation stand-ins. Helper functions live in ``tests.helpers``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

import minigpt4.testing  # noqa: F401  (registers model_type tiny in this process, as custom_imports does)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MINIGPT4_IGNORE_SLURM", "1")  # a suite run inside a SLURM allocation stays one process
# One intra-op thread in this process and every process a test starts: the tiny models gain nothing from
# more, and with `pytest -n 2` on 2 cores spinning OpenMP threads of several processes would fight.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)

from minigpt4.testing.stacks import build_tiny_stack  # noqa: E402
from tests.helpers.configs import tiny_model_section, write_yaml  # noqa: E402
from tests.helpers.evaluation import build_standin_files, standin_eval_setup  # noqa: E402
from tests.helpers.shared import built_once  # noqa: E402


@pytest.fixture(autouse=True)
def _minigpt4_logs_reach_caplog(monkeypatch):
    """``setup_logger`` (run in-process by an earlier test) stops the minigpt4 logger's propagation;
    each test starts with it on, so ``caplog`` sees the project's log records."""
    monkeypatch.setattr(logging.getLogger("minigpt4"), "propagate", True)


@pytest.fixture(scope="session")
def tiny_stack(tmp_path_factory) -> dict[str, str]:
    """Paths of a random tiny stack: llama_model, vit_ckpt, q_former_model, ckpt (official layouts)."""
    return built_once(tmp_path_factory, "tiny_stack", build_tiny_stack)


@pytest.fixture(scope="session")
def tiny_llama2_stack(tmp_path_factory) -> dict[str, str]:
    """A random tiny stack of the Llama-2 variant (no BLIP-2 file): llama_model, vit_ckpt, ckpt."""
    return built_once(tmp_path_factory, "tiny_llama2_stack", lambda out: build_tiny_stack(out, has_qformer=False))


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


@pytest.fixture(scope="session")
def standin_eval(tmp_path_factory) -> dict:
    """Synthetic 112-px Flickr30k sample (10 test images), stand-ins after a short stage 1 (long enough for
    image-dependent captions), an eval config: root, data, cfg (path), cfg_dict, base (llama_proj)."""
    files = built_once(tmp_path_factory, "standin_files", build_standin_files)
    return standin_eval_setup(files, tmp_path_factory.mktemp("eval_e2e"))
