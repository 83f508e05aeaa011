"""Shared fixtures: a tiny MiniGPT-4 stack in the official file formats, and config helpers."""
from __future__ import annotations

import os
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
