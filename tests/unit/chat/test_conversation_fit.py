"""Context trimming drops the oldest turns, never the system text or an image, and says when it cannot."""

from __future__ import annotations

import pytest

from minigpt4.chat.conversation import Conversation
from minigpt4.chat.templates import VICUNA0
from minigpt4.errors import ChatError


def words(conv: Conversation) -> int:
    return len(conv.prompt().split()) + 10 * len(conv.images())  # an image: 10 "tokens"


def long_conversation() -> Conversation:
    conv = Conversation(VICUNA0)
    conv.add_image("first")
    conv.ask("one two three four five")
    conv.close("six seven eight nine ten")
    conv.add_image("second")
    conv.ask("eleven twelve thirteen")
    conv.close("fourteen fifteen")
    conv.ask("last question")
    return conv


def test_fit_drops_the_oldest_turns_and_keeps_the_system_text_and_every_image():
    conv = long_conversation()
    before = words(conv)
    dropped = conv.fit(words, before - 5)
    assert dropped == 1
    prompt = conv.prompt()
    assert prompt.startswith(VICUNA0.system)
    assert "one two" not in prompt and "six seven" not in prompt
    assert conv.images() == ["first", "second"]  # the dropped turn's image moved into the next turn
    assert prompt.count("<ImageHere>") == 2
    assert "eleven twelve thirteen" in prompt and prompt.endswith("last question###Assistant: ")


def test_fit_can_drop_every_answered_turn_but_not_the_question():
    conv = long_conversation()
    assert conv.fit(words, words(conv) - 12) == 2  # one turn frees 10, the two 15
    assert [t.question for t in conv.turns] == ["last question"]
    assert conv.images() == ["first", "second"]
    with pytest.raises(ChatError, match="lower max_new_tokens"):
        conv.fit(words, 5)


def test_fit_changes_nothing_when_the_prompt_fits():
    conv = long_conversation()
    prompt = conv.prompt()
    assert conv.fit(words, 10_000) == 0
    assert conv.prompt() == prompt
