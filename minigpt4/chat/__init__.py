"""Talk to a model: ``ChatSession`` (one conversation) over a ``ChatEngine`` (one loaded model), used by
``minigpt4-chat`` (terminal) and ``minigpt4-demo`` (web). See docs/chat.md."""

from .conversation import Conversation, Turn
from .engine import ChatEngine
from .loading import load_engine
from .session import ChatSession
from .settings import GenerationSettings
from .templates import LLAMA2, VICUNA0, ConversationTemplate, plain_template

__all__ = [
    "LLAMA2",
    "VICUNA0",
    "ChatEngine",
    "ChatSession",
    "Conversation",
    "ConversationTemplate",
    "GenerationSettings",
    "Turn",
    "load_engine",
    "plain_template",
]
