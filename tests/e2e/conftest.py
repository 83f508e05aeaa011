"""tests/e2e: end-to-end runs (torchrun, train.py / evaluate.sh / quickstart.sh subprocesses, the JVM
scorers, headless Chromium). Every test here is ``slow``: ``-m "not slow"`` and ``tests/unit`` leave them out."""

from __future__ import annotations

from pathlib import Path

import pytest

E2E = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if E2E in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)
