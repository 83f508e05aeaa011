"""Weight files: reading ``.pth``/``.pt`` (torch, weights only) or ``.safetensors``, and the one loader
of trainable parameters (``llama_proj``) used by ``MiniGPT4.load_checkpoint``, training resume and
evaluation alike."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from minigpt4.errors import WeightsError


def load_weights(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file safely (``weights_only=True``; safetensors by extension)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a text file, a truncated download, a pickle with code objects, ...
        raise WeightsError(f"cannot load {path}: {describe_unreadable(path, e)}") from e


def describe_unreadable(path: Path, error: Exception) -> str:
    """Why a weights file did not load, from its first bytes (torch.save writes a zip archive)."""
    with open(path, "rb") as f:
        head = f.read(64)
    size = path.stat().st_size
    if not head:
        return "the file is empty"
    if path.suffix == ".safetensors":
        return f"not a readable safetensors file ({size} bytes): {error}"
    if head.startswith(b"PK"):
        return f"a zip archive (as torch.save writes) that torch cannot read: truncated or corrupt? ({size} bytes; {error})"
    if head[:1] == b"\x80":
        return f"a legacy pickle checkpoint that does not load with weights_only=True ({type(error).__name__}: {error})"
    text = head.decode("utf-8", "replace")
    if text.replace("\n", "").replace("\r", "").replace("\t", "").isprintable():
        return (
            f"not a PyTorch checkpoint: it is a text file ({size} bytes) starting with {text[:40]!r}; expected a "
            "file written by torch.save (.pth/.pt) or a .safetensors file"
        )
    return f"not a PyTorch checkpoint ({size} bytes, first bytes {head[:8]!r}; {type(error).__name__}: {error})"


def unwrap(obj: dict[str, Any], path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict inside ``{"model": {...}}``, or ``obj`` itself if it already is one."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        return obj["model"]
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    keys = list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
    raise WeightsError(f"{path}: expected a state dict or {{'model': state_dict}}, got {keys}")


def load_parameters(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str | os.PathLike, exact: bool = False, hint: str = "", copy: bool = True
) -> list[str]:
    """Copy ``state`` into the parameters of ``model`` with the same names; returns the names loaded.

    Every name must be a parameter of ``model`` with the same shape (``hint`` is added to a shape
    error); ``exact``: the names must be exactly the model's trainable parameters (a training
    checkpoint). Problems raise ``WeightsError`` naming ``source`` before anything is copied;
    ``copy=False`` only checks.
    """
    own = dict(model.named_parameters())
    unexpected = sorted(k for k in state if k not in own)
    if unexpected:
        raise WeightsError(
            f"{source}: unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''} (not parameters of the model)"
        )
    if exact:
        trainable = sorted(n for n, p in own.items() if p.requires_grad)
        if sorted(state) != trainable:
            raise WeightsError(
                f"{source}: trainable parameters differ from the model's: checkpoint has {sorted(state)}, model has {trainable}"
            )
    bad = [
        f"{k} has shape {tuple(v.shape)} but the model expects {tuple(own[k].shape)}" for k, v in state.items() if own[k].shape != v.shape
    ]
    if bad:
        raise WeightsError(f"{source}: " + "; ".join(bad[:4]) + (f"; {hint}" if hint else ""))
    if not copy:
        return list(state)
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v)
    return list(state)


# Persistent buffers that official MiniGPT-4 checkpoints may carry besides llama_proj.
_IGNORED_CKPT_SUFFIXES = ("position_ids", "rotary_emb.inv_freq")


def read_projection_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The parameters of a MiniGPT-4 or training checkpoint file (``llama_proj`` required; the
    persistent buffers official checkpoints carry are dropped). Raises ``WeightsError``."""
    sd = unwrap(load_weights(path), path)
    if "llama_proj.weight" not in sd or "llama_proj.bias" not in sd:
        raise WeightsError(
            f"{path}: no llama_proj.weight/llama_proj.bias in the checkpoint (keys: {sorted(sd)[:8]}{' ...' if len(sd) > 8 else ''})"
        )
    return {k: v for k, v in sd.items() if not k.endswith(_IGNORED_CKPT_SUFFIXES)}
