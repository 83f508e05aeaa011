"""A content-keyed, write-through cache of the frozen vision stack's output, shared by training runs,
evaluations and ranks.

Layout under the cache root (``run.feature_cache``)::

    images/<ab>/<sha1 of the image's absolute path>.json   {path, size, mtime_ns, sha256}: the fast
        check; an image is hashed again when its size or mtime changed
    <cut>-<key digest>/key.json                            what the features depend on (``stack_key``)
    <cut>-<key digest>/<cd>/<sha256 of the image bytes>.safetensors
        one image's features (``features``) with the sha256 of their bytes in the metadata

Each feature file is one image's shard, written atomically (a temporary file, then a hard link
that fails when the file exists): the first writer wins and every other writer uses the winner's
features, so one image has one value in a cache whatever the ranks, runs or timing. Readers see
a file complete or not at all. A file whose bytes do not match its checksum (truncated, damaged)
is moved aside as ``.corrupt``, reported and recomputed. Features are stored in ``dtype`` and the
fresh ones are used after the same rounding, so a warm cache and a cold one train identically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from minigpt4.utils.dtypes import DTYPES
from minigpt4.utils.hashing import digest, sha256_file, tensor_sha256
from minigpt4.utils.io import atomic_write_text

log = logging.getLogger(__name__)

FORMAT = 1
STAMPS = "images"
KEY_FILE = "key.json"
SUFFIX = ".safetensors"


def key_digest(key: dict[str, Any]) -> str:
    return digest(key)[:20]


@dataclass
class Lookup:
    """What the cache knows about one image: its content hash, and its features when cached.
    ``status``: ``hit``, ``miss`` or ``corrupt`` (a damaged file was set aside)."""

    sha256: str
    features: torch.Tensor | None
    status: str


class FeatureCache:
    """The features of one vision stack (``key``, see ``stack_key``) under ``root``."""

    def __init__(self, root: str | os.PathLike, key: dict[str, Any], dtype: str = "fp16") -> None:
        if dtype not in DTYPES:
            raise ValueError(f"feature cache dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.root = Path(root).expanduser().resolve()
        self.key = {**key, "dtype": dtype}
        self.dtype = DTYPES[dtype]
        self.folder = self.root / f"{key.get('cut', 'features')}-{key_digest(self.key)}"
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / KEY_FILE).is_file():
            atomic_write_text(self.folder / KEY_FILE, json.dumps(self.key, indent=2, sort_keys=True, default=str))

    # ---- images -----------------------------------------------------------------------------
    def _stamp_file(self, path: Path) -> Path:
        h = hashlib.sha1(str(path).encode()).hexdigest()
        return self.root / STAMPS / h[:2] / f"{h}.json"

    def image_sha256(self, path: str | os.PathLike) -> str:
        """The sha256 of an image file's bytes, hashed only when its size or mtime changed."""
        path = Path(path).resolve()
        st = path.stat()
        stamp_file = self._stamp_file(path)
        try:
            stamp = json.loads(stamp_file.read_text())
            if (stamp["path"], stamp["size"], stamp["mtime_ns"]) == (str(path), st.st_size, st.st_mtime_ns):
                return stamp["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        sha = sha256_file(path)
        stamp_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(stamp_file, json.dumps({"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}))
        return sha

    # ---- features ---------------------------------------------------------------------------
    def file(self, sha: str) -> Path:
        return self.folder / sha[:2] / f"{sha}{SUFFIX}"

    def read(self, sha: str) -> tuple[torch.Tensor | None, str]:
        """(features or None, ``hit``/``miss``/``corrupt``); a damaged file is moved aside and reported."""
        path = self.file(sha)
        if not path.exists():
            return None, "miss"
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                t = f.get_tensor("features")
            if meta.get("sha256") != tensor_sha256(t) or t.dtype != self.dtype:
                raise ValueError("its bytes do not match the checksum it was written with")
            return t, "hit"
        except FileNotFoundError:
            return None, "miss"
        except Exception as e:  # truncated, overwritten, not safetensors: recompute
            aside = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.corrupt")
            try:
                path.replace(aside)
            except OSError:
                aside = path
            log.warning("feature cache: %s is damaged (%s: %s); moved to %s, recomputing it", path, type(e).__name__, e, aside.name)
            return None, "corrupt"

    def lookup(self, image_path: str | os.PathLike) -> Lookup:
        sha = self.image_sha256(image_path)
        features, status = self.read(sha)
        return Lookup(sha, features, status)

    def store(self, sha: str, features: torch.Tensor) -> torch.Tensor:
        """Write one image's features unless another writer did first; returns the stored features
        (the winner's, in the cache dtype): use these, not ``features``."""
        t = features.detach().to("cpu", self.dtype).contiguous()
        path = self.file(sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            save_file({"features": t}, str(tmp), metadata={"sha256": tensor_sha256(t), "image_sha256": sha, "format": str(FORMAT)})
            try:
                os.link(tmp, path)  # atomic and never overwrites: the first writer wins
            except FileExistsError:
                existing, _ = self.read(sha)
                if existing is not None:
                    return existing
                os.replace(tmp, path)  # the existing one was damaged (and set aside)
            except OSError:  # a file system without hard links: last writer wins, still atomic
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return t

    def size(self) -> tuple[int, int]:
        """(feature files, bytes) in this stack's folder."""
        n = total = 0
        for p in self.folder.glob(f"*/*{SUFFIX}"):
            n += 1
            total += p.stat().st_size
        return n, total
