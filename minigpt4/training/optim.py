"""AdamW over the trainable parameters, as in the original fine-tune: weight decay on >= 2-D weights only."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups of trainable parameters: ``decay`` (>= 2-D, not a bias) and ``no_decay``
    (biases and 1-D parameters such as norms). Frozen parameters are left out."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or name.endswith(".bias") or name == "bias":
            no_decay.append(p)
        else:
            decay.append(p)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters (requires_grad=True); nothing to train")
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": float(weight_decay)})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, run_cfg: Any) -> torch.optim.AdamW:
    """AdamW with ``run.init_lr``, ``run.weight_decay``, betas ``(run.beta1, run.beta2)``, eps 1e-8."""
    return torch.optim.AdamW(
        param_groups(model, run_cfg.weight_decay),
        lr=float(run_cfg.init_lr),
        betas=(float(run_cfg.beta1), float(run_cfg.beta2)),
        eps=1e-8,
    )


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
