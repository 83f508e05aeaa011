"""Config files: the tiny stack's ``model`` section, YAML files, official-structure configs."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.helpers.paths import DATA

OFFICIAL = DATA / "official_configs"


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tiny_model_section(stack: dict[str, str], **overrides) -> dict:
    """A ``model`` config section for the tiny stack."""
    return {"arch": "minigpt4", "model_type": "tiny", **stack, **overrides}


def edit_paths(name: str, out: Path, paths: dict[str, str]) -> Path:
    """An official-structure config with only its paths (dotted keys) edited, written to ``out``."""
    cfg = yaml.safe_load((OFFICIAL / name).read_text())
    for dotted, value in paths.items():
        *parents, last = dotted.split(".")
        node = cfg
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return write_yaml(out / name, cfg)
