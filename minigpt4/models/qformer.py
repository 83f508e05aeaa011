"""BLIP-2 Q-Former as ``transformers.Blip2QFormerModel`` plus ``query_tokens``, and the key map of
``blip2_pretrained_flant5xxl.pth`` (``{"model": {"Qformer.bert.*", "query_tokens", "ln_vision.*", ...}}``)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import torch
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from minigpt4.errors import WeightsError

from .vision import check_shapes

log = logging.getLogger(__name__)

PREFIX = "Qformer.bert."
# Text-side parts of the BLIP-2 Q-Former that MiniGPT-4 prunes (its word and position embeddings and the
# text feed-forward layers: only the query tokens pass through the Q-Former); their keys in the BLIP-2 file are skipped.
_DROPPED = (
    re.compile(r"embeddings\.position_ids$"),
    re.compile(r"embeddings\.word_embeddings\."),
    re.compile(r"embeddings\.position_embeddings\."),
    re.compile(r"encoder\.layer\.\d+\.intermediate\."),
    re.compile(r"encoder\.layer\.\d+\.output\."),
)
_RENAMES = (  # (BLIP-2 name part, Blip2QFormerModel name part)
    (".attention.self.", ".attention.attention."),
    (".crossattention.self.", ".crossattention.attention."),
)


def _to_hf(name: str) -> str:
    if name.startswith("embeddings.LayerNorm."):
        name = "layernorm." + name[len("embeddings.LayerNorm.") :]
    for old, new in _RENAMES:
        name = name.replace(old, new)
    return name


def _to_blip2(name: str) -> str:
    if name.startswith("layernorm."):
        name = "embeddings.LayerNorm." + name[len("layernorm.") :]
    for old, new in _RENAMES:
        name = name.replace(new, old)
    return name


def qformer_config(encoder_hidden_size: int, overrides: Mapping[str, Any] | None = None) -> Blip2QFormerConfig:
    """BERT-base Q-Former (12 layers, cross-attention every 2) unless overridden."""
    kwargs: dict[str, Any] = dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        cross_attention_frequency=2,
        use_qformer_text_input=False,
    )
    kwargs.update(dict(overrides or {}))
    kwargs["encoder_hidden_size"] = encoder_hidden_size
    return Blip2QFormerConfig(**kwargs)


def blip2_to_hf(sd: Mapping[str, torch.Tensor]) -> tuple[dict, dict, list[str]]:
    """Split a BLIP-2 state dict into (Q-Former dict in HF names, {query_tokens, ln_vision.*}, ignored keys)."""
    qformer: dict[str, torch.Tensor] = {}
    extra: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for key, value in sd.items():
        if key == "query_tokens" or key.startswith("ln_vision."):
            extra[key] = value
        elif key.startswith(PREFIX):
            name = key[len(PREFIX) :]
            if any(p.match(name) for p in _DROPPED):
                continue
            qformer[_to_hf(name)] = value
        else:
            ignored.append(key)
    if ignored:
        log.info("BLIP-2 checkpoint: ignoring %d keys not used by MiniGPT-4 (e.g. %s)", len(ignored), ignored[:3])
    return qformer, extra, ignored


def hf_to_blip2(
    qformer_sd: Mapping[str, torch.Tensor], query_tokens: torch.Tensor, ln_vision: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Inverse of :func:`blip2_to_hf`: the ``{"model": ...}`` content of a BLIP-2-layout file."""
    out: dict[str, torch.Tensor] = {"query_tokens": query_tokens.detach().clone()}
    out.update({k: v.detach().clone() for k, v in ln_vision.items()})
    for key, value in qformer_sd.items():
        out[PREFIX + _to_blip2(key)] = value.detach().clone()
    return out


def load_blip2_checkpoint(qformer: Blip2QFormerModel, sd: Mapping[str, torch.Tensor], path: str) -> dict[str, torch.Tensor]:
    """Load the Q-Former strictly; returns ``{"query_tokens", "ln_vision.weight", "ln_vision.bias"}``."""
    mapped, extra, _ = blip2_to_hf(sd)
    expected = set(qformer.state_dict())
    missing = sorted(expected - set(mapped))
    missing += [k for k in ("query_tokens", "ln_vision.weight", "ln_vision.bias") if k not in extra]
    unexpected = sorted(PREFIX + k for k in set(mapped) - expected)
    if missing or unexpected:
        raise WeightsError(
            f"{path}: Q-Former checkpoint does not match the model. "
            f"Missing keys: {missing or 'none'}. Unexpected keys: {unexpected or 'none'}."
        )
    check_shapes(qformer, mapped, path)
    qformer.load_state_dict(mapped, strict=True)
    return extra
