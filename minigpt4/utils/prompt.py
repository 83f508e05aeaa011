"""The one prompt template used for training, evaluation and demos, and the instruction file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minigpt4.errors import DataError

IMAGE_PLACEHOLDER = "<ImageHere>"
DEFAULT_TEMPLATE = "###Human: {} ###Assistant: "  # Vicuna v0 (MiniGPT-4's own)
LLAMA2_TEMPLATE = "[INST] {} [/INST] "  # Llama-2-chat (MiniGPT-4's Llama-2 variant)
# what the stage-2 and evaluation configs set over the model's (stage-1) defaults, per variant
STAGE2_TEXT = {
    "vicuna0": {"end_sym": "###", "prompt_template": DEFAULT_TEMPLATE},
    "llama2": {"end_sym": "</s>", "prompt_template": LLAMA2_TEMPLATE},
}


@dataclass(frozen=True)
class PromptTemplate:
    """Wraps an instruction (which holds ``<ImageHere>``) in the conversation template."""

    template: str = DEFAULT_TEMPLATE

    def __post_init__(self) -> None:
        if self.template.count("{}") != 1:
            raise ValueError(f"prompt_template must contain exactly one '{{}}', got {self.template!r}")

    def wrap(self, instruction: str) -> str:
        return self.template.format(instruction)

    def split(self, instruction: str) -> tuple[str, str]:
        """The wrapped prompt as (text before the image, text after the image)."""
        text = self.wrap(instruction)
        if text.count(IMAGE_PLACEHOLDER) != 1:
            raise ValueError(f"instruction must contain {IMAGE_PLACEHOLDER} exactly once: {instruction!r}")
        before, after = text.split(IMAGE_PLACEHOLDER)
        return before, after


def load_instructions(path: str | Path) -> list[str]:
    """Instruction lines of a prompt file; each non-empty line must contain ``<ImageHere>`` once."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: prompt file not found")
    lines = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.count(IMAGE_PLACEHOLDER) != 1:
            raise DataError(f"{path} line {n}: instruction must contain {IMAGE_PLACEHOLDER} exactly once: {line!r}")
        lines.append(line)
    if not lines:
        raise DataError(f"{path}: no instructions (one per line, each containing {IMAGE_PLACEHOLDER})")
    return lines
