"""Atomic file writes: write a temporary file in the target folder, fsync, then ``os.replace``.

A crash, a ``KeyboardInterrupt`` or a full disk never leaves a truncated target: readers see the
old file or the complete new one. Temporary files are named ``.<name>.tmp.<pid>`` (hidden, so
``checkpoint_*.pth`` globs never match them) and are removed when the write fails.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from minigpt4.errors import StorageError

TMP_MARK = ".tmp."


def tmp_path_for(path: str | Path) -> Path:
    """The temporary sibling used while writing ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. not permitted on some file systems
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file, then atomically move it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(path)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_files(files: dict[Path, str]) -> list[Path]:
    """Write several text files so that none is replaced unless all could be written: each goes to
    its temporary sibling (fsynced), then all are renamed. Temporary files are removed on failure."""
    tmps: dict[Path, Path] = {}
    try:
        for path, text in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmps[path] = tmp = tmp_path_for(path)
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
    for folder in {p.parent for p in tmps}:
        _fsync_dir(folder)
    return list(tmps)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


def write_or_explain(path: str | Path, write: Callable[[Path], None], need: int) -> Path:
    """``atomic_write(path, write)`` for a file of about ``need`` bytes; when the disk has not the room
    (found before writing, or by the write failing), raise ``StorageError`` naming the file, the space
    it needs and the free space. Nothing is left under ``path`` or its temporary name then."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def full(reason: str, free: int) -> StorageError:
        return StorageError(
            f"cannot write {path}: {reason}; it needs {_size(need)} and {_size(free)} are free on {path.parent} (nothing was half-written)"
        )

    free = shutil.disk_usage(path.parent).free
    if free < need:
        raise full("not enough free space", free)

    def guarded(tmp: Path) -> None:
        try:
            write(tmp)
        except (OSError, RuntimeError) as e:  # torch's writer raises RuntimeError ("unexpected pos ...") on ENOSPC
            written = tmp.stat().st_size if tmp.exists() else 0
            left = shutil.disk_usage(path.parent).free
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) or left + written < need:
                raise full("the disk filled up while writing", left + written) from e
            raise

    return atomic_write(path, guarded)


def tensor_bytes(obj: Any) -> int:
    """The bytes of the tensors in ``obj`` (nested dicts, lists, tuples), each storage counted once."""
    import torch

    seen: set[int] = set()

    def walk(o: Any) -> int:
        if isinstance(o, torch.Tensor):
            storage = o.untyped_storage()
            if storage.data_ptr() in seen:
                return 0
            seen.add(storage.data_ptr())
            return storage.nbytes()
        if isinstance(o, dict):
            return sum(walk(v) for v in o.values())
        if isinstance(o, (list, tuple)):
            return sum(walk(v) for v in o)
        return 0

    return walk(obj)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)`` atomically; a full disk raises ``StorageError`` (``write_or_explain``)."""
    import torch  # here, so that the plain-file helpers do not import torch

    return write_or_explain(path, lambda tmp: torch.save(obj, tmp), tensor_bytes(obj))


def atomic_link_or_copy(src: str | Path, dst: str | Path) -> Path:
    """Make ``dst`` a hard link to ``src`` (a copy where hard links are not supported), atomically:
    ``dst`` always names either its old target or the complete ``src``."""
    src, dst = Path(src), Path(dst)

    def write(tmp: Path) -> None:
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)

    return atomic_write(dst, write)


def remove_stale_tmp_files(folder: str | Path) -> list[Path]:
    """Delete temporary files left in ``folder`` by a killed writer; returns what was removed."""
    removed = []
    for p in Path(folder).glob(f".*{TMP_MARK}*"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
