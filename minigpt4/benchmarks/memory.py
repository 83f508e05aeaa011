"""``python -m minigpt4.benchmarks memory``: the GPU memory a training step needs at the official sizes,
projection only vs LoRA, estimated on a CPU where no GPU is at hand.

- weights, trainable parameters, gradients and AdamW's two moments: exact, from MiniGPT4 built on the
  meta device at the size (LLM bf16, EVA-ViT-G fp16, Q-Former fp32, trainable fp32 x 4);
- activations: MEASURED, as the bytes autograd keeps (``saved_tensors_hooks``, parameters excluded,
  each storage once) for a training step through LLaMA decoder layers of the real width (bf16, CPU
  kernels) with inputs that need a gradient (they come from llama_proj), per layer (2 layers minus
  1) times the layer count, plus the rest (LM head, loss) once; measured at batch 2, scaled to the batch.
  With ``llm_grad_checkpoint`` a layer keeps only its input (batch x length x hidden, bf16) and the
  backward pass recomputes one layer at a time.

Not included: the CUDA context and allocator slack (about 1-2 GB in practice), the ViT's activations
(it is frozen and runs without a graph) and temporary buffers inside kernels. A lower bound to check
with ``python -m minigpt4.benchmarks full`` on a GPU (``--train-options model.lora.r=64``).
"""

from __future__ import annotations

import argparse
from functools import cache
from typing import Any

import torch
from transformers import Blip2QFormerModel, LlamaConfig, LlamaForCausalLM

from minigpt4.models.lora import add_adapters
from minigpt4.models.minigpt4 import MiniGPT4
from minigpt4.models.qformer import qformer_config
from minigpt4.models.variants import OFFICIAL_LLMS
from minigpt4.models.vision import build_vision_encoder, vision_config

from .full import VARIANTS

GiB = 1024**3
# tokens per training sample: BOS + template (~13) + image tokens + instruction (~10) + caption + end_sym
SEQ_LEN = {"vicuna-7b": 80, "vicuna-13b": 80, "llama2-7b": 112}
# stage 1 ([BOS][image tokens][caption + newline], at most max_txt_len 32 text tokens): the longest sample
STAGE1_LEN = {"vicuna-7b": 1 + 32 + 32, "vicuna-13b": 1 + 32 + 32, "llama2-7b": 1 + 64 + 32}
LORA = {"r": 64, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--sizes", nargs="+", default=list(SEQ_LEN), choices=list(SEQ_LEN))
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[12, 64])
    ap.add_argument(
        "--stage1", action="store_true", help="stage-1 samples (no prompt, 32 caption tokens at most), projection only, batch 64"
    )


def saved_bytes(llm: torch.nn.Module, batch: int, length: int) -> int:
    """Bytes autograd keeps for one training step of ``llm`` (each storage once, parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in llm.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = max(seen.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    hidden = llm.config.hidden_size
    embeds = torch.randn(batch, length, hidden, dtype=torch.bfloat16, requires_grad=True)
    labels = torch.randint(0, llm.config.vocab_size, (batch, length))
    llm.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = llm(inputs_embeds=embeds, labels=labels, use_cache=False).loss
    loss.backward()
    return sum(seen.values())


@cache
def activation_model(size: str, with_lora: bool, length: int, batch: int = 2) -> dict[str, float]:
    """Measured activation bytes per sample: per decoder layer and for the rest (head and loss)."""
    measured = []
    for layers in (1, 2):
        torch.manual_seed(0)
        llm = LlamaForCausalLM(LlamaConfig(**{**OFFICIAL_LLMS[size], "num_hidden_layers": layers})).to(torch.bfloat16)
        llm.requires_grad_(False)
        if with_lora:
            llm = add_adapters(llm, LORA)
        measured.append(saved_bytes(llm, batch, length))
    per_layer = (measured[1] - measured[0]) / batch
    return {"per_layer": per_layer, "rest": measured[0] / batch - per_layer}


@cache
def static_bytes(size: str, with_lora: bool) -> dict[str, float]:
    """Weights (as a GPU run holds them) and the trainable state, from the model on the meta device."""
    with torch.device("meta"):  # the official EVA-ViT-G and Q-Former are the configs' defaults
        vit = build_vision_encoder(vision_config(224, {}))
        llm = LlamaForCausalLM(LlamaConfig(**OFFICIAL_LLMS[size]))
        qformer = Blip2QFormerModel(qformer_config(vit.config.hidden_size, {})) if VARIANTS[size][2] else None
        queries = torch.nn.Parameter(torch.zeros(1, 32, qformer.config.hidden_size)) if qformer else None
        model = MiniGPT4(vit, qformer, queries, llm, _Tokenizer(), ["<Img><ImageHere></Img> x"], lora=LORA if with_lora else None)
    count = lambda m: sum(p.numel() for p in m.parameters() if not p.requires_grad)  # noqa: E731
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen_rest = count(model) - count(model.llama_model) - count(model.visual_encoder)
    return {
        "llm": 2 * count(model.llama_model),
        "vit": 2 * count(model.visual_encoder),
        "qformer": 4 * frozen_rest,
        "trainable": 16 * trainable,
        "trainable_params": trainable,
        "layers": OFFICIAL_LLMS[size]["num_hidden_layers"],
        "hidden": OFFICIAL_LLMS[size]["hidden_size"],
    }


class _Tokenizer:
    """Enough of a tokenizer for MiniGPT4's constructor (end_sym ids) on the meta device."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __call__(self, text: str, add_special_tokens: bool = False) -> Any:
        return type("Ids", (), {"input_ids": [3 + (ord(c) % 50) for c in text]})()

    def decode(self, ids: list[int]) -> str:
        return "###"


def estimate(size: str, batch: int, with_lora: bool, checkpointing: bool, length: int | None = None) -> dict[str, float]:
    length = length or SEQ_LEN[size]
    st, act = static_bytes(size, with_lora), activation_model(size, with_lora, length)
    if checkpointing:  # each layer keeps its bf16 input; one layer's activations during its recomputation
        acts = batch * (st["layers"] * length * st["hidden"] * 2 + act["per_layer"] + act["rest"])
    else:
        acts = batch * (st["layers"] * act["per_layer"] + act["rest"])
    weights = st["llm"] + st["vit"] + st["qformer"]
    return {
        "weights": weights,
        "trainable": st["trainable"],
        "trainable_params": st["trainable_params"],
        "activations": acts,
        "total": weights + st["trainable"] + acts,
    }


def main(args: argparse.Namespace, command: str) -> None:
    print(f"`{command}`\n")
    print(
        "| size | tokens/sample | trainable | batch | LLM checkpointing | weights GiB | trainable state GiB | activations GiB | total GiB |"
    )
    print("|---|---:|---|---:|---|---:|---:|---:|---:|")
    lengths, loras, batches = (STAGE1_LEN, (False,), [64]) if args.stage1 else (SEQ_LEN, (False, True), args.batch_sizes)
    for size in args.sizes:
        for lora in loras:
            for batch in batches:
                for ckpt in (False, True):
                    e = estimate(size, batch, lora, ckpt, lengths[size])
                    what = f"{'LoRA r 64 q,v + ' if lora else ''}llama_proj: {e['trainable_params']:,}"
                    print(
                        f"| {size}{' stage 1' if args.stage1 else ''} | {lengths[size]} | {what} | {batch} | {'on' if ckpt else 'off'} | "
                        f"{e['weights'] / GiB:.1f} | {e['trainable'] / GiB:.2f} | {e['activations'] / GiB:.1f} | "
                        f"{e['total'] / GiB:.1f} |",
                        flush=True,
                    )
