"""The LLaMA / Vicuna language model and its tokenizer, loaded from a local Hugging Face directory."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch
from torch import nn
from transformers import AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerBase

from minigpt4.errors import ConfigError, WeightsError
from minigpt4.utils.dist import read_launch_env
from minigpt4.utils.dtypes import DTYPES

log = logging.getLogger(__name__)


def llm_dtype(name: str, device: torch.device) -> torch.dtype:
    """The LLM's dtype for ``model.llm_dtype`` on ``device`` (fp32 or bf16 on CPU; ``auto``: bf16 where supported)."""
    if device.type != "cuda":
        if name == "fp16":
            log.warning("llm_dtype fp16 is not supported on CPU; using fp32")
        return torch.bfloat16 if name == "bf16" else torch.float32
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return DTYPES[name]


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """LLaMA tokenizer with the original ids (``legacy=True``), right padding, pad = unk when unset."""
    tok = AutoTokenizer.from_pretrained(str(path), legacy=True)
    tok.padding_side = "right"
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token
    return tok


def gpu_for_8bit(device: torch.device, device_8bit: int | None, world_size: int) -> tuple[int, str | None]:
    """The GPU index for this process's 8-bit LLM (``low_resource``) and a warning, or None.

    ``device`` is the process's CUDA device (its local rank's). ``device_8bit`` null = that device;
    an explicit index is honoured only in a single-process run: with several processes each rank
    loads its copy on its own device, so that the copies are not stacked on one GPU."""
    if device.type != "cuda":
        raise ValueError(f"an 8-bit LLM needs a CUDA device, got {device}")
    own = device.index if device.index is not None else 0  # plain "cuda": the first visible GPU
    if device_8bit is None:
        return own, None
    if world_size <= 1:
        return device_8bit, None
    return own, (
        f"model.device_8bit: {device_8bit} applies to a single-process run only; with {world_size} processes "
        f"each loads its 8-bit LLM on its own GPU (this one: cuda:{own}); set it to null"
    )


def load_llm(
    path: str | Path, dtype: torch.dtype, device: torch.device | None = None, low_resource: bool = False, device_8bit: int | None = None
) -> LlamaForCausalLM:
    """``LlamaForCausalLM.from_pretrained`` from a local directory (no hub access); ``low_resource``:
    in 8-bit on the GPU :func:`gpu_for_8bit` picks from ``device`` and ``device_8bit``, else on ``device``."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise WeightsError(f"llama_model: {path} is not a Hugging Face model directory (no config.json)")
    kwargs: dict = {"dtype": dtype, "local_files_only": True}
    if low_resource:
        if not torch.cuda.is_available():
            raise ConfigError("model.low_resource: true loads the LLM in 8-bit, which needs a CUDA GPU; none is available")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError("model.low_resource: true needs the bitsandbytes package: pip install bitsandbytes")
        from transformers import BitsAndBytesConfig

        own = device if device is not None and device.type == "cuda" and device.index is not None else None
        own = own or torch.device("cuda", torch.cuda.current_device())
        gpu, warning = gpu_for_8bit(own, device_8bit, read_launch_env().world_size)
        if warning:
            log.warning(warning)
        kwargs.update(quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map={"": gpu})
    elif device is not None and device.type == "cuda":
        kwargs["device_map"] = {"": device}
    model = LlamaForCausalLM.from_pretrained(str(path), **kwargs)
    log.info("loaded LLM from %s (%s, %.1fM parameters)", path, dtype, sum(p.numel() for p in model.parameters()) / 1e6)
    return model


def enable_checkpointing(model: nn.Module) -> None:
    """Gradient (activation) checkpointing of a transformers model's layers, non-reentrant (it works with
    frozen parameters). transformers >= 5 renamed gradient_checkpointing_enable activation_checkpointing_enable."""
    new = getattr(model, "activation_checkpointing_enable", None)
    if new is not None:
        new(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def is_quantized(llm: nn.Module) -> bool:
    """True for an 8-bit (bitsandbytes) model, which must not be moved with ``.to()``."""
    return bool(getattr(llm, "is_quantized", False) or getattr(llm, "is_loaded_in_8bit", False))
