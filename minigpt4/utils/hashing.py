"""Content hashes: of files, of tensors' bytes, and of JSON-able records."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import torch


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def tensor_sha256(t: torch.Tensor) -> str:
    """The sha256 of a tensor's bytes (any dtype or device)."""
    return hashlib.sha256(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()).hexdigest()


def digest(obj: Any) -> str:
    """The sha256 of a JSON-able record (keys sorted; other values by ``str``)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
