"""Conversation templates: the official MiniGPT-4 ones, exact (``CONV_VISION_Vicuna0``,
``CONV_VISION_LLama2``), and ``plain``: the model's training ``prompt_template`` with no system text.

A conversation renders as the official ``SINGLE`` style does: ``system + sep``, then per message
``role + message + sep`` (``role`` alone for the open assistant turn the model answers)."""

from __future__ import annotations

from dataclasses import dataclass

from minigpt4.errors import ChatError
from minigpt4.utils.prompt import PromptTemplate

IMAGE_MESSAGE = "<Img><ImageHere></Img>"  # what an image adds to the user's message (official upload_img)
OFFICIAL_SYSTEM = (
    "Give the following image: <Img>ImageContent</Img>. "
    "You will be able to see the image once I provide it to you. Please answer my questions."
)
TEMPLATE_CHOICES = ("official", "plain")


@dataclass(frozen=True)
class ConversationTemplate:
    """``roles``: (user, assistant) prefixes; ``sep`` follows every message; ``answer_end`` also follows
    a finished answer (plain templates: the model's ``end_sym``, as in its training text); ``stop``
    ends an answer (a text, or the LLM's EOS when it is the EOS token's text)."""

    name: str
    system: str
    roles: tuple[str, str]
    sep: str
    stop: str
    answer_end: str = ""

    def render(self, messages: list[tuple[int, str | None]]) -> str:
        """``messages``: (0 user / 1 assistant, text or None for the open turn) in order."""
        out = self.system + self.sep
        for role, text in messages:
            if text is None:
                out += self.roles[role]
            else:
                out += self.roles[role] + text + self.sep + (self.answer_end if role == 1 else "")
        return out


VICUNA0 = ConversationTemplate("vicuna0", OFFICIAL_SYSTEM, ("Human: ", "Assistant: "), "###", stop="###")
LLAMA2 = ConversationTemplate("llama2", OFFICIAL_SYSTEM, ("<s>[INST] ", " [/INST] "), "", stop="</s>")
OFFICIAL = {"vicuna0": VICUNA0, "llama2": LLAMA2}  # the model's variant -> its demo's template


def plain_template(prompt_template: str, end_sym: str) -> ConversationTemplate:
    """The training template as a conversation: ``'###Human: {} ###Assistant: '`` gives the roles
    ``'###Human: '`` and ``' ###Assistant: '``; each answer ends with ``end_sym`` unless the next
    user role already starts with it (as ``###`` does)."""
    user, assistant = PromptTemplate(prompt_template).template.split("{}")
    end = "" if end_sym and user.startswith(end_sym) else end_sym
    return ConversationTemplate("plain", "", (user, assistant), "", stop=end_sym, answer_end=end)


def choose_template(kind: str, variant: str, prompt_template: str, end_sym: str) -> ConversationTemplate:
    """``official`` (the variant's demo template) or ``plain`` (the model's training template)."""
    if kind == "plain":
        return plain_template(prompt_template, end_sym)
    if kind != "official":
        raise ChatError(f"template {kind!r}: expected one of {', '.join(TEMPLATE_CHOICES)}")
    if variant not in OFFICIAL:
        raise ChatError(f"no official conversation template for the {variant!r} variant; use the plain template")
    return OFFICIAL[variant]
