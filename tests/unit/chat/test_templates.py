"""The conversation templates render exactly as the official MiniGPT-4 ones (spec: chat-and-demo.md A1)."""

from __future__ import annotations

import pytest

from minigpt4.chat.conversation import Conversation
from minigpt4.chat.templates import LLAMA2, VICUNA0, choose_template, plain_template
from minigpt4.errors import ChatError
from minigpt4.utils.prompt import DEFAULT_TEMPLATE, LLAMA2_TEMPLATE

SYSTEM = (
    "Give the following image: <Img>ImageContent</Img>. You will be able to see the image once I provide it to you. "
    "Please answer my questions."
)


def two_turns(template) -> Conversation:
    conv = Conversation(template)
    conv.add_image("img")
    conv.ask("What is this?")
    conv.close("A dog.")
    conv.ask("What colour is it?")
    return conv


def test_vicuna0_renders_the_official_prompt_with_history():
    assert VICUNA0.system == SYSTEM
    assert two_turns(VICUNA0).prompt() == (
        SYSTEM + "###Human: <Img><ImageHere></Img> What is this?###Assistant: A dog.###Human: What colour is it?###Assistant: "
    )


def test_llama2_renders_the_official_prompt_with_history():
    assert two_turns(LLAMA2).prompt() == (
        SYSTEM + "<s>[INST] <Img><ImageHere></Img> What is this? [/INST] A dog.<s>[INST] What colour is it? [/INST] "
    )


def test_plain_vicuna_is_the_training_prompt_and_its_end_sym_closes_each_answer():
    plain = plain_template(DEFAULT_TEMPLATE, "###")
    first = Conversation(plain)
    first.add_image("img")
    first.ask("Describe this image.")
    assert first.prompt() == DEFAULT_TEMPLATE.format("<Img><ImageHere></Img> Describe this image.")
    assert two_turns(plain).prompt() == (
        "###Human: <Img><ImageHere></Img> What is this? ###Assistant: A dog.###Human: What colour is it? ###Assistant: "
    )


def test_plain_llama2_ends_each_answer_with_eos():
    plain = plain_template(LLAMA2_TEMPLATE, "</s>")
    assert two_turns(plain).prompt() == "[INST] <Img><ImageHere></Img> What is this? [/INST] A dog.</s>[INST] What colour is it? [/INST] "
    assert plain.stop == "</s>"


def test_several_images_in_one_question():
    conv = Conversation(VICUNA0)
    conv.add_image("a")
    conv.add_image("b")
    conv.ask("Which is bigger?")
    assert conv.prompt().endswith("###Human: <Img><ImageHere></Img> <Img><ImageHere></Img> Which is bigger?###Assistant: ")
    assert conv.images() == ["a", "b"]


def test_the_template_follows_the_variant_unless_plain_is_asked():
    assert choose_template("official", "vicuna0", DEFAULT_TEMPLATE, "###") is VICUNA0
    assert choose_template("official", "llama2", LLAMA2_TEMPLATE, "</s>") is LLAMA2
    assert choose_template("plain", "vicuna0", DEFAULT_TEMPLATE, "###").system == ""
    with pytest.raises(ChatError, match="expected one of official, plain"):
        choose_template("fancy", "vicuna0", DEFAULT_TEMPLATE, "###")


def test_a_question_needs_text_or_an_image_and_an_answer_before_the_next():
    conv = Conversation(VICUNA0)
    with pytest.raises(ChatError, match="empty question"):
        conv.ask("  ")
    conv.ask("hi")
    with pytest.raises(ChatError, match="no answer yet"):
        conv.ask("again")
