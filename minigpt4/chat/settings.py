"""Generation settings of a chat: greedy by default (deterministic); sampling, beams and the rest on request."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from minigpt4.errors import ChatError

# key -> (type, lowest, highest or None, what it does): the one description of every setting, read by
# the validation, ``/settings`` and the docs' table
FIELDS: dict[str, tuple[type, float, float | None, str]] = {
    "max_new_tokens": (int, 1, None, "most tokens in an answer"),
    "sample": (bool, 0, 1, "sample the next token (false: greedy, or beam search with num_beams > 1)"),
    "temperature": (float, 0.01, 5.0, "sampling temperature"),
    "top_p": (float, 0.01, 1.0, "nucleus sampling: keep the smallest set of tokens with this probability"),
    "num_beams": (int, 1, 20, "beam search width (1: none; answers then arrive whole, not streamed)"),
    "repetition_penalty": (float, 1.0, 5.0, "penalty on repeated tokens (1: none)"),
    "length_penalty": (float, -5.0, 5.0, "beam search: exponent on the length (above 0 favours longer answers)"),
    "max_length": (int, 16, None, "most tokens of prompt + answer (also capped by the LLM's context size)"),
    "seed": (int, 0, None, "seed of the sampling (none: a new one per answer, reported)"),
}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class GenerationSettings:
    """The official demo's knobs with our defaults: greedy, 300 new tokens, 2000 tokens in all."""

    max_new_tokens: int = 300
    sample: bool = False
    temperature: float = 1.0
    top_p: float = 0.9
    num_beams: int = 1
    repetition_penalty: float = 1.0
    length_penalty: float = 1.0
    max_length: int = 2000
    seed: int | None = None

    def __post_init__(self) -> None:
        for key in FIELDS:
            _check(key, getattr(self, key))

    def updated(self, pairs: Iterable[str] = (), **values: Any) -> GenerationSettings:
        """A copy with ``KEY=VALUE`` strings (``/settings``, ``--set``) and ``values`` applied."""
        changes = dict(values)
        for pair in pairs:
            key, eq, text = pair.partition("=")
            key = key.strip().replace("-", "_")
            if not eq or key not in FIELDS:
                raise ChatError(f"setting {pair!r}: expected KEY=VALUE with KEY one of {', '.join(FIELDS)}")
            changes[key] = parse(key, text.strip())
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        return " ".join(f"{k}={getattr(self, k)}" for k in FIELDS)


def parse(key: str, text: str) -> Any:
    """``text`` as setting ``key``'s type (``none`` clears the seed)."""
    kind = FIELDS[key][0]
    if key == "seed" and text.lower() in ("none", "null", ""):
        return None
    if kind is bool:
        if text.lower() not in _TRUE | _FALSE:
            raise ChatError(f"setting {key}={text!r}: expected true or false")
        return text.lower() in _TRUE
    try:
        return kind(text)
    except ValueError:
        raise ChatError(f"setting {key}={text!r}: expected {'an integer' if kind is int else 'a number'}") from None


def _check(key: str, value: Any) -> None:
    kind, low, high, _ = FIELDS[key]
    if key == "seed" and value is None:
        return
    if kind is bool:
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or float(value).is_integer())
    if not ok:
        raise ChatError(f"setting {key}={value!r}: expected {kind.__name__}")
    if kind is not bool and (value < low or (high is not None and value > high)):
        expected = f"{low} to {high}" if high is not None else f"at least {low}"
        raise ChatError(f"setting {key}={value}: expected {expected}")
