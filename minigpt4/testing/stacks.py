"""Tiny random MiniGPT-4 stacks in the official file formats, for tests and the quickstart. The writer
is the product's (``minigpt4.models.random_stack``, which also has the official sizes); importing this
module registers the sizes ``tiny`` and ``tiny-llama2`` there.

``build_tiny_stack(out_dir)`` (and ``build_random_stack(out_dir, size)``) writes a random stack in the
official file layouts (listed in ``minigpt4.models.random_stack``) at a tiny size. These load through
exactly the code paths of the real files (``model_type: tiny`` / ``tiny_llama2``, registered by
``minigpt4.testing``).

CLI: ``python -m minigpt4.testing.stacks --out DIR [--size tiny-llama2]``: ``minigpt4-random-stack`` with the
tiny sizes (the default here), which also builds the official sizes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from minigpt4.commands import random_stack as command
from minigpt4.errors import run_command
from minigpt4.models.random_stack import (  # noqa: F401  (the stack writer, for the tests)
    build_random_stack,
    official_blip2_state,
    official_vit_state,
    train_tokenizer,
    write_random_llama,
    write_random_stack,
)
from minigpt4.models.sizes import OFFICIAL_SIZES, SIZES, register_size  # noqa: F401
from minigpt4.models.variants import VICUNA7B_LLM  # noqa: F401
from minigpt4.utils.prompt import DEFAULT_TEMPLATE

# Sizes of ``model_type: tiny`` (minigpt4/testing/minigpt4_tiny.yaml mirrors these; a test checks it).
TINY_IMAGE_SIZE = 56
TINY_NUM_QUERY_TOKEN = 8
TINY_VIT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "patch_size": 14,
    "initializer_range": 0.02,
}
TINY_QFORMER = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "cross_attention_frequency": 2,
}
TINY_LLM = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 512,
}

_TINY = {
    "image_size": TINY_IMAGE_SIZE,
    "num_query_token": TINY_NUM_QUERY_TOKEN,
    "vit": TINY_VIT,
    "qformer": TINY_QFORMER,
    "llm": TINY_LLM,
    "tokenizer_vocab": 400,
    "dtype": torch.float32,
    "has_qformer": True,
}
register_size("tiny", _TINY)
register_size("tiny-llama2", {**_TINY, "has_qformer": False})


def write_tiny_llama(
    out_dir: Path,
    corpus: Iterable[str] | None = None,
    sizes: dict | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    tokenizer_vocab: int = 400,
    template: str = DEFAULT_TEMPLATE,
) -> Path:
    """``write_random_llama`` with ``TINY_LLM`` updated by ``sizes``."""
    return write_random_llama(out_dir, corpus, {**TINY_LLM, **(sizes or {})}, seed, dtype, device, tokenizer_vocab, template)


def build_tiny_stack(
    out_dir: str | Path,
    seed: int = 0,
    corpus: Iterable[str] | None = None,
    image_size: int = TINY_IMAGE_SIZE,
    num_query_token: int = TINY_NUM_QUERY_TOKEN,
    vit: dict | None = None,
    qformer: dict | None = None,
    llm: dict | None = None,
    has_qformer: bool = True,
    tokenizer_vocab: int = 400,
) -> dict[str, str]:
    """Write a random tiny stack (sizes: ``TINY_*`` updated by ``vit``/``qformer``/``llm``; a tokenizer of
    about ``tokenizer_vocab`` pieces trained on ``corpus``); returns the paths for the ``model`` config
    (``llama_model``, ``vit_ckpt``, ``q_former_model`` (not without a Q-Former), ``ckpt``)."""
    return write_random_stack(
        out_dir,
        seed,
        corpus,
        image_size,
        num_query_token,
        {**TINY_VIT, **(vit or {})},
        {**TINY_QFORMER, **(qformer or {})},
        {**TINY_LLM, **(llm or {})},
        tokenizer_vocab=tokenizer_vocab,
        has_qformer=has_qformer,
    )


def main(argv: Sequence[str] | None = None) -> dict[str, str]:
    """``minigpt4-random-stack`` with the tiny sizes, ``tiny`` by default."""
    args = command.parse_args(argv, default_size="tiny", prog="python -m minigpt4.testing.stacks")
    if args.size in OFFICIAL_SIZES:
        print("note: the official sizes' command is now minigpt4-random-stack (python -m minigpt4.cli random-stack)", file=sys.stderr)
    return command.build(args)


if __name__ == "__main__":
    raise SystemExit(run_command(main))
