"""Chat and demo tests: an evaluation config for a tiny stack and a run folder of checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.helpers.configs import tiny_model_section, write_yaml
from tests.helpers.evaluation import write_ckpt
from tests.helpers.paths import DATA

PHOTOS = [DATA / "flickr_1000268201.jpg", DATA / "flickr_1002674143.jpg"]


def chat_config(root: Path, stack: dict[str, str], model_type: str = "tiny", **run) -> Path:
    """An evaluation config of the tiny stack (its image processor is the chat's), CPU, ``run`` keys added."""
    root.mkdir(parents=True, exist_ok=True)
    ann = root / "ann.json"
    ann.write_text(json.dumps([{"image": p.name, "image_id": p.stem, "captions": ["a photo"]} for p in PHOTOS]))
    return write_yaml(
        root / f"chat_{model_type}.yaml",
        {
            "custom_imports": ["minigpt4.testing"],
            "model": tiny_model_section(stack, model_type=model_type),
            "evaluation_datasets": {
                "flickr30k_eval": {
                    "build_info": {"ann_path": str(ann), "image_path": str(DATA)},
                    "vis_processor": {"eval": {"name": "blip2_image_eval", "image_size": 56}},
                }
            },
            "run": {"device": "cpu", "num_workers": 0, **run},
        },
    )


def run_folder(root: Path, stack: dict[str, str], epochs: int = 2, scale: float = 0.5) -> Path:
    """``root/run`` with ``checkpoint_<e>.pth`` files near the stack's projection, far enough apart that
    their answers differ."""
    run = root / "run"
    run.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in torch.load(stack["ckpt"], weights_only=True)["model"].items() if k.startswith("llama_proj.")}
    for epoch in range(epochs):
        write_ckpt(run / f"checkpoint_{epoch}.pth", base, epoch, scale)
    return run
