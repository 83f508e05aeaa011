"""Config files: the tiny stack's ``model`` section, YAML files, official-structure configs."""

from __future__ import annotations

from pathlib import Path

import yaml

from minigpt4.utils.prompt import STAGE2_TEXT
from tests.helpers.paths import DATA

OFFICIAL = DATA / "official_configs"


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# what stage-2 configs set (the model types' defaults are the official stage-1 ones: no template, "\n")
TINY_STAGE2_TEXT = {"tiny": STAGE2_TEXT["vicuna0"], "tiny_llama2": STAGE2_TEXT["llama2"]}


def tiny_model_section(stack: dict[str, str], **overrides) -> dict:
    """A stage-2 ``model`` config section for the tiny stack (``model_type`` tiny, or tiny_llama2 in
    ``overrides``), with its variant's template and end_sym."""
    model_type = overrides.get("model_type", "tiny")
    return {"arch": "minigpt4", "model_type": "tiny", **TINY_STAGE2_TEXT.get(model_type, {}), **stack, **overrides}


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
