"""The manifest of what ``minigpt4-download`` fetches (``manifest.yaml`` here, or ``--manifest FILE``):
one definition of its format, validated with every problem named (file, item, field)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from minigpt4.errors import ConfigError

BUILTIN = Path(__file__).with_name("manifest.yaml")
VARIANTS = ("vicuna-7b", "vicuna-13b", "llama2-7b")
NAMES = ("vit", "qformer", "llm", "ckpt", "flickr30k")
COMMIT = re.compile(r"[0-9a-f]{40}")
HF_TYPES = ("model", "dataset")


@dataclass(frozen=True)
class HubSource:
    """Files of a Hugging Face repo at one revision (a 40-hex commit pins it; a branch does not)."""

    repo: str
    revision: str
    files: tuple[str, ...]
    type: str = "model"
    gated: bool = False

    @property
    def pinned(self) -> bool:
        return bool(COMMIT.fullmatch(self.revision))


@dataclass(frozen=True)
class Artefact:
    name: str
    file: str
    url: str | None = None
    hf: HubSource | None = None
    gdrive: str | None = None  # a Google Drive file id, fetched with gdown
    size: int | None = None
    sha256: str | None = None
    key: str | None = None
    variants: tuple[str, ...] = field(default=VARIANTS)
    unpack: str | None = None

    @property
    def source(self) -> str:
        if self.hf is not None:
            return f"hf:{self.hf.repo}@{self.hf.revision[:12]}"
        return f"gdrive:{self.gdrive}" if self.gdrive else str(self.url)


def load_manifest(path: str | Path = BUILTIN) -> list[Artefact]:
    """The artefacts of a manifest file; ``ConfigError`` lists every problem."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the manifest ({e})") from None
    items = data.get("artefacts") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ConfigError(f"{path}: expected a mapping with a list 'artefacts'")
    out, problems = [], []
    for i, item in enumerate(items):
        where = f"{path} artefacts[{i}]" + (f" ({item.get('name')})" if isinstance(item, dict) and item.get("name") else "")
        try:
            out.append(_artefact(item))
        except (TypeError, ValueError, KeyError) as e:
            problems.append(f"{where}: {e}")
    if problems:
        raise ConfigError(problems)
    return out


def _artefact(item: Any) -> Artefact:
    if not isinstance(item, dict):
        raise TypeError("expected a mapping")
    known = {"name", "file", "url", "hf", "gdrive", "size", "sha256", "key", "variants", "unpack"}
    if unknown := sorted(set(item) - known):
        raise KeyError(f"unknown field(s) {unknown}; expected {sorted(known)}")
    for required in ("name", "file"):
        if not isinstance(item.get(required), str) or not item[required]:
            raise ValueError(f"'{required}' must be a non-empty string")
    if Path(item["file"]).is_absolute() or ".." in Path(item["file"]).parts:
        raise ValueError(f"file {item['file']!r} must be a relative path inside --out")
    if sum(item.get(k) is not None for k in ("url", "hf", "gdrive")) != 1:
        raise ValueError("give exactly one of 'url', 'hf' or 'gdrive'")
    hf = None
    if item.get("hf") is not None:
        h = item["hf"]
        if not isinstance(h, dict) or not h.get("repo") or not h.get("revision") or not h.get("files"):
            raise ValueError("hf needs repo, revision and files")
        if h.get("type", "model") not in HF_TYPES:
            raise ValueError(f"hf.type {h.get('type')!r}: expected one of {HF_TYPES}")
        hf = HubSource(h["repo"], str(h["revision"]), tuple(h["files"]), h.get("type", "model"), bool(h.get("gated", False)))
    sha = item.get("sha256")
    if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", str(sha)):
        raise ValueError(f"sha256 {sha!r}: expected 64 lowercase hex digits")
    size = item.get("size")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise ValueError(f"size {size!r}: expected a number of bytes")
    variants = tuple(item.get("variants") or VARIANTS)
    if bad := [v for v in variants if v not in VARIANTS]:
        raise ValueError(f"variants {bad}: expected some of {VARIANTS}")
    return Artefact(
        item["name"], item["file"], item.get("url"), hf, item.get("gdrive"), size, sha, item.get("key"), variants, item.get("unpack")
    )


def select(artefacts: list[Artefact], variant: str, only: list[str] | None = None) -> list[Artefact]:
    """The artefacts of ``variant`` (and of the names in ``only``)."""
    return [a for a in artefacts if variant in a.variants and (not only or a.name in only)]
