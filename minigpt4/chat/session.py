"""``ChatSession``: one conversation with a ``ChatEngine``'s model, the class every chat front end uses."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .conversation import Conversation
from .engine import ChatEngine
from .settings import GenerationSettings

log = logging.getLogger("minigpt4")


@dataclass(frozen=True)
class ChatImage:
    """An image of the conversation: its file and its pixels as the evaluation prepares them."""

    path: str
    pixels: torch.Tensor


def _held_back(text: str, stop: str) -> int:
    """How many trailing characters of ``text`` might still become ``stop`` (or a whole character)."""
    partial = len(text) - len(text.rstrip("\ufffd"))  # a UTF-8 character not complete yet
    if partial:
        return partial
    for n in range(min(len(stop) - 1, len(text)), 0, -1):
        if stop.startswith(text[-n:]):
            return n
    return 0


class ChatSession:
    """Add images, ask, get the answer whole (``answer``) or in pieces (``stream``). Every turn's history
    is in the prompt; when prompt + ``max_new_tokens`` would pass the LLM's context, the oldest turns are
    dropped (never the system text or an image) and ``notices`` says so. ``template``: ``official``
    (the variant's demo template) or ``plain`` (the model's training template, no system text)."""

    def __init__(
        self,
        engine: ChatEngine,
        template: str = "official",
        settings: GenerationSettings | None = None,
        conversation: Conversation | None = None,
    ) -> None:
        """``conversation``: go on with one kept elsewhere (the demo keeps one per checkpoint)."""
        self.engine = engine
        self.template_kind = template
        self.settings = settings or GenerationSettings()
        self.conversation = conversation or Conversation(engine.template(template))
        self.notices: list[str] = []
        self.last_prompt: str | None = None
        self.last_seed: int | None = None

    def reset(self) -> None:
        self.conversation = Conversation(self.engine.template(self.template_kind))
        self.last_prompt = None

    def add_image(self, path: str | Path) -> None:
        """Attach an image to the next question (``ChatError`` names an unreadable file)."""
        self.conversation.add_image(ChatImage(str(path), self.engine.image(path)))

    def answer(self, question: str, settings: GenerationSettings | None = None) -> str:
        for _ in self.stream(question, settings):
            pass
        return self.conversation.turns[-1].answer or ""

    def stream(self, question: str, settings: GenerationSettings | None = None, cancel: threading.Event | None = None) -> Iterator[str]:
        """Ask ``question`` (with the images added since the last one) and yield the answer in pieces;
        their concatenation is the answer stored in the history (unless decoding a longer answer
        changed text already shown, which tokenizers do not do in practice). Closing the iterator early (or
        setting ``cancel``) keeps the part answered so far."""
        settings = settings or self.settings
        conv = self.conversation
        conv.ask(question)
        stop = conv.template.stop
        shown = final = ""
        try:
            embeds = self._prompt_embeds(settings)
            for out in self.engine.generate(embeds, settings, stop, cancel):
                self.last_seed = out.seed
                text = self.engine.decode(out.ids, stop).lstrip()
                visible = text.rstrip() if out.done else text[: len(text) - _held_back(text, stop)].rstrip()
                final = visible
                if visible.startswith(shown) and len(visible) > len(shown):
                    piece, shown = visible[len(shown) :], visible  # shown before the caller may close us
                    yield piece
        except BaseException:
            if conv.turns and conv.turns[-1].answer is None:
                if shown:
                    conv.close(shown)  # cancelled (GeneratorExit) or failed midway: keep what was shown
                else:
                    self._withdraw()
            raise
        conv.close(final)

    def _withdraw(self) -> None:
        """Take the open question back (its images wait for the next one)."""
        turn = self.conversation.turns.pop()
        self.conversation.pending[:0] = turn.images

    def _prompt_embeds(self, settings: GenerationSettings):
        conv, engine = self.conversation, self.engine
        image_embeds = engine.encode([im.pixels for im in conv.images()])
        budget = engine.context_size(settings) - settings.max_new_tokens
        dropped = conv.fit(lambda c: engine.prompt_length(c.prompt(), image_embeds), budget)
        if dropped:
            note = (
                f"the conversation was too long for the LLM's context ({engine.context_size(settings)} tokens with "
                f"max_new_tokens {settings.max_new_tokens}): dropped the {dropped} oldest turn(s); the system text "
                "and every image are kept"
            )
            self.notices.append(note)
            log.warning(note)
        self.last_prompt = conv.prompt()
        return engine.embed(self.last_prompt, image_embeds)
