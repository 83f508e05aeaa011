"""MiniGPT-4 fine-tuning and evaluation on Flickr30k.

Public API: ``load_config(yaml_path, options)`` and ``build_model(cfg.model)``.
"""

from __future__ import annotations

from typing import Any

from minigpt4.config import load_config
from minigpt4.errors import ConfigError, UserError
from minigpt4.registry import MODELS

__all__ = ["load_config", "build_model", "ConfigError", "UserError"]
__version__ = "0.1.0"


def build_model(model_cfg: Any, **kwargs: Any):
    """Build the model named by ``model_cfg.arch`` through the model registry."""
    return MODELS.build(model_cfg.arch, model_cfg, **kwargs)
