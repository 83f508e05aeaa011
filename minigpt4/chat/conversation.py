"""A conversation: turns of (images, question, answer) under a template, and trimming to a context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from minigpt4.errors import ChatError

from .templates import IMAGE_MESSAGE, ConversationTemplate


@dataclass
class Turn:
    """One user message (``images`` pictures, then ``question``) and the model's ``answer`` (None: open)."""

    question: str
    images: list[Any] = field(default_factory=list)
    answer: str | None = None

    @property
    def user_message(self) -> str:
        """The official form: ``<Img><ImageHere></Img>`` per image, then the text, space-joined."""
        return " ".join([IMAGE_MESSAGE] * len(self.images) + ([self.question] if self.question else []))


@dataclass
class Conversation:
    """Images waiting for the next question (``pending``) and the turns so far. Images are whatever the
    caller keeps for them (the session keeps processed pixel tensors), in the order they were added."""

    template: ConversationTemplate
    turns: list[Turn] = field(default_factory=list)
    pending: list[Any] = field(default_factory=list)

    def add_image(self, image: Any) -> None:
        self.pending.append(image)

    def ask(self, question: str) -> None:
        """Open a turn: the pending images and ``question``."""
        if self.turns and self.turns[-1].answer is None:
            raise ChatError("the last question has no answer yet")
        if not question.strip() and not self.pending:
            raise ChatError("empty question: type some text or add an image")
        self.turns.append(Turn(question.strip(), self.pending))
        self.pending = []

    def close(self, answer: str) -> None:
        """Store the answer of the open turn."""
        if not self.turns or self.turns[-1].answer is not None:
            raise ChatError("no open question to answer")
        self.turns[-1].answer = answer

    def images(self) -> list[Any]:
        """Every image of the turns, in prompt order."""
        return [im for t in self.turns for im in t.images]

    def prompt(self) -> str:
        """The text the LLM sees, ending in the open assistant turn when a question is open."""
        messages: list[tuple[int, str | None]] = []
        for t in self.turns:
            messages += [(0, t.user_message), (1, t.answer)]
        return self.template.render(messages)

    def fit(self, length: Callable[[Conversation], int], limit: int) -> int:
        """Drop the oldest answered turns until ``length(self) <= limit``; their images move into the
        oldest kept turn, so neither the system text nor an image is ever cut. Returns the number of
        turns dropped; raises ``ChatError`` (changing nothing) when even the last question alone does
        not fit."""
        trial = Conversation(self.template, [Turn(t.question, list(t.images), t.answer) for t in self.turns])
        dropped = 0
        while length(trial) > limit:
            if len(trial.turns) < 2:
                raise ChatError(
                    f"the prompt needs {length(trial)} tokens (system text, {len(trial.images())} image(s) and "
                    f"the question) but only {limit} fit before the answer: lower max_new_tokens, ask a "
                    "shorter question or start again with fewer images"
                )
            oldest = trial.turns.pop(0)
            trial.turns[0].images[:0] = oldest.images
            dropped += 1
        self.turns = trial.turns  # only a fit that succeeds changes the conversation
        return dropped
