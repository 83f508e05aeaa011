"""The ``model_type``s of ``arch: minigpt4`` and their defaults files. Light (no torch), so that a
``custom_imports`` module (``minigpt4.quickstart``, ``minigpt4.testing``) can add one without importing
the model."""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "models"
# model_type -> its defaults file; the real variants here, others through register_model_type
MODEL_TYPES: dict[str, Path] = {"vicuna0": CONFIG_DIR / "minigpt4_vicuna0.yaml", "llama2": CONFIG_DIR / "minigpt4_llama2.yaml"}


def register_model_type(name: str, defaults_file: str | Path) -> None:
    """Add a ``model_type`` (a YAML file with a ``model:`` section of defaults)."""
    path = Path(defaults_file)
    if not path.is_file():
        raise FileNotFoundError(f"model_type {name!r}: defaults file not found: {path}")
    if MODEL_TYPES.get(name, path) != path:
        raise KeyError(f"model_type {name!r} is already registered ({MODEL_TYPES[name]})")
    MODEL_TYPES[name] = path
