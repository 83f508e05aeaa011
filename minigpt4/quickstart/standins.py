"""Pre-trained stand-ins for the tiny stack: a short "stage 1" on the synthetic sample.

The real frozen parts work because they were pre-trained (BLIP-2 aligned ViT and Q-Former with
language, Vicuna learned language, MiniGPT-4's stage 1 taught the LLM to read projected queries).
A random tiny stack has none of that, so a projection-only fine-tune has nothing to work with. This
helper gives the tiny stack the same history on a caption split, in two steps:

- stage 0, vision pre-training (the real EVA ViT was pre-trained on image-text pairs before BLIP-2
  froze it): the ViT alone learns to predict which words an image's captions use;
- stage 1, with the ViT frozen as in BLIP-2 and MiniGPT-4: Q-Former, query tokens, projection and LLM
  train jointly with the MiniGPT-4 sequence and loss.

It then saves the frozen parts in the official formats (LLM as a Hugging Face directory,
``eva_vit_g.pth``, ``blip2_pretrained.pth``). The stage-1 projection is *not* kept: stage 2 starts
from a fresh ``llama_proj``, as the real workflow does.

CLI: ``python -m minigpt4.quickstart.standins --ann PATH --images DIR --out DIR [--steps N] [--vision-steps N]``.
The result is cached: a second call with the same settings and data returns at once.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from PIL import Image

from minigpt4.config import load_config
from minigpt4.config.loading import resolve_path
from minigpt4.errors import run_command
from minigpt4.models.schema import MODEL_SCHEMA
from minigpt4.processors.image import Blip2ImageEvalProcessor
from minigpt4.registry import MODELS
from minigpt4.testing.stacks import build_tiny_stack, official_blip2_state, official_vit_state
from minigpt4.utils.io import atomic_torch_save
from minigpt4.utils.progress import progress, quiet_library_bars
from minigpt4.utils.prompt import load_instructions

log = logging.getLogger(__name__)

# Sizes of the quickstart stand-ins (model_type standin: minigpt4/quickstart/minigpt4_standin.yaml mirrors these).
# Patch 28 (a 4x4 grid at 112 px): a 2-layer ViT learns the synthetic shapes from it in a few
# thousand steps; with patch 14 it stayed near chance as long.
STANDIN = {
    "image_size": 112,
    "num_query_token": 32,
    "vit": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
            "patch_size": 28, "initializer_range": 0.02},
    "qformer": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
                "cross_attention_frequency": 2},
    "llm": {"hidden_size": 192, "intermediate_size": 512, "num_hidden_layers": 3, "num_attention_heads": 4,
            "num_key_value_heads": 4, "max_position_embeddings": 512},
    # Trained on the captions and the instructions: an instruction is ~10 pieces instead of ~35 (with
    # 400 pieces it was spelled out letter by letter), so every sequence is ~40% shorter.
    "tokenizer_vocab": 600,
}
INSTRUCTION_WEIGHT = 20  # how many times the instruction lines enter the tokenizer's corpus
DONE = "standins.json"
FORMAT = 4  # bump when what train_standins writes changes, so cached stand-ins are rebuilt


def model_section(paths: dict[str, str], ckpt: str | None = None) -> dict[str, Any]:
    """The ``model`` config section that loads the stand-ins (fresh projection unless ``ckpt``)."""
    return {"arch": "minigpt4", "model_type": "standin", "llama_model": paths["llama_model"],
            "vit_ckpt": paths["vit_ckpt"], "q_former_model": paths["q_former_model"], "ckpt": ckpt}


def _load_split(ann_path: Path, image_root: Path, image_size: int) -> tuple[torch.Tensor, list[list[str]]]:
    proc = Blip2ImageEvalProcessor(image_size)
    records = json.loads(ann_path.read_text())
    images = []
    for r in progress(records, desc="stage 1: loading images", unit="img"):
        with Image.open(image_root / r["image"]) as im:
            images.append(proc(im))
    return torch.stack(images), [list(r["captions"]) for r in records]


def _fingerprint(ann_path: Path, settings: dict) -> str:
    h = hashlib.sha256(ann_path.read_bytes())
    h.update(json.dumps({**settings, "sizes": STANDIN, "format": FORMAT}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def train_standins(ann_path: str | Path, image_root: str | Path, out_dir: str | Path, steps: int = 400,
                   batch_size: int = 16, lr: float = 1e-3, seed: int = 0, vision_steps: int = 1000,
                   vision_batch_size: int = 64, vision_lr: float = 2e-3) -> dict[str, str]:
    """Run stage 0 (``vision_steps``) and stage 1 (``steps``) on a caption split (``flickr30k_train.json``
    layout) and save the stand-ins.

    Returns the ``model`` paths (``llama_model``, ``vit_ckpt``, ``q_former_model``, ``stage1_ckpt``).
    Cached in ``out_dir``.
    """
    if steps < 1 or vision_steps < 0:
        raise ValueError(f"need steps >= 1 and vision_steps >= 0, got steps={steps}, vision_steps={vision_steps}")
    ann_path, image_root, out = Path(ann_path), Path(image_root), Path(out_dir)
    settings = {"steps": steps, "vision_steps": vision_steps, "batch_size": batch_size, "lr": lr, "seed": seed,
                "vision_batch_size": vision_batch_size, "vision_lr": vision_lr}
    key = _fingerprint(ann_path, settings)
    done = out / DONE
    if done.is_file() and json.loads(done.read_text()).get("fingerprint") == key:
        log.info("stand-ins in %s are up to date; reusing them", out)
        return json.loads(done.read_text())["paths"]

    images, captions = _load_split(ann_path, image_root, STANDIN["image_size"])
    instructions = load_instructions(resolve_path(MODEL_SCHEMA["prompt_path"].default))
    corpus = [c for caps in captions for c in caps] + instructions * INSTRUCTION_WEIGHT
    with tempfile.TemporaryDirectory() as tmp:
        init = build_tiny_stack(Path(tmp) / "init", seed=seed, corpus=corpus, image_size=STANDIN["image_size"],
                                num_query_token=STANDIN["num_query_token"], vit=STANDIN["vit"],
                                qformer=STANDIN["qformer"], llm=STANDIN["llm"],
                                tokenizer_vocab=STANDIN["tokenizer_vocab"])
        cfg_path = Path(tmp) / "stage1.yaml"
        section = {**model_section(init), "freeze_vit": False, "freeze_qformer": False, "freeze_llm": False,
                   "image_size": STANDIN["image_size"], "num_query_token": STANDIN["num_query_token"],
                   "vit_config": STANDIN["vit"], "qformer_config": STANDIN["qformer"]}
        cfg_path.write_text(OmegaConf.to_yaml({"custom_imports": ["minigpt4.quickstart"], "model": section}))
        torch.manual_seed(seed)
        model_cfg = load_config(cfg_path).model
        model = MODELS.build(model_cfg.arch, model_cfg)
        # Stage 1's projection must differ from the fresh one stage 2 starts from (seed 0), or the
        # ViT/Q-Former would adapt to the very projection the "untrained" baseline uses.
        model.reset_projection(seed=1_000 + seed)
        tokenizer_model = Path(init["llama_model"]) / "tokenizer.model"
        if vision_steps:
            pretrain_vision(model.visual_encoder, images, captions, vision_steps, vision_batch_size, vision_lr, seed)
        model.freeze("visual_encoder")
        _stage1(model, images, captions, steps, batch_size, lr, seed)
        staging = out.with_name(out.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        paths = _save(model, staging, tokenizer_model)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    paths = {k: str(out / Path(v).name) for k, v in paths.items()}
    (out / DONE).write_text(json.dumps({"fingerprint": key, "settings": settings, "paths": paths}, indent=1))
    return paths


def caption_word_targets(captions: list[list[str]]) -> tuple[list[str], torch.Tensor]:
    """The words of all captions (lower case, letters only) and, per image, the share of its captions
    that use each word: the soft multi-label targets of stage 0."""
    words = [[set(re.findall(r"[a-z]+", c.lower())) for c in caps] for caps in captions]
    vocab = sorted(set().union(*(w for ws in words for w in ws)))
    index = {w: i for i, w in enumerate(vocab)}
    targets = torch.zeros(len(captions), len(vocab))
    for i, ws in enumerate(words):
        for caption_words in ws:
            for w in caption_words:
                targets[i, index[w]] += 1 / len(ws)
    return vocab, targets


def _fit(params: list[torch.nn.Parameter], step_loss, steps: int, lr: float, desc: str) -> float:
    """AdamW + one-cycle schedule, grad clip 1.0, for ``steps`` calls of ``step_loss()``; returns the
    final smoothed loss."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    t0, ema = time.time(), None
    bar = progress(range(steps), desc=desc, unit="step")
    for _ in bar:
        loss = step_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        bar.set_postfix(loss=f"{ema:.4f}")
    log.info("%s: %d steps in %.0f s, final loss %.4f", desc, steps, time.time() - t0, ema)
    return ema


def pretrain_vision(vit: torch.nn.Module, images: torch.Tensor, captions: list[list[str]], steps: int,
                    batch_size: int = 16, lr: float = 1e-3, seed: int = 0) -> float:
    """Stage 0: train the ViT alone, with a throw-away linear head on its mean output token, to predict
    which caption words fit each image (binary cross-entropy on ``caption_word_targets``). Returns the
    final smoothed loss. Without it the caption loss of stage 1 teaches a tiny ViT colours but not shapes."""
    vocab, targets = caption_word_targets(captions)
    head = torch.nn.Linear(vit.config.hidden_size, len(vocab))
    rng = random.Random(f"vision/{seed}")

    def step_loss() -> torch.Tensor:
        idx = [rng.randrange(len(captions)) for _ in range(batch_size)]
        logits = head(vit(pixel_values=images[idx]).last_hidden_state.mean(1))
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets[idx])

    vit.train()
    params = [p for p in vit.parameters() if p.requires_grad] + list(head.parameters())
    loss = _fit(params, step_loss, steps, lr, "stage 0: vision pre-training")
    vit.eval()
    return loss


def _stage1(model, images: torch.Tensor, captions: list[list[str]], steps: int, batch_size: int, lr: float,
            seed: int) -> None:
    rng = random.Random(seed)
    with torch.no_grad():  # the ViT is frozen here: its output is computed once, as the feature cache does
        vit_out = torch.cat([model.frozen_features(images[i:i + 256], "vit") for i in range(0, len(images), 256)])

    def step_loss() -> torch.Tensor:
        idx = [rng.randrange(len(captions)) for _ in range(batch_size)]
        batch = {"features": vit_out[idx], "feature_cut": "vit", "answer": [rng.choice(captions[i]) for i in idx],
                 "instruction_input": [rng.choice(model.instructions) for _ in idx]}
        return model(batch)["loss"]

    model.train()
    _fit([p for p in model.parameters() if p.requires_grad], step_loss, steps, lr, "stage 1: joint training")
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
    ap = argparse.ArgumentParser(description="Pre-trained tiny stand-ins: stage 0 (vision) and stage 1 (joint), "
                                             "saved in the official formats.")
    ap.add_argument("--ann", required=True, help="training annotations (flickr30k_train.json layout)")
    ap.add_argument("--images", required=True, help="image folder")
    ap.add_argument("--out", required=True, help="output folder for the stand-ins")
    ap.add_argument("--steps", type=int, default=400, help="stage-1 steps (joint training, ViT frozen)")
    ap.add_argument("--vision-steps", type=int, default=1000, help="stage-0 steps (ViT pre-training; 0 skips it)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--vision-batch-size", type=int, default=64, help="stage-0 batch size")
    ap.add_argument("--vision-lr", type=float, default=2e-3, help="stage-0 peak learning rate")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_library_bars()
    if args.steps < 1 or args.vision_steps < 0:
        ap.error(f"need --steps >= 1 and --vision-steps >= 0, got {args.steps} and {args.vision_steps}")
    paths = train_standins(args.ann, args.images, args.out, args.steps, args.batch_size, args.lr, args.seed,
                           args.vision_steps, args.vision_batch_size, args.vision_lr)
    for key in ("llama_model", "vit_ckpt", "q_former_model"):
        print(f"model.{key}={paths[key]}")
    print(f"stage-1 projection (reference only): {paths['stage1_ckpt']}")


if __name__ == "__main__":
    raise SystemExit(run_command(main))
