"""MiniGPT-4 fine-tuning and evaluation on Flickr30k.

Public API: ``load_config(yaml_path, options)`` and ``build_model(cfg.model)``.
"""
from __future__ import annotations

from typing import Any, Iterable

from minigpt4.common.config import ConfigError, load_config

__all__ = ["load_config", "build_model", "ConfigError"]
__version__ = "0.1.0"


def build_model(model_cfg: Any, **kwargs: Any):
    """Build the model named by ``model_cfg.arch`` through the model registry."""
    from minigpt4.common.config import import_components
    from minigpt4.common.registry import MODELS

    import_components()
    return MODELS.build(model_cfg.arch, model_cfg, **kwargs)
