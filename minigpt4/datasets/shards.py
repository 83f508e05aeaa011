"""Shard lists of webdataset tar sets: brace patterns expanded, local files checked, img2dataset's
``NNNNN_stats.json`` read.

``build_info.storage`` is one pattern (or a list of them) that webdataset opens: a local path, an
``http(s)://`` URL or a ``pipe:`` command, with brace ranges (``/data/laion/{00000..10488}.tar``).
Local patterns are checked when the config loads: one that matches no file is a config error. Where a
local folder holds img2dataset's stats files, only shards with one are used: a shard without it was
still being written when img2dataset stopped (a partial tar).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from braceexpand import braceexpand

REMOTE_PREFIXES = ("http://", "https://", "pipe:", "gs://", "s3://", "ais://", "hf://")
STATS_SUFFIX = "_stats.json"  # img2dataset writes NNNNN_stats.json once shard NNNNN is complete


def is_remote(url: str) -> bool:
    """Whether webdataset opens ``url`` other than as a local file (no existence check is possible)."""
    return url.startswith(REMOTE_PREFIXES)


def expand(patterns: str | list[str]) -> list[str]:
    """Every URL of ``patterns`` (brace ranges expanded; ``file:`` dropped), in order, duplicates removed."""
    urls: list[str] = []
    for pattern in [patterns] if isinstance(patterns, str) else list(patterns):
        for url in braceexpand(str(pattern)):
            url = url[len("file:") :] if url.startswith("file:") else url
            if url not in urls:
                urls.append(url)
    return urls


@dataclass(frozen=True)
class ShardList:
    """The shards a dataset entry reads, and what was left out and why."""

    urls: list[str]
    missing: int = 0  # local names of the pattern with no file
    partial: list[str] | None = None  # local tars without img2dataset's stats file

    def describe(self) -> str:
        parts = [f"{len(self.urls):,} shard(s)"]
        if self.missing:
            parts.append(f"{self.missing:,} name(s) of the pattern have no file")
        if self.partial:
            parts.append(f"{len(self.partial)} tar(s) without {STATS_SUFFIX} left out as partial (e.g. {self.partial[0]})")
        return "; ".join(parts)


def _has_stats(tar: Path) -> bool:
    return tar.with_name(tar.name[: -len(".tar")] + STATS_SUFFIX).is_file() if tar.name.endswith(".tar") else True


def resolve_shards(patterns: str | list[str]) -> ShardList:
    """The usable shards of ``patterns``: remote URLs as given, local ones that exist (those with a
    stats file when their folder has any stats file). Raises ``ValueError`` when none is left."""
    urls = expand(patterns)
    if not urls:
        raise ValueError(f"{patterns!r} names no shard")
    kept, missing, partial = [], 0, []
    stats_dirs: dict[Path, bool] = {}
    for url in urls:
        if is_remote(url):
            kept.append(url)
            continue
        path = Path(url).expanduser()
        if not path.is_file():
            missing += 1
            continue
        folder = path.parent
        if folder not in stats_dirs:
            stats_dirs[folder] = any(folder.glob("*" + STATS_SUFFIX))
        if stats_dirs[folder] and not _has_stats(path):
            partial.append(str(path))
            continue
        kept.append(str(path))
    if not kept:
        first = urls[0] if len(urls) == 1 else f"{urls[0]} ... {urls[-1]}"
        why = f"{len(partial)} partial tar(s) without {STATS_SUFFIX}" if partial else "no such file"
        raise ValueError(f"{patterns!r} ({len(urls):,} name(s): {first}) matches no usable shard ({why})")
    return ShardList(kept, missing, partial or None)


def storage_problems(value: str | list[str]) -> list[str]:
    """The config check of ``build_info.storage``: a pattern with no usable shard is a problem."""
    try:
        resolve_shards(value)
    except ValueError as e:
        return [str(e)]
    return []


def read_stats(urls: list[str]) -> dict[str, int]:
    """img2dataset's totals over the local shards' stats files (``count``, ``successes``, ...), when present."""
    totals: dict[str, int] = {}
    for url in urls:
        if is_remote(url) or not url.endswith(".tar"):
            continue
        stats = Path(url[: -len(".tar")] + STATS_SUFFIX)
        try:
            record = json.loads(stats.read_text())
        except (OSError, ValueError):
            continue
        for key in ("count", "successes", "failed_to_download", "failed_to_resize"):
            if isinstance(record.get(key), int):
                totals[key] = totals.get(key, 0) + record[key]
    return totals
