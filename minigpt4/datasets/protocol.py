"""What the layers above may call on a dataset beyond ``__len__``/``__getitem__``: optional
capabilities, declared here and tested with ``isinstance`` instead of probing attribute names.

The caption datasets (``caption_datasets``) implement all of them; any other dataset may implement
none, some or all, and the training stream and the tasks use what it declares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class EpochAware(Protocol):
    """Draws its random choices per epoch: told the data pass before each one starts."""

    def set_epoch(self, epoch: int) -> None: ...


@runtime_checkable
class Measurable(Protocol):
    """Knows the approximate length of every sample in an epoch (for length-grouped batches)."""

    def lengths(self, epoch: int) -> list[int]: ...


@runtime_checkable
class TokenCounting(Measurable, Protocol):
    """Measures its samples with a given ``text -> number of tokens`` (words until given one)."""

    def use_token_counter(self, count: Callable[[str], int] | None) -> None: ...


@runtime_checkable
class FeatureReading(Protocol):
    """Returns cached image features where its ``features`` cache has them (see ``image_fields``).

    ``vis_processor`` is the image processor whose ``cache_identity()`` keys the cache."""

    features: Any
    vis_processor: Any

    def use_features(self, cache: Any | None) -> None: ...


@runtime_checkable
class ImageRecords(Protocol):
    """Built from image records (``records``: each an image file under ``image_root`` with its captions),
    read through ``vis_processor``; ``source`` names it in messages (or is empty)."""

    records: list
    image_root: Any
    vis_processor: Any
    source: str | None
