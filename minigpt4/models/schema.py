"""Schema of the ``model`` section for ``arch: minigpt4``."""

from __future__ import annotations

from typing import Any

from transformers import Blip2QFormerConfig, Blip2VisionConfig

from minigpt4.config.schema import Key, ignored_key, only
from minigpt4.utils.prompt import DEFAULT_TEMPLATE, LLAMA2_TEMPLATE

from .lora import LORA_SCHEMA

DEFAULT_MODEL_TYPE = "vicuna0"
# The official MiniGPT-4 code's own defaults (MiniGPT4.from_config), which its stage-1 configs rely on and
# its stage-2 and eval configs override: no template, captions ended by a newline, 32 text tokens.
STAGE1_DEFAULTS = {"max_txt_len": 32, "end_sym": "\n", "prompt_template": "{}"}
_V2_ONLY = "read by MiniGPT-v2 only; the official MiniGPT-4 v1 code (arch minigpt4) never passes it on (LoRA here: model.lora)"

_VIT_KEYS = set(Blip2VisionConfig().to_dict())
_QFORMER_KEYS = set(Blip2QFormerConfig().to_dict())


def _config_keys(allowed: set[str], reserved: dict[str, str], owner: str):
    def check(value: Any) -> list[str]:
        problems = []
        for k in value:
            if k in reserved:
                problems.append(f"'{k}' is set by {reserved[k]}, not here")
            elif k not in allowed:
                problems.append(f"'{k}' is not a {owner} field (allowed: {', '.join(sorted(allowed - set(reserved)))})")
        return problems

    return check


def _local(value: str) -> list[str]:
    if value.startswith(("http://", "https://")):
        return [f"{value!r} is a URL: nothing is downloaded here; download the file and give its local path"]
    return []


MODEL_SCHEMA: dict[str, Key] = {
    "arch": Key("Registered model name.", str),
    "model_type": Key(
        "Defaults file for the arch: vicuna0 (Vicuna v0 7B or 13B; official names pretrain_vicuna0 and "
        "pretrain_vicuna) or llama2 (Llama-2-7b-chat, no Q-Former; official name pretrain_llama2); "
        "custom_imports add more: tiny and tiny_llama2 (tests, minigpt4.testing), standin (the "
        "quickstart's pre-trained stand-ins, minigpt4.quickstart).",
        str,
        DEFAULT_MODEL_TYPE,
    ),
    "llama_model": Key("Local Hugging Face directory of the LLaMA/Vicuna LLM and its tokenizer.", str, path="dir", check=_local),
    "vit_ckpt": Key(
        "EVA-ViT-G weights in the eva_vit_g.pth layout; null = random (tests only).", str, None, nullable=True, path="file", check=_local
    ),
    "q_former_model": Key(
        "BLIP-2 weights (Q-Former, query_tokens, ln_vision) in the blip2_pretrained_flant5xxl.pth "
        "layout; null = random (tests only). Not used (a warning says so) when has_qformer is false.",
        str,
        None,
        nullable=True,
        path="file",
        check=_local,
    ),
    "has_qformer": Key(
        "The Q-Former between the ViT and llama_proj (Vicuna variants). false = the Llama-2 variant: "
        "the CLS token dropped, each 4 consecutive patches of ln_vision(ViT(x)) concatenated ([B, 64, "
        "5632]) into llama_proj; ln_vision keeps its default initialisation (no BLIP-2 file is read).",
        bool,
        True,
    ),
    "ckpt": Key(
        "MiniGPT-4 checkpoint with llama_proj (official or one of ours); null = a fresh projection (the same seeded init in every run).",
        str,
        None,
        nullable=True,
        path="file",
    ),
    "image_size": Key("Input image side in pixels (ViT position embeddings are resized to it).", int, 224),
    "num_query_token": Key("Number of learned Q-Former queries (image tokens given to the LLM).", int, 32),
    "max_txt_len": Key(
        "Most answer tokens per sample, end_sym included (longer answers are truncated). The default is the official "
        "code's (stage 1); stage-2 and evaluation configs set 160 (ours 300).",
        int,
        STAGE1_DEFAULTS["max_txt_len"],
    ),
    "end_sym": Key(
        "Text that ends every answer; generation stops at it. Default: the official code's stage-1 newline; "
        'stage 2 sets "###" (Vicuna) or "</s>" (Llama-2).',
        str,
        STAGE1_DEFAULTS["end_sym"],
    ),
    "prompt_path": Key(
        "Instruction file, one instruction with <ImageHere> per line: where the evaluation's instruction comes from "
        "(run.eval_instruction null = its first line). Training instructions come from each dataset entry.",
        str,
        "prompts/alignment.txt",
        path="file",
    ),
    "prompt_template": Key(
        "Conversation template; {} is replaced by the instruction. Default {} (no template: the official code's "
        f"stage 1, [BOS][image][caption]); stage 2 sets {DEFAULT_TEMPLATE!r} (Vicuna) or {LLAMA2_TEMPLATE!r} (Llama-2).",
        str,
        STAGE1_DEFAULTS["prompt_template"],
    ),
    "vit_precision": Key(
        "ViT weights/compute on GPU: fp16 (official), bf16 or fp32. CPU always runs fp32.", str, "fp16", choices=("fp16", "bf16", "fp32")
    ),
    "llm_dtype": Key("LLM dtype: auto = bf16 on CUDA, fp32 on CPU.", str, "auto", choices=("auto", "fp16", "bf16", "fp32")),
    "low_resource": Key("Load the LLM in 8-bit (needs CUDA and bitsandbytes).", bool, False),
    "device_8bit": Key(
        "GPU index for the 8-bit LLM when low_resource is on. null = the process's own GPU (cuda:<LOCAL_RANK> "
        "under torchrun), so each rank loads its copy on its own GPU; an index is honoured in a single-process "
        "run only (with several processes it is reported and each rank uses its own GPU).",
        int,
        None,
        nullable=True,
    ),
    "use_grad_checkpoint": Key("Gradient checkpointing in the ViT (only matters when the ViT trains).", bool, False),
    "freeze_vit": Key("Freeze the ViT and ln_vision (MiniGPT-4: true).", bool, True),
    "freeze_qformer": Key("Freeze the Q-Former and query tokens (MiniGPT-4: true).", bool, True),
    "freeze_llm": Key("Freeze the LLM (MiniGPT-4: true).", bool, True),
    "lora": Key(
        "LoRA adapters on the frozen LLM (peft), trained with llama_proj: null = projection only (MiniGPT-4 "
        "stage 2), or a mapping of the keys below (given keys over their defaults, MiniGPT-v2's). Needs "
        "freeze_llm: true. Checkpoints then hold llama_proj and the adapters; minigpt4-export merges them "
        "into a plain Hugging Face LLM.",
        dict,
        None,
        nullable=True,
        children=LORA_SCHEMA,
    ),
    "llm_grad_checkpoint": Key(
        "Gradient (activation) checkpointing in the LLM's decoder layers while training: each "
        "layer's activations are recomputed in the backward pass instead of kept, for memory. "
        "Works with and without lora; no effect on results.",
        bool,
        False,
    ),
    "vit_config": Key(
        "Overrides for transformers.Blip2VisionConfig (hidden_size, num_hidden_layers, ...). Default: official EVA-ViT-G, 39 blocks.",
        dict,
        {},
        check=_config_keys(_VIT_KEYS, {"image_size": "model.image_size"}, "Blip2VisionConfig"),
    ),
    "qformer_config": Key(
        "Overrides for transformers.Blip2QFormerConfig (hidden_size, num_hidden_layers, ...). "
        "Default: BERT-base, cross-attention every 2 layers.",
        dict,
        {},
        check=_config_keys(_QFORMER_KEYS, {"encoder_hidden_size": "the ViT width (vit_config)"}, "Blip2QFormerConfig"),
    ),
    # keys of the official configs that have no effect
    "vit_model": ignored_key("the vision encoder is always EVA-ViT-G (its weights: vit_ckpt)", str, only("eva_clip_g")),
    "drop_path_rate": ignored_key(
        "stochastic depth in the ViT, which only matters when the ViT trains; only 0 (the official value) is supported",
        (int, float),
        only(0),
    ),
    "prompt": ignored_key("the official MiniGPT-4 v1 code never reads it (instructions come from prompt_path)"),
    "lora_r": ignored_key(_V2_ONLY),
    "lora_alpha": ignored_key(_V2_ONLY),
    "lora_dropout": ignored_key(_V2_ONLY),
    "lora_target_modules": ignored_key(_V2_ONLY),
}
