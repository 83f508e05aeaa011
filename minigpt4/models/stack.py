"""The vision stack of a ``model`` config: EVA-ViT-G (``ln_vision`` as its post_layernorm) and, with
``has_qformer``, the BLIP-2 Q-Former and query tokens, loaded from the official files it names."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from transformers import Blip2QFormerModel

from minigpt4.errors import WeightsError

from .qformer import load_blip2_checkpoint, qformer_config
from .vision import build_vision_encoder, load_eva_checkpoint, vision_config
from .weights import load_weights, unwrap

log = logging.getLogger(__name__)


def build_vision_stack(cfg: Any) -> tuple[nn.Module, Blip2QFormerModel | None, nn.Parameter | None]:
    """The ViT (with ``ln_vision`` as its post_layernorm) and, when ``has_qformer``, the Q-Former and
    query tokens, with the weights the config names. Without a Q-Former no BLIP-2 file is read, so
    ``ln_vision`` keeps its default initialisation (weight 1, bias 0), as in the official Llama-2 variant."""
    vit = build_vision_encoder(vision_config(cfg.image_size, cfg.get("vit_config") or {}))
    if cfg.get("vit_ckpt"):
        load_eva_checkpoint(vit, unwrap(load_weights(cfg.vit_ckpt), cfg.vit_ckpt), cfg.vit_ckpt)
        log.info("loaded ViT weights from %s", cfg.vit_ckpt)
    else:
        log.warning("vit_ckpt is null: the ViT keeps random weights (tests only)")
    if not cfg.get("has_qformer", True):
        unused = [k for k in ("q_former_model", "qformer_config") if cfg.get(k)]
        if unused:
            log.warning(
                "has_qformer is false: %s ignored (no Q-Former; ln_vision keeps its default initialisation, "
                "as in the official Llama-2 variant)",
                " and ".join(f"model.{k}" for k in unused),
            )
        return vit, None, None
    qformer = Blip2QFormerModel(qformer_config(vit.config.hidden_size, cfg.get("qformer_config") or {}))
    query_tokens = nn.Parameter(torch.zeros(1, cfg.num_query_token, qformer.config.hidden_size))
    if cfg.get("q_former_model"):
        extra = load_blip2_checkpoint(qformer, unwrap(load_weights(cfg.q_former_model), cfg.q_former_model), cfg.q_former_model)
        if extra["query_tokens"].shape != query_tokens.shape:
            raise WeightsError(
                f"{cfg.q_former_model}: query_tokens {tuple(extra['query_tokens'].shape)} vs "
                f"model {tuple(query_tokens.shape)} (num_query_token={cfg.num_query_token})"
            )
        query_tokens.data.copy_(extra["query_tokens"])
        vit.post_layernorm.load_state_dict({"weight": extra["ln_vision.weight"], "bias": extra["ln_vision.bias"]})
        log.info("loaded Q-Former, query tokens and ln_vision from %s", cfg.q_former_model)
    else:
        query_tokens.data.normal_(0.0, qformer.config.initializer_range)
        log.warning("q_former_model is null: the Q-Former keeps random weights (tests only)")
    return vit, qformer, query_tokens
