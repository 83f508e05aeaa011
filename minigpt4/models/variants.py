"""The official MiniGPT-4 (v1) variants: their names in the official configs and their released
checkpoints. One table, read by the model's config defaults, its checkpoint errors, the random
full-size stacks and the README's checkpoint table (a test keeps them in step)."""

from __future__ import annotations

from dataclasses import dataclass

from minigpt4.utils.prompt import DEFAULT_TEMPLATE, LLAMA2_TEMPLATE

# model_type -> its canonical name: the official names (Apr-Aug 2023: pretrain_vicuna; later
# pretrain_vicuna0 / pretrain_llama2) are aliases of ours. 7B and 13B Vicuna share one model type:
# the size comes from the LLM folder.
MODEL_TYPE_ALIASES: dict[str, str] = {
    "pretrain_vicuna": "vicuna0",
    "pretrain_vicuna0": "vicuna0",
    "pretrain_llama2": "llama2",
}
# arch -> canonical: the official code registered "mini_gpt4" until Oct 2023, "minigpt4" after
ARCH_ALIASES: dict[str, str] = {"mini_gpt4": "minigpt4"}

# The LLMs of the official variants (transformers LlamaConfig fields): Vicuna-7B v0 has LLaMA-7B's
# config, Vicuna-13B LLaMA-13B's, Llama-2-7b-chat its own (4096 positions, rms eps 1e-5).
VICUNA7B_LLM = {
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "vocab_size": 32000,
}
VICUNA13B_LLM = {
    **VICUNA7B_LLM,
    "hidden_size": 5120,
    "intermediate_size": 13824,
    "num_hidden_layers": 40,
    "num_attention_heads": 40,
    "num_key_value_heads": 40,
}
LLAMA2_7B_LLM = {**VICUNA7B_LLM, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5}
OFFICIAL_LLMS: dict[str, dict] = {"vicuna-7b": VICUNA7B_LLM, "vicuna-13b": VICUNA13B_LLM, "llama2-7b": LLAMA2_7B_LLM}


@dataclass(frozen=True)
class Checkpoint:
    """One released MiniGPT-4 checkpoint and what it needs."""

    file: str
    model_type: str
    llm: str
    template: str
    end_sym: str
    proj_shape: tuple[int, int]  # llama_proj.weight: [LLM hidden size, image feature width]

    @property
    def description(self) -> str:
        return f"MiniGPT-4 {self.llm} (model_type {self.model_type}, {self.file})"


OFFICIAL_CHECKPOINTS: tuple[Checkpoint, ...] = (
    Checkpoint("prerained_minigpt4_7b.pth", "vicuna0", "Vicuna-7B v0", DEFAULT_TEMPLATE, "###", (4096, 768)),
    Checkpoint("pretrained_minigpt4.pth", "vicuna0", "Vicuna-13B v0", DEFAULT_TEMPLATE, "###", (5120, 768)),
    Checkpoint("pretrained_minigpt4_llama2_7b.pth", "llama2", "Llama-2-7b-chat-hf", LLAMA2_TEMPLATE, "</s>", (4096, 5632)),
)


def likely_checkpoint(proj_shape: tuple[int, ...]) -> Checkpoint | None:
    """The released checkpoint whose ``llama_proj.weight`` has this shape, if any."""
    return next((c for c in OFFICIAL_CHECKPOINTS if c.proj_shape == tuple(proj_shape)), None)


def projection_mismatch_hint(found: tuple[int, ...], own: tuple[int, ...], source: str) -> str:
    """What a checkpoint's ``llama_proj.weight`` shape ``found`` says against a model's ``own`` ("" when
    equal): the released variant each belongs to. ``source``: what feeds the model's projection."""
    if found == own:
        return ""
    theirs, mine = likely_checkpoint(found), likely_checkpoint(own)
    return (
        f"the checkpoint's llama_proj is {found[1]} -> {found[0]}"
        + (f", as in {theirs.description}" if theirs else "")
        + f"; this model's is {own[1]} -> {own[0]} ({source} -> LLM hidden size)"
        + (f", as in {mine.description}" if mine else "")
        + ": use the model_type and LLM that match the checkpoint (model.has_qformer and llama_model)"
    )


def canonical_model_type(name: str) -> str:
    return MODEL_TYPE_ALIASES.get(name, name)
