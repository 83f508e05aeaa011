"""LoRA adapters on the frozen LLM (``model.lora``), with the ``peft`` library.

The LLM's own weights stay frozen; ``peft`` adds ``lora_A``/``lora_B`` to the named linear modules
(MiniGPT-v2's recipe: r 64, alpha 16, dropout 0.05 on ``q_proj`` and ``v_proj``). ``lora_B`` starts
at zero, so a fresh adapter leaves the LLM's outputs unchanged: the baseline of a LoRA run is the
model it starts from. ``lora_A`` is drawn from a fixed seed, the same in every run and process.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from minigpt4.config.schema import Key, at_least
from minigpt4.errors import ConfigError

ADAPTER_MARK = ".lora_"  # in the parameter names peft gives the adapters (lora_A, lora_B)
LORA_SEED = 0


def _fraction(value: float) -> list[str]:
    return [] if 0 <= value < 1 else [f"expected a dropout probability in [0, 1), got {value}"]


def _names(value: list) -> list[str]:
    if not value or not all(isinstance(v, str) and v for v in value):
        return [f"expected a non-empty list of module names such as [q_proj, v_proj], got {value!r}"]
    return []


LORA_SCHEMA: dict[str, Key] = {
    "r": Key("Rank of each adapter (MiniGPT-v2: 64).", int, 64, check=at_least(1)),
    "alpha": Key("LoRA scaling numerator: the update is (alpha / r) * B A (MiniGPT-v2: 16).", float, 16, check=at_least(0)),
    "dropout": Key("Dropout on the adapters' input while training (MiniGPT-v2: 0.05).", float, 0.05, check=_fraction),
    "target_modules": Key(
        "Names (or dotted name endings) of the LLM's linear modules that get adapters; LLaMA has "
        "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj and lm_head.",
        list,
        ["q_proj", "v_proj"],
        check=_names,
    ),
}


def linear_module_names(llm: nn.Module) -> list[str]:
    """The distinct last names of the LLM's ``nn.Linear`` modules (``q_proj``, ..., ``lm_head``)."""
    return sorted({name.rsplit(".", 1)[-1] for name, m in llm.named_modules() if isinstance(m, nn.Linear) and name})


def target_problems(targets: list[str], llm: nn.Module) -> list[str]:
    """Targets that match no linear module of ``llm`` (peft's rule: the full name, or its ending after a dot)."""
    names = [name for name, m in llm.named_modules() if isinstance(m, nn.Linear)]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if not missing:
        return []
    return [
        f"{', '.join(map(repr, missing))} {'matches' if len(missing) == 1 else 'match'} no linear module of the "
        f"LLM ({type(llm).__name__}); its linear modules are: {', '.join(linear_module_names(llm))}"
    ]


def llm_skeleton(llama_model: str | Path) -> nn.Module:
    """The LLM of a Hugging Face folder built on the meta device from its config.json (no weights read)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(llama_model), local_files_only=True)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def config_problems(model: Mapping[str, Any], origins: Mapping[str, str]) -> list[str]:
    """Problems of ``model.lora`` against the rest of the model section (read before anything loads);
    ``origins``: the file (or --options) that set each dotted key."""
    lora = model.get("lora")
    if lora is None:
        return []
    origin = origins.get("model.lora", "the config")
    if not model.get("freeze_llm", True):
        return [
            f"model.lora in {origin}: LoRA adapts a frozen LLM, but model.freeze_llm is false (set in "
            f"{origins.get('model.freeze_llm', 'defaults')}): the whole LLM would train and the adapters would "
            "add nothing; set freeze_llm: true for LoRA, or lora: null to train the whole LLM"
        ]
    path = model.get("llama_model")
    if not path or not (Path(path) / "config.json").is_file():
        return []  # reported as a missing llama_model
    try:
        skeleton = llm_skeleton(path)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        return [f"model.llama_model: cannot read the LLM's config.json in {path}: {e}"]
    where = origins.get("model.lora.target_modules", "defaults")
    return [f"model.lora.target_modules in {where}: {p}" for p in target_problems(list(lora["target_modules"]), skeleton)]


def add_adapters(llm: nn.Module, lora: Mapping[str, Any]) -> nn.Module:
    """``llm`` wrapped by ``peft`` with fresh adapters (``lora_A`` from ``LORA_SEED``, ``lora_B`` zero);
    the LLM's own parameters are frozen. Raises ``ConfigError`` for unknown target modules."""
    from peft import LoraConfig, get_peft_model

    targets = list(lora["target_modules"])
    problems = target_problems(targets, llm)
    if problems:
        raise ConfigError([f"model.lora.target_modules: {p}" for p in problems])
    config = LoraConfig(
        r=int(lora["r"]),
        lora_alpha=float(lora["alpha"]),
        lora_dropout=float(lora["dropout"]),
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(LORA_SEED)
        # peft reads transformers' deprecated is_gradient_checkpointing: not ours to fix, not the user's to see
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(llm, config)


def merged_llm(llm: nn.Module) -> nn.Module:
    """The plain Hugging Face LLM with the adapters folded into its weights (W + alpha/r * B A)."""
    return llm.merge_and_unload()


def adapter_parameters(named: Mapping[str, torch.Tensor] | Any) -> dict[str, int]:
    """``{"llama_proj": n, "adapters": m, "other": k}`` parameter counts of named tensors."""
    counts = {"llama_proj": 0, "adapters": 0, "other": 0}
    for name, p in dict(named).items():
        part = "adapters" if ADAPTER_MARK in name else "llama_proj" if name.startswith("llama_proj.") else "other"
        counts[part] += p.numel()
    return counts


def describe_adapters(state: Mapping[str, torch.Tensor]) -> str:
    """What the adapter weights of a checkpoint are: rank and target modules, read from the names and shapes."""
    ranks = {tuple(v.shape)[0] for k, v in state.items() if ".lora_A." in k}
    targets = sorted({k.split(".lora_A.")[0].rsplit(".", 1)[-1] for k in state if ".lora_A." in k})
    return f"LoRA adapters (r={'/'.join(map(str, sorted(ranks)))} on {', '.join(targets)})"
