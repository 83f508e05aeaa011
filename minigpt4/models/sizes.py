"""The sizes ``minigpt4-random-stack`` writes: the official ones (``vicuna-7b``, ``vicuna-13b``,
``llama2-7b``) and those registered later (``minigpt4.testing`` adds tiny ones). Kept apart from the
writer so that the command parses its arguments without importing transformers."""

from __future__ import annotations

from typing import Any

import torch

from .variants import LLAMA2_7B_LLM, VICUNA7B_LLM, VICUNA13B_LLM

# EVA-ViT-G and the BERT-base Q-Former are the defaults of vision_config() and qformer_config(), the
# LLMs those of minigpt4.models.variants. Written in fp16, as the released eva_vit_g.pth and LLM files are.
_OFFICIAL = {
    "image_size": 224,
    "num_query_token": 32,
    "vit": {},
    "qformer": {},
    "tokenizer_vocab": 32000,
    "dtype": torch.float16,
    "has_qformer": True,
}
# size -> image_size, num_query_token, vit / qformer / llm sizes, tokenizer_vocab, dtype, has_qformer
SIZES: dict[str, dict[str, Any]] = {
    "vicuna-7b": {**_OFFICIAL, "llm": VICUNA7B_LLM},
    "vicuna-13b": {**_OFFICIAL, "llm": VICUNA13B_LLM},
    "llama2-7b": {**_OFFICIAL, "llm": LLAMA2_7B_LLM, "has_qformer": False},
}
OFFICIAL_SIZES = tuple(SIZES)
SIZE_ALIASES = {"vicuna0": "vicuna-7b"}  # earlier names


def register_size(name: str, spec: dict[str, Any]) -> None:
    """Add a size (the keys of ``SIZES``' values) that ``build_random_stack`` and the command accept."""
    SIZES[name] = spec


def canonical_size(name: str) -> str:
    """``name``, or the size an earlier name (``SIZE_ALIASES``) stands for."""
    return SIZE_ALIASES.get(name, name)
