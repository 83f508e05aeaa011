"""Session fixtures built once per test session, also when pytest-xdist runs several workers."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

DONE = ".built.json"


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Any]) -> Any:
    """Run ``build(folder)`` once per session and return its (JSON-able) result in every worker.

    Alone, ``folder`` lies in this session's temporary root; under ``pytest -n N`` the workers share
    their parent folder and the first to come builds under a file lock while the others wait, so a
    stack that takes seconds to make is made once, not once per worker. Whatever a test writes must go
    elsewhere: the folder is read-only by convention.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    folder = root / name
    with FileLock(f"{folder}.lock"):
        done = folder / DONE
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed halfway in another worker
            folder.mkdir(parents=True)
            done.write_text(json.dumps(build(folder), default=str))
        return json.loads(done.read_text())
