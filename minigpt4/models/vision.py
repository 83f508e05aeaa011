"""EVA-ViT-G as ``transformers.Blip2VisionModel``, and the ``eva_vit_g.pth`` key map (both ways).

``post_layernorm`` plays BLIP-2's ``ln_vision`` (eps 1e-5), so ``last_hidden_state`` equals
``ln_vision(visual_encoder(x))`` over all tokens (CLS + patches).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from transformers import Blip2VisionConfig, Blip2VisionModel

from minigpt4.errors import WeightsError

log = logging.getLogger(__name__)

LN_VISION_EPS = 1e-5
# Parts of the EVA checkpoint that MiniGPT-4 does not use (classifier end of the original ViT).
IGNORED_EVA_PREFIXES = ("norm.", "fc_norm.", "head.")

_BLOCK_RENAMES = {
    "norm1.": "layer_norm1.",
    "norm2.": "layer_norm2.",
    "attn.qkv.weight": "self_attn.qkv.weight",
    "attn.proj.": "self_attn.projection.",
    "mlp.fc1.": "mlp.fc1.",
    "mlp.fc2.": "mlp.fc2.",
}


def vision_config(image_size: int, overrides: Mapping[str, Any] | None = None) -> Blip2VisionConfig:
    """Blip2VisionConfig with the official EVA-ViT-G sizes (39 blocks) unless overridden."""
    kwargs = {"num_hidden_layers": 39, "image_size": image_size}
    kwargs.update(dict(overrides or {}))
    return Blip2VisionConfig(**kwargs)


def build_vision_encoder(config: Blip2VisionConfig) -> Blip2VisionModel:
    model = Blip2VisionModel(config)
    model.post_layernorm.eps = LN_VISION_EPS
    return model


def half_linear_weights(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast only Linear and Conv2d weights to ``dtype`` (the official fp16 ViT); LayerNorms and the
    position/class embeddings stay fp32 and the forward runs under autocast."""
    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            m.to(dtype)


def keep_key_bias_zero(model: Blip2VisionModel) -> None:
    """EVA has q and v biases but no k bias: when the ViT trains, zero the k third of each qkv bias
    gradient so the weights stay expressible in the ``eva_vit_g.pth`` layout."""
    for layer in model.encoder.layers:
        bias = layer.self_attn.qkv.bias
        width = bias.shape[0] // 3

        def hook(grad: torch.Tensor, width: int = width) -> torch.Tensor:
            grad = grad.clone()
            grad[width : 2 * width] = 0
            return grad

        with torch.no_grad():
            bias[width : 2 * width] = 0
        bias.register_hook(hook)


def _resize_pos_embed(pos: torch.Tensor, num_patches: int) -> torch.Tensor:
    """Bicubic-resize the patch grid of ``pos_embed`` [1, 1+n, W] to ``num_patches`` (CLS kept)."""
    old = pos.shape[1] - 1
    if old == num_patches:
        return pos
    g_old, g_new = int(round(old**0.5)), int(round(num_patches**0.5))
    if g_old * g_old != old or g_new * g_new != num_patches:
        raise WeightsError(f"pos_embed of {old} patches cannot be resized to {num_patches} (not square grids)")
    cls, grid = pos[:, :1], pos[:, 1:]
    w = grid.shape[-1]
    grid = grid.reshape(1, g_old, g_old, w).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(g_new, g_new), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, g_new * g_new, w).to(pos.dtype)
    log.info("resized pos_embed from %dx%d to %dx%d patches", g_old, g_old, g_new, g_new)
    return torch.cat([cls, grid], dim=1)


def eva_to_hf(sd: Mapping[str, torch.Tensor], depth: int, num_patches: int) -> tuple[dict, list[str]]:
    """Map an ``eva_vit_g.pth`` state dict to Blip2VisionModel keys.

    Returns (mapped state dict, unexpected keys). Blocks ``>= depth`` and the classifier end are dropped
    (logged); ``post_layernorm`` is not in this file (it comes from the BLIP-2 file's ``ln_vision``).
    """
    out: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    dropped_blocks: set[int] = set()
    q_bias: dict[int, torch.Tensor] = {}
    v_bias: dict[int, torch.Tensor] = {}
    for key, value in sd.items():
        if key == "cls_token":
            out["embeddings.class_embedding"] = value
        elif key == "pos_embed":
            out["embeddings.position_embedding"] = _resize_pos_embed(value, num_patches)
        elif key.startswith("patch_embed.proj."):
            out["embeddings.patch_embedding." + key.split(".")[-1]] = value
        elif key.startswith(IGNORED_EVA_PREFIXES):
            log.info("eva_vit_g: ignoring %s (not used by MiniGPT-4)", key)
        elif (m := re.match(r"blocks\.(\d+)\.(.+)$", key)) is not None:
            i, rest = int(m.group(1)), m.group(2)
            if i >= depth:
                dropped_blocks.add(i)
                continue
            if rest == "attn.q_bias":
                q_bias[i] = value
            elif rest == "attn.v_bias":
                v_bias[i] = value
            else:
                for old, new in _BLOCK_RENAMES.items():
                    if rest.startswith(old):
                        out[f"encoder.layers.{i}.{new}{rest[len(old) :]}"] = value
                        break
                else:
                    unexpected.append(key)
        else:
            unexpected.append(key)
    for i in sorted(set(q_bias) | set(v_bias)):
        if i not in q_bias or i not in v_bias:
            unexpected.append(f"blocks.{i}.attn.{'q' if i in q_bias else 'v'}_bias (without its pair)")
            continue
        out[f"encoder.layers.{i}.self_attn.qkv.bias"] = torch.cat([q_bias[i], torch.zeros_like(q_bias[i]), v_bias[i]])
    if dropped_blocks:
        log.info("eva_vit_g: dropped blocks %s (MiniGPT-4 uses the first %d)", sorted(dropped_blocks), depth)
    return out, unexpected


def hf_to_eva(sd: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
    """Inverse of :func:`eva_to_hf`: Blip2VisionModel keys -> (``eva_vit_g.pth`` dict, ``ln_vision.*``)."""
    out: dict[str, torch.Tensor] = {}
    ln_vision: dict[str, torch.Tensor] = {}
    inverse = {new: old for old, new in _BLOCK_RENAMES.items()}
    for key, value in sd.items():
        value = value.detach().clone()
        if key == "embeddings.class_embedding":
            out["cls_token"] = value
        elif key == "embeddings.position_embedding":
            out["pos_embed"] = value
        elif key.startswith("embeddings.patch_embedding."):
            out["patch_embed.proj." + key.split(".")[-1]] = value
        elif key.startswith("post_layernorm."):
            ln_vision["ln_vision." + key.split(".")[-1]] = value
        elif (m := re.match(r"encoder\.layers\.(\d+)\.(.+)$", key)) is not None:
            i, rest = m.group(1), m.group(2)
            if rest == "self_attn.qkv.bias":
                q, k, v = value.chunk(3)
                if torch.any(k != 0):
                    raise ValueError(f"{key}: EVA has no key bias, but the k part is non-zero")
                out[f"blocks.{i}.attn.q_bias"], out[f"blocks.{i}.attn.v_bias"] = q.clone(), v.clone()
                continue
            for new, old in inverse.items():
                if rest.startswith(new):
                    out[f"blocks.{i}.{old}{rest[len(new) :]}"] = value
                    break
            else:
                raise KeyError(f"no EVA name for {key}")
        else:
            raise KeyError(f"no EVA name for {key}")
    return out, ln_vision


def load_eva_checkpoint(model: Blip2VisionModel, sd: Mapping[str, torch.Tensor], path: str) -> None:
    """Load ``eva_vit_g.pth`` weights strictly (everything except ``post_layernorm``)."""
    cfg = model.config
    num_patches = (cfg.image_size // cfg.patch_size) ** 2
    mapped, unexpected = eva_to_hf(sd, cfg.num_hidden_layers, num_patches)
    expected = {k for k in model.state_dict() if not k.startswith("post_layernorm.")}
    missing = sorted(expected - set(mapped))
    unexpected += sorted(set(mapped) - expected)
    if missing or unexpected:
        raise WeightsError(
            f"{path}: vision checkpoint does not match the model. "
            f"Missing keys: {missing or 'none'}. Unexpected keys: {unexpected or 'none'}."
        )
    check_shapes(model, mapped, path)
    model.load_state_dict(mapped, strict=False)


def check_shapes(model: torch.nn.Module, sd: Mapping[str, torch.Tensor], path: str) -> None:
    own = model.state_dict()
    bad = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}" for k, v in sd.items() if k in own and own[k].shape != v.shape]
    if bad:
        raise WeightsError(f"{path}: shape mismatch: " + "; ".join(bad[:8]))
