"""Building the quickstart's stand-ins (``minigpt4.quickstart.standins`` decides when): stage 0 (the
ViT alone on caption words), stage 1 (Q-Former, queries, projection and LLM jointly, ViT frozen) and the
files in the official formats. Heavy (torch, the model), so it is imported only when stand-ins are built.
"""

from __future__ import annotations

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
from minigpt4.models.schema import MODEL_SCHEMA
from minigpt4.processors.base import build_processor
from minigpt4.processors.image import Blip2ImageEvalProcessor
from minigpt4.registry import MODELS
from minigpt4.testing.stacks import build_tiny_stack, official_blip2_state, official_vit_state
from minigpt4.utils.io import atomic_torch_save
from minigpt4.utils.progress import progress
from minigpt4.utils.prompt import load_instructions

from .standins import INSTRUCTION_WEIGHT, STANDIN, model_section

log = logging.getLogger(__name__)


def build_standins(ann_path: Path, image_root: Path, staging: Path, settings: dict[str, Any]) -> dict[str, str]:
    """Train the stand-ins on ``ann_path`` with ``settings`` (``train_standins``' arguments) and save them
    into the new folder ``staging``; returns their paths there."""
    steps, batch_size, lr, seed = settings["steps"], settings["batch_size"], settings["lr"], settings["seed"]
    vision_steps, vision_batch_size, vision_lr = (settings["vision_steps"], settings["vision_batch_size"], settings["vision_lr"])
    text = build_processor({"name": settings["text_processor"]}, "--text-processor")
    images, captions = _load_split(ann_path, image_root, STANDIN["image_size"])
    captions = [[text(c) for c in caps] for caps in captions]  # as stage 2 will read them
    instructions = load_instructions(resolve_path(MODEL_SCHEMA["prompt_path"].default))
    corpus = [c for caps in captions for c in caps] + instructions * INSTRUCTION_WEIGHT
    with tempfile.TemporaryDirectory() as tmp:
        init = build_tiny_stack(
            Path(tmp) / "init",
            seed=seed,
            corpus=corpus,
            image_size=STANDIN["image_size"],
            num_query_token=STANDIN["num_query_token"],
            vit=STANDIN["vit"],
            qformer=STANDIN["qformer"],
            llm=STANDIN["llm"],
            tokenizer_vocab=STANDIN["tokenizer_vocab"],
        )
        cfg_path = Path(tmp) / "stage1.yaml"
        section = {
            **model_section(init),
            "freeze_vit": False,
            "freeze_qformer": False,
            "freeze_llm": False,
            "image_size": STANDIN["image_size"],
            "num_query_token": STANDIN["num_query_token"],
            "vit_config": STANDIN["vit"],
            "qformer_config": STANDIN["qformer"],
        }
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
        return _save(model, staging, tokenizer_model)


def _load_split(ann_path: Path, image_root: Path, image_size: int) -> tuple[torch.Tensor, list[list[str]]]:
    proc = Blip2ImageEvalProcessor(image_size)
    records = json.loads(ann_path.read_text())
    images = []
    for r in progress(records, desc="stage 1: loading images", unit="img"):
        with Image.open(image_root / r["image"]) as im:
            images.append(proc(im))
    return torch.stack(images), [list(r["captions"]) for r in records]


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
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)  # one kernel per tensor: 6-8% faster steps
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


def pretrain_vision(
    vit: torch.nn.Module, images: torch.Tensor, captions: list[list[str]], steps: int, batch_size: int = 16, lr: float = 1e-3, seed: int = 0
) -> float:
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


def _stage1(model, images: torch.Tensor, captions: list[list[str]], steps: int, batch_size: int, lr: float, seed: int) -> None:
    rng = random.Random(seed)
    with torch.no_grad():  # the ViT is frozen here: its output is computed once, as the feature cache does
        vit_out = torch.cat([model.frozen_features(images[i : i + 256], "vit") for i in range(0, len(images), 256)])

    def step_loss() -> torch.Tensor:
        idx = [rng.randrange(len(captions)) for _ in range(batch_size)]
        batch = {
            "features": vit_out[idx],
            "feature_cut": "vit",
            "answer": [rng.choice(captions[i]) for i in idx],
            "instruction_input": [rng.choice(model.instructions) for _ in idx],
        }
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
    atomic_torch_save(
        {"model": {k: v for k, v in model.trainable_state_dict().items() if k.startswith("llama_proj.")}}, out / "stage1_llama_proj.pth"
    )
    return {
        "llama_model": str(llama),
        "vit_ckpt": str(out / "eva_vit_g.pth"),
        "q_former_model": str(out / "blip2_pretrained.pth"),
        "stage1_ckpt": str(out / "stage1_llama_proj.pth"),
    }
