"""The evaluation's model against the training run's (``RUN_DIR/config.yaml`` or ``--train-config``):
the keys that decide what a checkpoint means must match, and a LoRA run's adapter settings are
taken from it when the eval config has none."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from minigpt4.config import read_yaml
from minigpt4.errors import EvalError

log = logging.getLogger("minigpt4")

# Model keys that decide what a checkpoint's weights mean (or what the baseline is) and must match
# between training and evaluation; the rest (dtypes, max_txt_len, freezing, checkpointing) do not.
COMPARED_MODEL_KEYS = (
    "arch",
    "model_type",
    "has_qformer",
    "llama_model",
    "vit_ckpt",
    "q_former_model",
    "ckpt",
    "image_size",
    "num_query_token",
    "end_sym",
    "prompt_template",
    "vit_config",
    "qformer_config",
    "lora",
)


def training_model(train_config: str | Path) -> dict[str, Any]:
    return read_yaml(train_config).get("model") or {}


def adopt_training_lora(cfg: DictConfig, train_config: str | Path | None) -> None:
    """An eval config without ``model.lora`` evaluating a LoRA run takes the run's adapter settings
    (its checkpoints hold adapters of exactly that shape); a given ``model.lora`` is compared instead."""
    if train_config is None or cfg.model.get("lora") is not None:
        return
    lora = training_model(train_config).get("lora")
    if lora:
        cfg.model.lora = lora
        log.info(
            "model.lora: the run trained LoRA adapters (%s, from %s); the eval model has the same",
            ", ".join(f"{k} {v}" for k, v in lora.items()),
            train_config,
        )


def _compared(key: str, value: Any) -> Any:
    if key == "lora" and isinstance(value, dict):  # training-only: dropout does not change what the adapters mean
        return {k: v for k, v in value.items() if k != "dropout"}
    return value


def training_mismatches(cfg: DictConfig, train_config: str | Path) -> list[str]:
    """Model settings where the eval config differs from a training run's ``config.yaml``
    (``ckpt`` included: the eval baseline must be the projection the run started from)."""
    model_t = training_model(train_config)
    model_e = OmegaConf.to_container(cfg.model, resolve=True)
    keys = [k for k in COMPARED_MODEL_KEYS if k in model_t or k == "lora"]  # no lora key: a run from before LoRA
    return [
        f"model.{k}: training {model_t.get(k)!r}, evaluation {model_e.get(k)!r}"
        for k in keys
        if _compared(k, model_t.get(k)) != _compared(k, model_e.get(k))
    ]


def check_model_match(cfg: DictConfig, train_config: Path | None, allow: bool) -> dict[str, Any] | None:
    """Raise unless the eval model matches the run's (or ``allow``); the record for metrics.json."""
    problems = training_mismatches(cfg, train_config) if train_config else []
    if problems and not allow:
        raise EvalError(
            f"the eval config's model differs from the training run's {train_config} on keys that decide "
            "what a checkpoint means:\n  - " + "\n  - ".join(problems) + "\nfix the eval config (or its "
            "--options), or pass --allow-model-mismatch to evaluate anyway (recorded in metrics.json)"
        )
    for problem in problems:
        log.warning("eval config differs from %s (--allow-model-mismatch): %s", train_config, problem)
    return {"allowed": True, "train_config": str(train_config), "differences": problems} if problems else None
