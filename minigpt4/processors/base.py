"""Processor plumbing: build a processor from a ``{name: ..., <keys>}`` mapping and validate such
mappings against the processor's ``SCHEMA`` (used as ``Key.check`` by the dataset schemas)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from minigpt4.config.schema import Key, defaults, type_problem, unknown_key_message
from minigpt4.errors import ConfigError
from minigpt4.registry import PROCESSORS

SLOTS = ("train", "eval")


def plain(cfg: Any) -> Any:
    """An OmegaConf node as plain Python containers (other values unchanged)."""
    if isinstance(cfg, DictConfig) or OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    return copy.deepcopy(cfg)


def processor_problems(spec: Any, where: str = "", default_name: str | None = None) -> list[str]:
    """Problems of one processor mapping ``{name: blip2_image_eval, image_size: 224}``.

    ``default_name`` is the name assumed when ``spec`` omits it (a partial override of a default).
    """
    at = f"{where}: " if where else ""
    if not isinstance(spec, Mapping):
        return [f"{at}expected a mapping like {{name: blip2_image_eval, image_size: 224}}, got {spec!r}"]
    name = spec.get("name", default_name)
    if name is None:
        return [f"{at}'name' is missing (registered processors: {', '.join(PROCESSORS.names())})"]
    try:
        cls = PROCESSORS.get(name)
    except KeyError as e:
        return [f"{at}{e.args[0]}"]
    problems = []
    for key, value in spec.items():
        if key == "name":
            continue
        if key not in cls.SCHEMA:
            problems.append(f"{at}processor '{name}' key '{key}': {unknown_key_message(str(key), cls.SCHEMA)}")
            continue
        problem = type_problem(cls.SCHEMA[key], value)
        if problem:
            problems.append(f"{at}processor '{name}' key '{key}': {problem}")
    return problems


def processors_check(default: Mapping[str, Mapping]) -> Callable[[Any], list[str]]:
    """A ``Key.check`` for ``{train: {...}, eval: {...}}``; a slot without ``name`` uses ``default``'s."""

    def check(value: Any) -> list[str]:
        if not isinstance(value, Mapping):
            return [f"expected a mapping with keys {list(SLOTS)}, got {value!r}"]
        problems = []
        for slot, spec in value.items():
            if slot not in SLOTS:
                problems.append(f"unknown processor slot '{slot}'; allowed: {', '.join(SLOTS)}")
                continue
            problems += processor_problems(spec, slot, (default.get(slot) or {}).get("name"))
        return problems

    return check


def processors_key(doc: str, default: dict) -> Key:
    """The schema key of a dataset's ``vis_processor`` / ``text_processor`` mapping."""
    return Key(doc, dict, default, check=processors_check(default))


class BaseProcessor:
    """A registered processor; subclasses set ``SCHEMA`` and take its keys as constructor kwargs."""

    SCHEMA: dict[str, Key] = {}

    def cache_identity(self) -> dict[str, Any] | None:
        """What decides this processor's output, when it is a pure function of the input (two
        processors with equal identities give equal outputs, so cached image features can be shared);
        None when the output is random or unknown (no feature caching behind it)."""
        return None

    @classmethod
    def from_config(cls, cfg: Any = None) -> BaseProcessor:
        """Build from a mapping of ``SCHEMA`` keys (``name`` allowed), validated here (``ConfigError``)."""
        return build_processor({"name": cls.registry_name, **(plain(cfg) or {})}, cls.registry_name)


def create_processor(spec: Mapping[str, Any]) -> BaseProcessor:
    """The processor of an already validated ``{name, ...keys}`` mapping (a dataset entry's slot)."""
    spec = dict(spec)
    cls = PROCESSORS.get(spec.pop("name"))
    try:
        return cls(**{**defaults(cls.SCHEMA), **spec})
    except ValueError as e:  # a value the constructor rejects (e.g. image_size 0)
        raise ConfigError([f"processor '{cls.registry_name}': {e}"]) from None


def build_processor(spec: Any, where: str = "processor") -> BaseProcessor:
    """Build the processor named by ``spec['name']`` (direct use); problems raise ``ConfigError`` naming ``where``."""
    spec = plain(spec)
    problems = processor_problems(spec, where)
    if problems:
        raise ConfigError(problems)
    return create_processor(spec)
