"""A small generic registry: classes register under a name and are built from config.

One instance per kind (models, dataset builders, processors, tasks, runners, lr schedulers).
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Iterator


class Registry:
    """Name -> class mapping for one kind of component."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, type] = {}

    def register(self, name: str | None = None) -> Callable[[type], type]:
        """Class decorator: ``@MODELS.register("minigpt4")``; the name defaults to the class name."""

        def wrap(cls: type) -> type:
            key = name or cls.__name__
            if key in self._items and self._items[key] is not cls:
                raise KeyError(
                    f"{self.kind} '{key}' is already registered by {self._items[key].__module__}."
                    f"{self._items[key].__qualname__}"
                )
            self._items[key] = cls
            cls.registry_name = key
            return cls

        return wrap

    def get(self, name: str) -> type:
        """The class registered as ``name``; an unknown name lists the known ones and the closest."""
        try:
            return self._items[name]
        except KeyError:
            pass
        known = sorted(self._items)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise KeyError(
            f"Unknown {self.kind} '{name}'.{hint} Registered {self.kind}s: {', '.join(known) or '(none)'}"
        )

    def build(self, name: str, cfg: Any, **kwargs: Any) -> Any:
        """Build the class registered as ``name`` with its ``from_config(cfg, **kwargs)``."""
        return self.get(name).from_config(cfg, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


MODELS = Registry("model")
DATASETS = Registry("dataset builder")
PROCESSORS = Registry("processor")
TASKS = Registry("task")
RUNNERS = Registry("runner")
LR_SCHEDULERS = Registry("lr scheduler")
