"""What cached vision features depend on: ``stack_key`` of a model, a cut point and a processor."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn

# the modules whose weights decide the features at each cut (ln_vision is the ViT's post_layernorm)
CUT_MODULES = {"vit": ("visual_encoder",), "qformer": ("visual_encoder", "qformer", "query_tokens")}


def weights_sha256(model: nn.Module, prefixes: tuple[str, ...]) -> str:
    """The sha256 over name, dtype, shape and bytes of every parameter and buffer under ``prefixes``."""
    h = hashlib.sha256()
    state = model.state_dict(keep_vars=True)
    for name in sorted(n for n in state if n.split(".")[0] in prefixes):
        t = state[name].detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def stack_key(model: Any, cut: str, processor: dict[str, Any]) -> dict[str, Any]:
    """The key of ``model``'s features at ``cut`` for images made by a processor of identity
    ``processor``: format, cut, weights of the modules before the cut, query count, compute
    device type and precision. The cache adds its storage dtype."""
    if cut not in CUT_MODULES:
        raise ValueError(f"cut must be one of {sorted(CUT_MODULES)}, got {cut!r}")
    device = model.device.type
    return {
        "format": 1,
        "cut": cut,
        "weights_sha256": weights_sha256(model, CUT_MODULES[cut]),
        "num_query_token": int(model.query_tokens.shape[1]) if cut == "qformer" else None,
        "image_processor": processor,
        "compute": {"device": device, "vit_precision": model.vit_precision if device == "cuda" else "fp32"},
    }
