"""Caption text processors: ``blip_caption`` (BLIP's caption cleaning: lower case, punctuation removed,
at most ``max_words`` words; docs/data.md) and ``caption_as_written``."""

from __future__ import annotations

import re

from minigpt4.config.schema import Key
from minigpt4.registry import PROCESSORS

from .base import BaseProcessor

_PUNCT = re.compile(r'[.!"()*#:;~]')


def clean_caption(text: str, max_words: int = 50) -> str:
    """Lower-case, each of ``.!"()*#:;~`` -> space, collapse whitespace, strip, first ``max_words`` words."""
    words = _PUNCT.sub(" ", text.lower()).split()
    return " ".join(words[:max_words])


@PROCESSORS.register("blip_caption")
class BlipCaptionProcessor(BaseProcessor):
    """``prompt + clean_caption(text, max_words)``."""

    SCHEMA = {
        "prompt": Key("Text prepended to every processed caption.", str, ""),
        "max_words": Key("Keep at most this many words of the caption.", int, 50),
    }

    def __init__(self, prompt: str = "", max_words: int = 50) -> None:
        if max_words <= 0:
            raise ValueError(f"max_words must be positive, got {max_words}")
        self.prompt = prompt
        self.max_words = max_words

    def __call__(self, text: str) -> str:
        return self.prompt + clean_caption(text, self.max_words)


@PROCESSORS.register("caption_as_written")
class CaptionAsWrittenProcessor(BaseProcessor):
    """The caption unchanged (case, punctuation and length kept), as the official MiniGPT-4 stage-2
    dataset uses its captions; ``cc_sbu_align`` always uses it."""

    def __call__(self, text: str) -> str:
        return text
