"""Analytic matmul FLOPs of MiniGPT-4 from the modules' configs, and model FLOPs utilisation (MFU).

Convention of ``torch.utils.flop_counter.FlopCounterMode``: ``2*m*n*k`` per matmul (and per
convolution multiply-add); norms, activations, softmax and the loss are not counted. Attention is
counted as the counter counts ``scaled_dot_product_attention``: forward ``QK^T`` and ``PV`` over the
full (not causally halved) score matrix; backward 5 matmuls (scores recomputed) for the sdpa/flash
kernels, 4 for the eager implementation.
"""

from __future__ import annotations

import re
from typing import Any

import torch

# Dense bf16 tensor-core peaks (V100: fp16), by GPU name; the first matching pattern wins.
PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    (r"H100.*PCIe", 756e12),
    (r"H[12]00", 989e12),  # H100 / H200 SXM
    (r"A100", 312e12),
    (r"\bA10\b", 125e12),
    (r"L40S", 362e12),
    (r"\bL4\b", 121e12),
    (r"RTX 4090", 165e12),
    (r"V100", 125e12),
    (r"\bT4\b", 65e12),
)


def _vit_tokens(cfg: Any) -> int:
    """Tokens the ViT produces per image: the patches plus CLS."""
    return (cfg.image_size // cfg.patch_size) ** 2 + 1


def _attention(heads: int, head_dim: int, s_q: int, s_k: int) -> int:
    """Forward ``QK^T`` + ``PV`` of one sequence."""
    return 2 * (2 * heads * s_q * s_k * head_dim)


def vit_flops(model: Any) -> int:
    """Forward FLOPs of ``model.visual_encoder`` (EVA-ViT-G as Blip2VisionModel) for one image."""
    cfg = model.visual_encoder.config
    w, m, n = cfg.hidden_size, cfg.intermediate_size, _vit_tokens(cfg)
    patches = n - 1
    patch_embed = 2 * patches * 3 * cfg.patch_size**2 * w  # RGB Conv2d, stride = kernel = patch
    linear = 2 * n * (3 * w * w + w * w + 2 * w * m)  # qkv, projection, fc1, fc2
    attn = _attention(cfg.num_attention_heads, w // cfg.num_attention_heads, n, n)
    return patch_embed + cfg.num_hidden_layers * (linear + attn)


def qformer_flops(model: Any) -> int:
    """Forward FLOPs of ``model.qformer`` for one image: ``query_tokens.shape[1]`` queries, cross-attention
    (every ``cross_attention_frequency`` layers, from layer 0) over the ViT tokens; 0 without a Q-Former."""
    if model.qformer is None:
        return 0
    cfg = model.qformer.config
    q, h, n, e = model.query_tokens.shape[1], cfg.hidden_size, _vit_tokens(model.visual_encoder.config), cfg.encoder_hidden_size
    hd = h // cfg.num_attention_heads
    self_attn = 2 * q * 4 * h * h + _attention(cfg.num_attention_heads, hd, q, q)
    mlp = 2 * q * 2 * h * cfg.intermediate_size
    cross = 2 * q * 2 * h * h + 2 * n * 2 * e * h + _attention(cfg.num_attention_heads, hd, q, n)  # q, o; k, v
    n_cross = len(range(0, cfg.num_hidden_layers, cfg.cross_attention_frequency))
    return cfg.num_hidden_layers * (self_attn + mlp) + n_cross * cross


def image_tokens(model: Any) -> int:
    """LLM tokens per image: the queries, or without a Q-Former a quarter of the ViT patches."""
    if model.qformer is None:
        return (_vit_tokens(model.visual_encoder.config) - 1) // 4
    return int(model.query_tokens.shape[1])


def _llm_parts(config: Any, seq_len: int) -> tuple[int, int]:
    """(linear-layer FLOPs incl. lm_head, attention-kernel FLOPs) of one LLaMA forward."""
    h, s = config.hidden_size, seq_len
    heads, kv = config.num_attention_heads, getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    hd = getattr(config, "head_dim", None) or h // heads
    proj = 2 * s * h * (2 * heads * hd + 2 * kv * hd)  # q and o; k and v
    mlp = 2 * s * 3 * h * config.intermediate_size  # gate, up, down
    layers = config.num_hidden_layers
    return layers * (proj + mlp) + 2 * s * h * config.vocab_size, layers * _attention(heads, hd, s, s)


def llm_flops(config: Any, seq_len: int) -> int:
    """LLaMA forward FLOPs for one sequence of ``seq_len`` tokens (logits at every position)."""
    return sum(_llm_parts(config, seq_len))


def llm_backward_flops(config: Any, seq_len: int) -> int:
    """LLaMA backward FLOPs with frozen weights: activation gradients only (one matmul per linear layer,
    the lm_head's included). Attention backward: 5 matmuls (sdpa/flash), 4 for ``eager``."""
    linear, attn = _llm_parts(config, seq_len)
    eager = getattr(config, "_attn_implementation", None) == "eager"
    return linear + (2 * attn if eager else 5 * attn // 2)


def train_flops_per_sample(model: Any, seq_len: int, cut: str | None = None) -> int:
    """FLOPs of one stage-2 training sample of ``seq_len`` LLM tokens (everything but ``llama_proj``
    frozen): the vision stack's forward (``cut="vit"``: features cached after the ViT, the Q-Former
    forward only; ``cut="qformer"``: none), ``llama_proj`` forward + weight gradient (its input needs
    no gradient), the LLM forward and its activation-only backward."""
    if cut not in (None, "vit", "qformer"):
        raise ValueError(f"cut {cut!r}: expected None, 'vit' or 'qformer'")
    if not all(getattr(model, "frozen", {}).values()):
        raise ValueError("train_flops_per_sample counts the frozen ViT / Q-Former / LLM setup only")
    vision = {None: vit_flops(model) + qformer_flops(model), "vit": qformer_flops(model), "qformer": 0}[cut]
    proj = model.llama_proj
    proj_flops = 2 * (2 * image_tokens(model) * proj.in_features * proj.out_features)
    cfg = model.llama_model.config
    return vision + proj_flops + llm_flops(cfg, seq_len) + llm_backward_flops(cfg, seq_len)


def peak_flops_per_s(device: torch.device, override_tflops: float | None = None) -> float | None:
    """Peak FLOP/s: ``override_tflops * 1e12`` when given, else the dense bf16 peak of a known CUDA
    GPU (by name); None on CPU or for an unknown GPU."""
    if override_tflops is not None:
        return float(override_tflops) * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for pattern, peak in PEAK_FLOPS if re.search(pattern, name, re.IGNORECASE)), None)


def mfu(flops: float, seconds: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: achieved FLOP/s over ``peak``; None without a peak or a positive time."""
    if peak is None or peak <= 0 or seconds <= 0:
        return None
    return flops / seconds / peak
