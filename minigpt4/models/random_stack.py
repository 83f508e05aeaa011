"""Random MiniGPT-4 stacks in the official file formats, at the official sizes (``vicuna-7b``,
``vicuna-13b``, ``llama2-7b``), to measure GPU memory and time before downloading the real weights
(the command: ``minigpt4-random-stack``); ``minigpt4.testing`` adds tiny sizes for the tests.

``build_random_stack(out_dir, size)`` writes, with random weights:
  - ``llama/``: a LLaMA Hugging Face directory (``save_pretrained``) with a sentencepiece tokenizer
    trained locally (BPE, byte fallback, unk 0 / bos 1 / eos 2),
  - ``eva_vit_g.pth``: a plain state dict in the EVA layout, with one block more than the model uses
    (as the official file has 40 blocks for 39 used),
  - ``blip2_pretrained.pth``: ``{"model": {"Qformer.bert.*", "query_tokens", "ln_vision.*", ...}}`` including
    the text-side and ``t5_proj`` keys that MiniGPT-4 drops,
  - ``minigpt4_ckpt.pth``: ``{"model": {"llama_proj.*", <a buffer>}}`` like the official checkpoint.
The Llama-2 variant (``has_qformer=False``) has no BLIP-2 file and a ``llama_proj`` from 4 ViT patches.
These load through exactly the code paths of the real files (``model_type: vicuna0`` / ``llama2``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from transformers import Blip2QFormerModel, LlamaConfig, LlamaForCausalLM

from minigpt4.utils.io import atomic_torch_save
from minigpt4.utils.prompt import DEFAULT_TEMPLATE, IMAGE_PLACEHOLDER, LLAMA2_TEMPLATE

from .llm import load_tokenizer
from .minigpt4 import PATCHES_PER_TOKEN
from .qformer import hf_to_blip2, qformer_config
from .sizes import SIZES, canonical_size
from .vision import build_vision_encoder, hf_to_eva, vision_config

_BASE_CORPUS = [
    "a red circle on a blue background",
    "two green squares on the left of the picture",
    "three yellow triangles near the top",
    "a white star in the center of a black image",
    "A man in an orange hat starring at something.",
    "Two young guys with shaggy hair look at their hands.",
    "A little girl climbing into a wooden playhouse.",
    "Several men in hard hats are operating a giant pulley.",
    "a dog runs across the grass",
    "people are walking down a busy city street at night",
]


def train_tokenizer(out_dir: Path, corpus: Iterable[str], vocab_size: int = 400, template: str = DEFAULT_TEMPLATE) -> Path:
    """Train a LLaMA-style sentencepiece BPE model on ``corpus`` and prompts in ``template``; returns the
    ``tokenizer.model`` path."""
    import sentencepiece as spm

    lines = list(corpus)
    prompt = template.format(f"<Img>{IMAGE_PLACEHOLDER}</Img> Describe this image in detail.")
    prompts = [prompt + ("###" if template == DEFAULT_TEMPLATE else "")]
    out_dir.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines + prompts * 20),
        model_prefix=str(out_dir / "tokenizer"),
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        hard_vocab_limit=False,
        character_coverage=1.0,
        minloglevel=2,
        num_threads=1,
    )
    (out_dir / "tokenizer.vocab").unlink(missing_ok=True)
    return out_dir / "tokenizer.model"


def write_random_llama(
    out_dir: Path,
    corpus: Iterable[str] | None,
    sizes: dict[str, Any],
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    tokenizer_vocab: int = 400,
    template: str = DEFAULT_TEMPLATE,
) -> Path:
    """A random ``LlamaForCausalLM`` of ``sizes`` (``LlamaConfig`` arguments) + a tokenizer trained on
    ``corpus``, saved as a Hugging Face directory. ``sizes["vocab_size"]``, when given, may exceed the
    tokenizer's (the extra rows are never produced by encoding; decoding skips them)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sp_path = train_tokenizer(tmp / "sp", list(corpus or []) + _BASE_CORPUS, tokenizer_vocab, template)
        shutil.copy(sp_path, tmp / "tokenizer.model")
        (tmp / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "legacy": True})
        )
        tokenizer = load_tokenizer(tmp)
        llm_sizes = {"vocab_size": len(tokenizer), **sizes}
        if llm_sizes["vocab_size"] < len(tokenizer):
            raise ValueError(f"vocab_size {llm_sizes['vocab_size']} < the tokenizer's {len(tokenizer)} pieces")
        torch.manual_seed(seed)
        config = LlamaConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0, **llm_sizes)
        with torch.device(device):
            model = LlamaForCausalLM._from_config(config, dtype=dtype)
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir)
        del model
        tokenizer.save_pretrained(out_dir)
        shutil.copy(tmp / "tokenizer.model", out_dir / "tokenizer.model")
    return out_dir


def official_vit_state(vit: torch.nn.Module) -> tuple[dict, dict]:
    """A Blip2VisionModel as (``eva_vit_g.pth`` content, ``ln_vision.*`` for the BLIP-2 file)."""
    return hf_to_eva(vit.state_dict())


def official_blip2_state(qformer: Blip2QFormerModel, query_tokens: torch.Tensor, ln_vision: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``{"model": ...}`` in the BLIP-2 layout, with the keys MiniGPT-4 drops added as in the real file."""
    sd = hf_to_blip2(qformer.state_dict(), query_tokens, ln_vision)
    h = qformer.config.hidden_size
    sd["Qformer.bert.embeddings.word_embeddings.weight"] = torch.randn(30, h) * 0.02
    sd["Qformer.bert.embeddings.position_embeddings.weight"] = torch.randn(16, h) * 0.02
    sd["Qformer.bert.embeddings.position_ids"] = torch.arange(16)[None]
    sd["Qformer.bert.encoder.layer.0.intermediate.dense.weight"] = torch.randn(4 * h, h) * 0.02
    sd["Qformer.bert.encoder.layer.0.output.dense.weight"] = torch.randn(h, 4 * h) * 0.02
    sd["Qformer.cls.predictions.bias"] = torch.zeros(30)
    sd["t5_proj.weight"] = torch.randn(8, h) * 0.02
    return {"model": sd}


def build_random_stack(
    out_dir: str | Path, size: str, seed: int = 0, corpus: Iterable[str] | None = None, device: str | torch.device = "cpu"
) -> dict[str, str]:
    """Write a random stack at one of ``SIZES`` (or an earlier name of one; the official sizes: about 16 GB
    of files for 7B, 28 GB for 13B); returns the paths for the ``model`` config (``llama_model``,
    ``vit_ckpt``, ``q_former_model`` (not without a Q-Former), ``ckpt``)."""
    size = canonical_size(size)
    if size not in SIZES:
        raise ValueError(f"size {size!r}: expected one of {sorted(SIZES)}")
    s = SIZES[size]
    return write_random_stack(
        out_dir,
        seed,
        corpus,
        s["image_size"],
        s["num_query_token"],
        s["vit"],
        s["qformer"],
        s["llm"],
        s["dtype"],
        device,
        s["tokenizer_vocab"],
        s["has_qformer"],
    )


def write_random_stack(
    out_dir: str | Path,
    seed: int,
    corpus: Iterable[str] | None,
    image_size: int,
    num_query_token: int,
    vit: dict,
    qformer: dict,
    llm: dict,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    tokenizer_vocab: int = 400,
    has_qformer: bool = True,
) -> dict[str, str]:
    """Write a random stack with exactly these sizes (``{}`` = the official ViT / Q-Former); the LLM is
    created on ``device`` and it and the ViT file are saved in ``dtype``. ``has_qformer=False``: the
    Llama-2 variant (no BLIP-2 file; ``llama_proj`` takes 4 concatenated ViT patches)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    llama_dir = write_random_llama(
        out / "llama", corpus, llm, seed, dtype, device, tokenizer_vocab, DEFAULT_TEMPLATE if has_qformer else LLAMA2_TEMPLATE
    )
    torch.manual_seed(seed)
    vit_cfg = vision_config(image_size, vit)
    written_depth = vit_cfg.num_hidden_layers + 1  # as the official file: one block more than used
    vit_model = build_vision_encoder(vision_config(image_size, {**vit, "num_hidden_layers": written_depth}))
    with torch.no_grad():  # a non-trivial ln_vision, so a wrong map shows
        vit_model.post_layernorm.weight.uniform_(0.5, 1.5)
        vit_model.post_layernorm.bias.normal_(0, 0.1)
    eva, ln_vision = official_vit_state(vit_model)
    atomic_torch_save({k: v.to(dtype) if v.is_floating_point() else v for k, v in eva.items()}, out / "eva_vit_g.pth")
    del vit_model, eva
    paths = {"llama_model": str(llama_dir), "vit_ckpt": str(out / "eva_vit_g.pth")}
    if has_qformer:
        q_model = Blip2QFormerModel(qformer_config(vit_cfg.hidden_size, qformer))
        query_tokens = torch.randn(1, num_query_token, q_model.config.hidden_size) * 0.02
        atomic_torch_save(official_blip2_state(q_model, query_tokens, ln_vision), out / "blip2_pretrained.pth")
        paths["q_former_model"] = str(out / "blip2_pretrained.pth")
        width = q_model.config.hidden_size
    else:
        width = PATCHES_PER_TOKEN * vit_cfg.hidden_size
    llm_hidden = json.loads((llama_dir / "config.json").read_text())["hidden_size"]
    proj = torch.nn.Linear(width, llm_hidden)
    atomic_torch_save(
        {
            "model": {
                "llama_proj.weight": proj.weight.detach(),
                "llama_proj.bias": proj.bias.detach(),
                "llama_model.model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(4),
            }
        },
        out / "minigpt4_ckpt.pth",
    )
    return {**paths, "ckpt": str(out / "minigpt4_ckpt.pth")}
