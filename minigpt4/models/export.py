"""A fine-tuned checkpoint as plain files that load without adapters (the command: ``minigpt4-export``).

    minigpt4-export --cfg-path RUN_DIR/config.yaml --ckpt RUN_DIR/checkpoint_3.pth --out DIR

writes, into a new folder ``DIR`` (complete or absent: it is built beside it and renamed)::

    DIR/llm/            the LLM with the LoRA adapters merged into its weights (W + alpha/r * B A), a
                        Hugging Face folder (safetensors + tokenizer): AutoModelForCausalLM loads it
    DIR/llama_proj.pth  the projection in the official MiniGPT-4 layout, {"model": {"llama_proj.weight", ...}}
    DIR/model.yaml      the run's model section pointing at both, with lora: null

A run without adapters exports only ``llama_proj.pth`` (and ``model.yaml`` keeps its ``llama_model``).
"""

from __future__ import annotations

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

from .lora import ADAPTER_MARK, merged_llm

log = logging.getLogger("minigpt4")
LLM_DIR, PROJECTION_FILE, MODEL_YAML = "llm", "llama_proj.pth", "model.yaml"


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
