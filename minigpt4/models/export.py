"""``minigpt4-export``: a fine-tuned checkpoint as plain files that load without adapters.

    minigpt4-export --cfg-path RUN_DIR/config.yaml --ckpt RUN_DIR/checkpoint_3.pth --out DIR

writes, into a new folder ``DIR`` (complete or absent: it is built beside it and renamed)::

    DIR/llm/            the LLM with the LoRA adapters merged into its weights (W + alpha/r * B A), a
                        Hugging Face folder (safetensors + tokenizer): AutoModelForCausalLM loads it
    DIR/llama_proj.pth  the projection in the official MiniGPT-4 layout, {"model": {"llama_proj.weight", ...}}
    DIR/model.yaml      the run's model section pointing at both, with lora: null

A run without adapters exports only ``llama_proj.pth`` (and ``model.yaml`` keeps its ``llama_model``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml
from omegaconf import OmegaConf

from minigpt4.config import CUSTOM_IMPORTS, load_model_config, read_yaml
from minigpt4.errors import UserError
from minigpt4.registry import MODELS
from minigpt4.utils.dtypes import DTYPES
from minigpt4.utils.logging import setup_logger

from .lora import ADAPTER_MARK, merged_llm

log = logging.getLogger("minigpt4")
LLM_DIR, PROJECTION_FILE, MODEL_YAML = "llm", "llama_proj.pth", "model.yaml"


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


def _source_dtype(llama_model: str) -> torch.dtype:
    from transformers import AutoConfig

    dtype = getattr(AutoConfig.from_pretrained(llama_model, local_files_only=True), "dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def export(cfg_path: str | Path, ckpt: str | Path, out: str | Path, options: Sequence[str] = (), dtype: str = "source") -> dict[str, Path]:
    """Write ``out`` (see the module docstring); returns the paths written. Raises ``UserError``."""
    out = Path(out).expanduser().resolve()
    if out.exists():
        raise UserError(f"--out {out} already exists: give a new folder (nothing is overwritten)")
    cfg = load_model_config(cfg_path, options)
    merge_in_fp32 = OmegaConf.merge(cfg, {"llm_dtype": "fp32", "low_resource": False})
    model = MODELS.build(cfg.arch, merge_in_fp32, device="cpu")
    model.load_checkpoint(ckpt)
    state = {k: v for k, v in model.trainable_state_dict().items() if ADAPTER_MARK not in k}
    section = OmegaConf.to_container(cfg, resolve=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if model.lora is not None:
            target = _source_dtype(cfg.llama_model) if dtype == "source" else DTYPES[dtype]
            llm = merged_llm(model.llama_model).to(target)
            llm.save_pretrained(tmp / LLM_DIR)
            model.llama_tokenizer.save_pretrained(tmp / LLM_DIR)
            section["llama_model"] = str(out / LLM_DIR)
            log.info("merged the adapters of %s into the LLM (%s): %s", model.describe_trainable(), target, out / LLM_DIR)
        else:
            log.info("the model has no LoRA adapters: only the projection is exported (llama_model stays %s)", cfg.llama_model)
        torch.save({"model": {k: v.cpu() for k, v in state.items()}}, tmp / PROJECTION_FILE)
        section.update(ckpt=str(out / PROJECTION_FILE), lora=None)
        imports = read_yaml(cfg_path).get(CUSTOM_IMPORTS)
        doc = ({CUSTOM_IMPORTS: imports} if imports else {}) | {"model": section}
        (tmp / MODEL_YAML).write_text(f"# exported from {Path(ckpt).resolve()} by minigpt4-export\n" + yaml.safe_dump(doc, sort_keys=False))
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    written = {"model_yaml": out / MODEL_YAML, "projection": out / PROJECTION_FILE}
    if model.lora is not None:
        written["llm"] = out / LLM_DIR
    return written


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
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
