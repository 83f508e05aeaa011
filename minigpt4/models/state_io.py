"""Reading and writing weight files: ``.pth``/``.pt`` (torch, weights only) or ``.safetensors``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def load_weights(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file safely (``weights_only=True``; safetensors by extension)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, pickle with code objects, ...
        raise RuntimeError(f"cannot load {path} as a weights-only torch checkpoint: {e}") from e


def unwrap(obj: dict[str, Any], path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict inside ``{"model": {...}}``, or ``obj`` itself if it already is one."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        return obj["model"]
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise ValueError(f"{path}: expected a state dict or {{'model': state_dict}}, got keys {list(obj)[:8]}")
