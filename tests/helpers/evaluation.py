"""Evaluation: checkpoints near a base projection, the job's outputs, metrics.json / captions.json as
the job writes them, and the stand-ins' evaluation setup (the ``standin_eval`` fixture's)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from minigpt4.cli import evaluate as eval_main
from minigpt4.evaluation import METRICS
from tests.helpers.configs import write_yaml


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


def build_standin_files(root: Path) -> dict[str, str]:
    """Synthetic 112-px Flickr30k sample under ``root/data`` (10 test images) and stand-ins after a short
    stage 1 (long enough for image-dependent captions): the data folder and the stand-ins' paths."""
    from minigpt4.datasets import flickr30k_prepare
    from minigpt4.quickstart import synthetic
    from minigpt4.quickstart.standins import train_standins

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
    )  # a quarter of the default's stage-0 samples: captions no better for these tests with more
    return {**paths, "data": str(data)}


def standin_eval_setup(files: dict[str, str], root: Path) -> dict:
    """An eval config over ``build_standin_files``' output, with its own feature cache under ``root``:
    root, data, cfg (path), cfg_dict, base (llama_proj of the stand-ins' stage 1)."""
    from minigpt4.quickstart.standins import STANDIN, model_section

    data = Path(files["data"])
    stage1 = files["stage1_ckpt"]
    cfg = {
        "custom_imports": ["minigpt4.quickstart"],
        "model": model_section(files, ckpt=stage1),
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


# ---- result files as the evaluation job writes them (for the summary, report and check) ----
def write_metrics(
    eval_dir: Path,
    name: str,
    epoch: int | None,
    scores: dict,
    limit: int | None = None,
    settings: str = "s1",
    dataset: str = "flickr30k_eval",
) -> Path:
    """A metrics.json in the layout the evaluation job writes (the fields the summary reads)."""
    path = eval_dir / name / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "name": name,
                "epoch": epoch,
                "dataset": dataset,
                "split": "test",
                "num_images": 6 if limit is None else limit,
                "limit": limit,
                "scores": scores,
                "fingerprint": {"settings_digest": settings},
            }
        )
    )
    return path


def scores_for(i: int) -> dict:
    return {m: round(0.1 * (i + 1) + 0.01 * j, 4) for j, m in enumerate(METRICS)}


def make_run(tmp_path: Path, epochs=(0, 1, 2, 10)) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    for e in epochs:
        (run / f"checkpoint_{e}.pth").write_bytes(b"x")
    (run / "checkpoint_latest.pth").write_bytes(b"x")  # not an epoch checkpoint
    (run / "log.txt").write_text("")
    return run


def write_captions(eval_dir: Path, name: str, captions: list[str], references: list[list[str]]) -> Path:
    """A captions.json in the layout the evaluation job writes (caption and references per image)."""
    path = eval_dir / name / "captions.json"
    path.write_text(
        json.dumps(
            [{"image_id": str(i), "image": f"{i}.jpg", "caption": c, "references": r} for i, (c, r) in enumerate(zip(captions, references))]
        )
    )
    return path
