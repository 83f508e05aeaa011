"""``minigpt4-export``: a checkpoint as a merged Hugging Face LLM (LoRA folded in) + llama_proj.pth."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from minigpt4.errors import run_command
from minigpt4.models.export import export
from minigpt4.utils.dtypes import DTYPES
from minigpt4.utils.logging import setup_logger


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Export a checkpoint as a merged Hugging Face LLM (LoRA folded in) and "
        "a MiniGPT-4 projection checkpoint, loadable with model.lora: null."
    )
    ap.add_argument(
        "--cfg-path",
        required=True,
        help="the run's config.yaml (or any config whose model section matches the checkpoint; only that section is read)",
    )
    ap.add_argument("--ckpt", required=True, help="the checkpoint to export (e.g. RUN_DIR/checkpoint_3.pth)")
    ap.add_argument("--out", required=True, help="new folder to write (must not exist)")
    ap.add_argument(
        "--dtype",
        default="source",
        choices=("source", *DTYPES),
        help="dtype of the saved LLM weights (default: the dtype of model.llama_model's config.json); the merge itself is done in fp32",
    )
    ap.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="model config overrides")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    """Export; prints the files written and how to evaluate them; returns their paths."""
    args = parse_args(argv)
    setup_logger(0)
    written = export(args.cfg_path, args.ckpt, args.out, args.options, args.dtype)
    for name, path in written.items():
        print(f"{name}: {path}")
    llm = f"model.llama_model={written['llm']} " if "llm" in written else ""
    print(
        f"evaluate it with --options {llm}model.ckpt={written['projection']} model.lora=null "
        f"(or use {written['model_yaml']}'s model section)"
    )
    return written


def run(argv: Sequence[str] | None = None) -> int:
    """The exit status of ``main(argv)``."""
    return run_command(main, argv)
