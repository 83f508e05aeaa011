"""A generic registry per kind of component (models, dataset builders, processors, tasks, runners,
lr schedules). Each knows the modules that hold its components and imports them on first use, so
nothing needs importing "for its side effects"; extra components come in through the config's
``custom_imports`` key (a list of modules, imported before anything is looked up).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any


class Registry:
    """Name -> class for one kind of component; ``locations`` are imported lazily on first lookup."""

    def __init__(self, kind: str, locations: Sequence[str] = ()) -> None:
        self.kind = kind
        self.locations = tuple(locations)
        self._items: dict[str, type] = {}
        self._aliases: dict[str, str] = {}
        self._loaded = False

    def register(self, name: str | None = None, aliases: Sequence[str] = ()) -> Callable[[type], type]:
        """Class decorator: ``@MODELS.register("minigpt4")``; the name defaults to the class name.
        ``aliases``: other names that find it (``registry_name`` stays the canonical one)."""

        def wrap(cls: type) -> type:
            key = name or cls.__name__
            for k in (key, *aliases):
                taken = self._items.get(k) or self._items.get(self._aliases.get(k, ""))
                if taken is not None and taken is not cls:
                    raise KeyError(f"{self.kind} '{k}' is already registered by {taken.__module__}.{taken.__qualname__}")
            self._items[key] = cls
            self._aliases.update({a: key for a in aliases})
            cls.registry_name = key
            return cls

        return wrap

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # set first: the imported modules register into this registry
            for module in self.locations:
                importlib.import_module(module)

    def get(self, name: str, suggest: Callable[[type], bool] | None = None) -> type:
        """The class registered as ``name``; an unknown name lists the known ones and the closest
        (among the classes ``suggest`` accepts, e.g. only the builders that fit where the name was given)."""
        self._load()
        try:
            return self._items[self._aliases.get(name, name)]
        except KeyError:
            pass
        known = sorted(self._items)
        fitting = [n for n in known if suggest is None or suggest(self._items[n])]
        close = difflib.get_close_matches(str(name), fitting, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        aliases = f" (also: {', '.join(f'{a} = {c}' for a, c in sorted(self._aliases.items()))})" if self._aliases else ""
        raise KeyError(f"Unknown {self.kind} '{name}'.{hint} Registered {self.kind}s: {', '.join(known) or '(none)'}{aliases}")

    def build(self, name: str, cfg: Any, **kwargs: Any) -> Any:
        """Build the class registered as ``name`` with its ``from_config(cfg, **kwargs)``."""
        return self.get(name).from_config(cfg, **kwargs)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._items)})"


def import_modules(modules: Sequence[str]) -> None:
    """Import ``custom_imports`` modules (which register their components); an ImportError propagates."""
    for module in modules:
        importlib.import_module(module)


MODELS = Registry("model", ["minigpt4.models.minigpt4"])
DATASETS = Registry(
    "dataset builder",
    [
        "minigpt4.datasets.caption_json",
        "minigpt4.datasets.cc_sbu_align",
        "minigpt4.datasets.flickr30k",
        "minigpt4.datasets.webdataset_caption",
        "minigpt4.datasets.laion",
        "minigpt4.datasets.cc_sbu",
    ],
)
PROCESSORS = Registry("processor", ["minigpt4.processors.image", "minigpt4.processors.text"])
TASKS = Registry("task", ["minigpt4.tasks.captioning"])
RUNNERS = Registry("runner", ["minigpt4.training.epoch_runner"])
LR_SCHEDULERS = Registry("lr scheduler", ["minigpt4.training.lr_schedulers"])
