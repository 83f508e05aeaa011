"""Atomic file writes: write a temporary file in the target folder, fsync, then ``os.replace``.

A crash, a ``KeyboardInterrupt`` or a full disk never leaves a truncated target: readers see the
old file or the complete new one. Temporary files are named ``.<name>.tmp.<pid>`` (hidden, so
``checkpoint_*.pth`` globs never match them) and are removed when the write fails.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)`` atomically."""
    import torch  # here, so that the plain-file helpers do not import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


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
