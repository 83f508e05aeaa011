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
The result is cached: a second call with the same settings and data returns at once, without
importing torch (the training itself is ``standin_training``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from minigpt4.errors import run_command
from minigpt4.utils.progress import quiet_library_bars
from minigpt4.utils.prompt import STAGE2_TEXT

log = logging.getLogger(__name__)

# Sizes of the quickstart stand-ins (model_type standin: minigpt4/quickstart/minigpt4_standin.yaml mirrors these).
# A 4x4 patch grid: a 2-layer ViT learns the synthetic shapes from it in a thousand stage-0 steps (with
# 8x8 patches it stayed near chance as long). At 56 px (patch 14; the 112-px images are resized by the
# processor) stage 0 is 4x cheaper in its patch embedding than at 112 px (patch 28) and learns shapes at
# least as well: after stage 0 of 1000 steps of 32 (and stage 1 of 400), stage 2 named shapes right for
# 95-98% of the test images at 56 px, 76% at 112 px.
STANDIN = {
    "image_size": 56,
    "num_query_token": 16,  # 32 in the real model; 16 cover the ViT's 17 tokens and make stage 1 25% cheaper
    "vit": {
        "hidden_size": 128,
        "intermediate_size": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "patch_size": 14,
        "initializer_range": 0.02,
    },
    "qformer": {
        "hidden_size": 128,
        "intermediate_size": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "cross_attention_frequency": 2,
    },
    "llm": {
        "hidden_size": 192,
        "intermediate_size": 512,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 512,
    },
    # Trained on the captions and the instructions: an instruction is ~10 pieces instead of ~35 (with
    # 400 pieces it was spelled out letter by letter), so every sequence is ~40% shorter.
    "tokenizer_vocab": 600,
}
# Stage 1 writes the captions as the quickstart's fine-tune reads them (flickr30k_caption's default text
# processor: lower case, no final period). Trained on the captions as written, the frozen LLM wrote
# "A red circle." while stage 2 asked for "a red circle": the fresh projection then spent its few steps
# bending the style through the image tokens, and colours were named right for 74-91% of the test images
# instead of 90-99%.
TEXT_PROCESSOR = "blip_caption"
# The default recipe (train_standins' arguments and the CLI's flags; quickstart.sh passes the steps).
RECIPE = {"steps": 300, "batch_size": 16, "lr": 1e-3, "vision_steps": 1000, "vision_batch_size": 32, "vision_lr": 2e-3}
INSTRUCTION_WEIGHT = 20  # how many times the instruction lines enter the tokenizer's corpus
DONE = "standins.json"
FORMAT = 5  # bump when what train_standins writes changes, so cached stand-ins are rebuilt


def model_section(paths: dict[str, str], ckpt: str | None = None) -> dict[str, Any]:
    """The ``model`` config section that loads the stand-ins (fresh projection unless ``ckpt``)."""
    return {
        "arch": "minigpt4",
        "model_type": "standin",
        "llama_model": paths["llama_model"],
        "vit_ckpt": paths["vit_ckpt"],
        "q_former_model": paths["q_former_model"],
        "ckpt": ckpt,
        **STAGE2_TEXT["vicuna0"],  # the stand-ins are a stage-2 (Vicuna template) setup
    }


def _fingerprint(ann_path: Path, settings: dict) -> str:
    h = hashlib.sha256(ann_path.read_bytes())
    h.update(json.dumps({**settings, "sizes": STANDIN, "format": FORMAT}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def train_standins(
    ann_path: str | Path,
    image_root: str | Path,
    out_dir: str | Path,
    steps: int = RECIPE["steps"],
    batch_size: int = RECIPE["batch_size"],
    lr: float = RECIPE["lr"],
    seed: int = 0,
    vision_steps: int = RECIPE["vision_steps"],
    vision_batch_size: int = RECIPE["vision_batch_size"],
    vision_lr: float = RECIPE["vision_lr"],
    text_processor: str = TEXT_PROCESSOR,
) -> dict[str, str]:
    """Run stage 0 (``vision_steps``) and stage 1 (``steps``) on a caption split (``flickr30k_train.json``
    layout) and save the stand-ins. Stage 1 answers with the captions as ``text_processor`` gives them:
    the fine-tune's text processor, so that the LLM already writes what stage 2 trains on.

    Returns the ``model`` paths (``llama_model``, ``vit_ckpt``, ``q_former_model``, ``stage1_ckpt``).
    Cached in ``out_dir``.
    """
    if steps < 1 or vision_steps < 0:
        raise ValueError(f"need steps >= 1 and vision_steps >= 0, got steps={steps}, vision_steps={vision_steps}")
    ann_path, image_root, out = Path(ann_path), Path(image_root), Path(out_dir)
    settings = {
        "steps": steps,
        "vision_steps": vision_steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "vision_batch_size": vision_batch_size,
        "vision_lr": vision_lr,
        "text_processor": text_processor,
    }
    key = _fingerprint(ann_path, settings)
    done = out / DONE
    if done.is_file() and json.loads(done.read_text()).get("fingerprint") == key:
        log.info("stand-ins in %s are up to date; reusing them", out)
        return json.loads(done.read_text())["paths"]

    from .standin_training import build_standins  # torch and the model: only when they must be built

    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    paths = build_standins(ann_path, image_root, staging, settings)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    paths = {k: str(out / Path(v).name) for k, v in paths.items()}
    (out / DONE).write_text(json.dumps({"fingerprint": key, "settings": settings, "paths": paths}, indent=1))
    return paths


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description="Pre-trained tiny stand-ins: stage 0 (vision) and stage 1 (joint), saved in the official formats."
    )
    ap.add_argument("--ann", required=True, help="training annotations (flickr30k_train.json layout)")
    ap.add_argument("--images", required=True, help="image folder")
    ap.add_argument("--out", required=True, help="output folder for the stand-ins")
    ap.add_argument("--steps", type=int, default=RECIPE["steps"], help="stage-1 steps (joint training, ViT frozen)")
    ap.add_argument("--vision-steps", type=int, default=RECIPE["vision_steps"], help="stage-0 steps (ViT pre-training; 0 skips it)")
    ap.add_argument("--batch-size", type=int, default=RECIPE["batch_size"], help="stage-1 batch size")
    ap.add_argument("--lr", type=float, default=RECIPE["lr"], help="stage-1 peak learning rate")
    ap.add_argument("--vision-batch-size", type=int, default=RECIPE["vision_batch_size"], help="stage-0 batch size")
    ap.add_argument("--vision-lr", type=float, default=RECIPE["vision_lr"], help="stage-0 peak learning rate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--text-processor",
        default=TEXT_PROCESSOR,
        help="how stage 1 writes its answers: the text processor of stage 2's training data "
        f"(default {TEXT_PROCESSOR}, the flickr30k_caption default; caption_as_written keeps case and "
        "punctuation)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_library_bars()
    if args.steps < 1 or args.vision_steps < 0:
        ap.error(f"need --steps >= 1 and --vision-steps >= 0, got {args.steps} and {args.vision_steps}")
    paths = train_standins(
        args.ann,
        args.images,
        args.out,
        args.steps,
        args.batch_size,
        args.lr,
        args.seed,
        args.vision_steps,
        args.vision_batch_size,
        args.vision_lr,
        args.text_processor,
    )
    for key in ("llama_model", "vit_ckpt", "q_former_model"):
        print(f"model.{key}={paths[key]}")
    print(f"stage-1 projection (reference only): {paths['stage1_ckpt']}")


if __name__ == "__main__":
    raise SystemExit(run_command(main))
