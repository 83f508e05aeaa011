"""Pre-trained stand-ins for the tiny stack: a short "stage 1" on the synthetic sample.

The real frozen parts work because they were pre-trained (BLIP-2 aligned ViT and Q-Former with
language, Vicuna learned language, MiniGPT-4's stage 1 taught the LLM to read projected queries).
A random tiny stack has none of that, so a projection-only fine-tune has nothing to work with. This
helper trains the *whole* tiny stack (ViT, Q-Former, query tokens, projection, LLM) jointly with the
MiniGPT-4 sequence and loss on a caption split, then saves the frozen parts in the official formats
(LLM as a Hugging Face directory, ``eva_vit_g.pth``, ``blip2_pretrained.pth``). The stage-1 projection
is *not* kept: stage 2 starts from a fresh ``llama_proj``, as the real workflow does.

CLI: ``python -m minigpt4.models.standins --ann PATH --images DIR --out DIR [--steps N]``.
The result is cached: a second call with the same settings and data returns at once.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from PIL import Image
from tqdm import tqdm

from minigpt4.common.io import atomic_torch_save
from .tiny import build_tiny_stack, official_blip2_state, official_vit_state

log = logging.getLogger(__name__)

# Sizes of the quickstart stand-ins (model_type standin: minigpt4/configs/models/minigpt4_standin.yaml mirrors these).
STANDIN = {
    "image_size": 112,
    "num_query_token": 32,
    "vit": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
            "patch_size": 14, "initializer_range": 0.02},
    "qformer": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
                "cross_attention_frequency": 2},
    "llm": {"hidden_size": 192, "intermediate_size": 512, "num_hidden_layers": 3, "num_attention_heads": 4,
            "num_key_value_heads": 4, "max_position_embeddings": 512},
}
DONE = "standins.json"
FORMAT = 2  # bump when what train_standins writes changes, so cached stand-ins are rebuilt


def model_section(paths: dict[str, str], ckpt: str | None = None) -> dict[str, Any]:
    """The ``model`` config section that loads the stand-ins (fresh projection unless ``ckpt``)."""
    return {"arch": "minigpt4", "model_type": "standin", "llama_model": paths["llama_model"],
            "vit_ckpt": paths["vit_ckpt"], "q_former_model": paths["q_former_model"], "ckpt": ckpt}


def _load_split(ann_path: Path, image_root: Path, image_size: int) -> tuple[torch.Tensor, list[list[str]]]:
    from minigpt4.processors.image import Blip2ImageEvalProcessor

    proc = Blip2ImageEvalProcessor(image_size)
    records = json.loads(ann_path.read_text())
    images = []
    for r in tqdm(records, desc="stage 1: loading images", unit="img"):
        with Image.open(image_root / r["image"]) as im:
            images.append(proc(im))
    return torch.stack(images), [list(r["captions"]) for r in records]


def _fingerprint(ann_path: Path, settings: dict) -> str:
    h = hashlib.sha256(ann_path.read_bytes())
    h.update(json.dumps({**settings, "sizes": STANDIN, "format": FORMAT}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def train_standins(ann_path: str | Path, image_root: str | Path, out_dir: str | Path, steps: int = 600,
                   batch_size: int = 16, lr: float = 1e-3, seed: int = 0) -> dict[str, str]:
    """Run stage 1 on a caption split (``flickr30k_train.json`` layout) and save the stand-ins.

    Returns the ``model`` paths (``llama_model``, ``vit_ckpt``, ``q_former_model``). Cached in ``out_dir``.
    """
    import minigpt4

    ann_path, image_root, out = Path(ann_path), Path(image_root), Path(out_dir)
    settings = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed}
    key = _fingerprint(ann_path, settings)
    done = out / DONE
    if done.is_file() and json.loads(done.read_text()).get("fingerprint") == key:
        log.info("stand-ins in %s are up to date; reusing them", out)
        return json.loads(done.read_text())["paths"]

    images, captions = _load_split(ann_path, image_root, STANDIN["image_size"])
    corpus = [c for caps in captions for c in caps]
    with tempfile.TemporaryDirectory() as tmp:
        init = build_tiny_stack(Path(tmp) / "init", seed=seed, corpus=corpus, image_size=STANDIN["image_size"],
                                num_query_token=STANDIN["num_query_token"], vit=STANDIN["vit"],
                                qformer=STANDIN["qformer"], llm=STANDIN["llm"])
        cfg_path = Path(tmp) / "stage1.yaml"
        section = {**model_section(init), "freeze_vit": False, "freeze_qformer": False, "freeze_llm": False}
        cfg_path.write_text(OmegaConf.to_yaml({"model": section}))
        torch.manual_seed(seed)
        model = minigpt4.build_model(minigpt4.load_config(cfg_path).model)
        # Stage 1's projection must differ from the fresh one stage 2 starts from (seed 0), or the
        # ViT/Q-Former would adapt to the very projection the "untrained" baseline uses.
        model.reset_projection(seed=1_000 + seed)
        tokenizer_model = Path(init["llama_model"]) / "tokenizer.model"
        _stage1(model, images, captions, steps, batch_size, lr, seed)
        staging = out.with_name(out.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        paths = _save(model, staging, tokenizer_model)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    paths = {k: str(out / Path(v).name) for k, v in paths.items()}
    (out / DONE).write_text(json.dumps({"fingerprint": key, "settings": settings, "paths": paths}, indent=1))
    return paths


def _stage1(model, images: torch.Tensor, captions: list[list[str]], steps: int, batch_size: int, lr: float,
            seed: int) -> None:
    rng = random.Random(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    t0, ema = time.time(), None
    bar = tqdm(range(steps), desc="stage 1: joint training", unit="step")
    for step in bar:
        idx = [rng.randrange(len(captions)) for _ in range(batch_size)]
        batch = {"image": images[idx], "answer": [rng.choice(captions[i]) for i in idx],
                 "instruction_input": [rng.choice(model.instructions) for _ in idx]}
        loss = model(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        bar.set_postfix(loss=f"{ema:.3f}")
    log.info("stage 1: %d steps in %.0f s, final loss %.3f", steps, time.time() - t0, ema)
    model.eval()


def _save(model, out: Path, tokenizer_model: Path) -> dict[str, str]:
    out.mkdir(parents=True)
    llama = out / "llama"
    model.llama_model.save_pretrained(llama)
    model.llama_tokenizer.save_pretrained(llama)
    shutil.copy(tokenizer_model, llama / "tokenizer.model")
    eva, ln_vision = official_vit_state(model.visual_encoder)
    atomic_torch_save(eva, out / "eva_vit_g.pth")
    atomic_torch_save(official_blip2_state(model.qformer, model.query_tokens, ln_vision), out / "blip2_pretrained.pth")
    # Stage 1's own projection, in the MiniGPT-4 checkpoint layout: a reference point, not used by stage 2.
    atomic_torch_save({"model": {k: v for k, v in model.trainable_state_dict().items() if k.startswith("llama_proj.")}},
                out / "stage1_llama_proj.pth")
    return {"llama_model": str(llama), "vit_ckpt": str(out / "eva_vit_g.pth"),
            "q_former_model": str(out / "blip2_pretrained.pth"), "stage1_ckpt": str(out / "stage1_llama_proj.pth")}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Stage 1 for the tiny stand-ins (joint training, official formats).")
    ap.add_argument("--ann", required=True, help="training annotations (flickr30k_train.json layout)")
    ap.add_argument("--images", required=True, help="image folder")
    ap.add_argument("--out", required=True, help="output folder for the stand-ins")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = train_standins(args.ann, args.images, args.out, args.steps, args.batch_size, args.lr, args.seed)
    for key in ("llama_model", "vit_ckpt", "q_former_model"):
        print(f"model.{key}={paths[key]}")
    print(f"stage-1 projection (reference only): {paths['stage1_ckpt']}")


if __name__ == "__main__":
    main()
