"""What determines an evaluation result, as a fingerprint stored in its ``metrics.json``.

A result is reused only when its fingerprint equals the current one: the same checkpoint contents,
model section (with stamps of the weight files it names), generation settings, instruction and
prompt, evaluation entry (processor, files, split, annotation contents), limit, device type and
scorer. ``settings`` is all of it but the checkpoint: results whose settings differ never share a
summary. ``changes`` says in words what differs between two fingerprints.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path
from typing import Any

from minigpt4.utils.hashing import digest, sha256_file

FORMAT = 1
STAMPED_FILE_KEYS = ("vit_ckpt", "q_former_model", "prompt_path")  # too large to hash (but prompt_path)


def file_stamp(path: str | os.PathLike) -> dict[str, Any]:
    """Size and modification time: a cheap identity for large weight files that are not hashed."""
    st = Path(path).stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def folder_stamp(path: str | os.PathLike) -> dict[str, Any]:
    """Stamps of the files directly in a Hugging Face model folder (config, tokenizer, weights)."""
    return {p.name: file_stamp(p) for p in sorted(Path(path).iterdir()) if p.is_file()}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def eval_settings(
    model_cfg: dict[str, Any],
    entry_name: str,
    entry_cfg: dict[str, Any],
    split: str,
    annotations: str | os.PathLike | None,
    limit: int | None,
    generation: dict[str, Any],
    instruction: str,
    prompt: str,
    device_type: str,
) -> dict[str, Any]:
    """Everything but the checkpoint that decides a caption or a score (plain, JSON-able values)."""
    # the baseline's ckpt is its checkpoint; checkpointing changes no caption; lora: null is left out, so
    # results from before model.lora existed keep their fingerprints
    model = {k: v for k, v in model_cfg.items() if k not in ("ckpt", "llm_grad_checkpoint") and not (k == "lora" and v is None)}
    files = {k: file_stamp(model[k]) for k in STAMPED_FILE_KEYS if model.get(k)}
    files["llama_model"] = folder_stamp(model["llama_model"])
    ann = Path(annotations) if annotations else None
    return {
        "format": FORMAT,
        "model": model,
        "model_files": files,
        "generation": dict(generation),
        "instruction": instruction,
        "prompt": prompt,
        "dataset": {
            "entry": entry_name,
            "config": entry_cfg,
            "split": split,
            "limit": limit,
            "annotations_sha256": sha256_file(ann) if ann and ann.is_file() else None,
        },
        "device_type": device_type,
        "scorer": {"pycocoevalcap": _version("pycocoevalcap")},
    }


def checkpoint_identity(spec: str, file: str | None) -> dict[str, Any]:
    """The checkpoint part: its file's sha256 (``pretrained`` with ``model.ckpt: null``: the fresh projection)."""
    if file is None:
        return {"checkpoint": spec, "sha256": None, "note": "fresh llama_proj (MiniGPT4.reset_projection)"}
    return {"checkpoint": spec, "sha256": sha256_file(file)}


def fingerprint(settings: dict[str, Any], checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The record stored under ``metrics.json``'s ``fingerprint``."""
    return {
        "digest": digest({"settings": settings, "checkpoint": checkpoint}),
        "settings_digest": digest(settings),
        "settings": settings,
        "checkpoint": checkpoint,
    }


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): obj}


def _short(value: Any, width: int = 60) -> str:
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]  # a sha256
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def changes(old: dict[str, Any] | None, new: dict[str, Any], most: int = 4) -> list[str]:
    """``["generation.max_new_tokens: 20 -> 5", ...]``: what differs from ``old`` to ``new``
    (fingerprint records)."""
    if not old or "settings" not in old:
        return ["none recorded (a result of an older version)"]
    a = {**_flat(old["settings"]), **_flat({"checkpoint": old.get("checkpoint")})}
    b = {**_flat(new["settings"]), **_flat({"checkpoint": new["checkpoint"]})}
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    out = [f"{k}: {_short(a.get(k))} -> {_short(b.get(k))}" for k in keys[:most]]
    return out + ([f"... and {len(keys) - most} more"] if len(keys) > most else [])
