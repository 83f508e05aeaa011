"""Declarative config schemas: every key has a type, a default and a line of documentation.

A schema is a ``dict[str, Key]``. Model classes, dataset builders, processors and the runner each
own one (``SCHEMA`` class attribute: ``Configurable``); ``minigpt4.config`` validates YAML against
them and the key table in docs/config.md is generated from them (``python -m minigpt4.commands.config_docs``).
What else ``load_config`` reads from a registered class is declared here too: ``DatasetConfigurable``
(dataset builders) and ``ModelConfigurable`` (model classes, a base class with defaults).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

REQUIRED = object()  # sentinel default: the key must be given


@dataclass(frozen=True)
class Key:
    """One config key.

    type: accepted Python type(s); ``float`` also accepts ``int``.
    choices: allowed values. nullable: ``null`` is allowed.
    path: "file" / "dir" / "any": when set (not null) it must exist on disk.
    children: a nested mapping with fixed keys; with ``nullable`` and a ``None`` default the mapping
    is off unless given, and a given mapping is completed with the children's defaults.
    check: extra validation, returns a list of problems (for free-form mappings).
    check_merged: validation of the final value only (after the defaults, the file and --options are
    merged), for checks a placeholder default would fail (shard patterns matching files).
    ignored: the reason a key of the official configs has no effect here; such a key is accepted
    (type and ``check`` still apply), reported with the reason and left out of the result.
    """

    doc: str
    type: type | tuple[type, ...] = str
    default: Any = REQUIRED
    choices: tuple | None = None
    nullable: bool = False
    path: str | None = None
    children: Mapping[str, Key] | None = None
    check: Callable[[Any], list[str]] | None = field(default=None, compare=False)
    check_merged: Callable[[Any], list[str]] | None = field(default=None, compare=False)
    ignored: str | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and self.ignored is None

    def type_name(self) -> str:
        if self.children is not None:
            return "mapping" + (" or null" if self.nullable else "")
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        name = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
        if self.path:
            name = f"path ({self.path})"
        return name + (" or null" if self.nullable else "")


def ignored_key(reason: str, type: type | tuple[type, ...] = object, check: Callable[[Any], list[str]] | None = None) -> Key:
    """A key of the official configs that has no effect here (``reason``), accepted so those files load."""
    return Key(f"Official config key, ignored: {reason}", type, None, nullable=True, check=check, ignored=reason)


def at_least(low: float) -> Callable[[Any], list[str]]:
    """A ``Key.check`` that requires ``value >= low``."""
    return lambda v: [] if v >= low else [f"expected a value >= {low}, got {v}"]


def only(*allowed: Any) -> Callable[[Any], list[str]]:
    """A ``Key.check`` that accepts only these values."""
    return lambda v: [] if v in allowed else [f"only {' or '.join(repr(a) for a in allowed)} is supported here, got {v!r}"]


_TYPE_NAMES = {object: "any", str: "str", int: "int", float: "float", bool: "bool", list: "list", dict: "mapping"}


def type_problem(key: Key, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``key`` (None when it is)."""
    if value is None:
        return None if key.nullable or key.required else "must not be null"
    types = key.type if isinstance(key.type, tuple) else (key.type,)
    if key.children is not None:
        types = (dict,)
    ok = False
    for t in types:
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            ok = True
        elif t is int and isinstance(value, bool):
            continue
        elif isinstance(value, t):
            ok = True
    if not ok:
        return f"expected {key.type_name()}, got {type(value).__name__} {value!r}"
    if key.choices is not None and value not in key.choices:
        return f"expected one of {list(key.choices)}, got {value!r}"
    if key.check is not None:
        problems = key.check(value)
        if problems:
            return "; ".join(problems)
    return None


def unknown_key_message(name: str, schema: Mapping[str, Key]) -> str:
    close = difflib.get_close_matches(name, list(schema), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown key.{hint} Allowed keys: {', '.join(sorted(schema))}"


def defaults(schema: Mapping[str, Key]) -> dict[str, Any]:
    """The default values of a schema (required keys and null-free nested mappings included)."""
    out: dict[str, Any] = {}
    for name, key in schema.items():
        if key.children is not None:
            out[name] = None if key.nullable and key.default is None else defaults(key.children)
        elif not key.required and key.ignored is None:
            out[name] = key.default
    return out


def table_rows(schema: Mapping[str, Key], prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) rows, nested keys dotted; used for the generated docs."""
    rows = []
    for name, key in schema.items():
        dotted = f"{prefix}{name}"
        if key.children is not None:
            rows.append((dotted, key.type_name(), "`null`" if key.nullable and key.default is None else "", key.doc))
            rows.extend(table_rows(key.children, dotted + "."))
            continue
        if key.ignored is not None:
            rows.append((dotted, key.type_name(), "ignored", key.doc))
            continue
        default = "**required**" if key.required else f"`{json.dumps(key.default)}`".replace("|", "\\|")
        rows.append((dotted, key.type_name(), default, key.doc))
    return rows


class Configurable(Protocol):
    """A registered class configured by one config section (a model, a dataset entry, a processor, the run)."""

    SCHEMA: ClassVar[Mapping[str, Key]]  # the section's keys
    registry_name: ClassVar[str]  # set by ``Registry.register``


class DatasetConfigurable(Configurable, Protocol):
    """A dataset builder: its section's defaults come from a YAML file of the package."""

    DEFAULT_CONFIG_PATH: ClassVar[str]  # relative to the package folder, holding ``datasets: {<name>: {...}}``


class ModelConfigurable:
    """Base class of a model class's config side, as ``load_config`` reads it: the ``model`` section's
    keys, its ``model_type`` defaults files and official names, and checks across keys."""

    SCHEMA: ClassVar[Mapping[str, Key]] = {}
    registry_name: ClassVar[str] = ""
    MODEL_TYPES: ClassVar[Mapping[str, str | Path]] = {}  # model_type -> its defaults file (a ``model:`` section)
    MODEL_TYPE_ALIASES: ClassVar[Mapping[str, str]] = {}  # official model_type name -> ours
    DEFAULT_MODEL_TYPE: ClassVar[str] = ""  # when the config gives none

    @staticmethod
    def config_problems(model: Mapping[str, Any], origins: Mapping[str, str]) -> list[str]:
        """Problems across the merged ``model`` section's keys (``origins``: key -> where it was set); none by default."""
        return []
