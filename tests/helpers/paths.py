"""The repository's folders and the files the tests read."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
DATA = REPO / "tests" / "data"
TINY_CFG = REPO / "train_configs" / "minigpt4_flickr_tiny.yaml"
EVALUATE_SH = REPO / "evaluate.sh"
FIRST_INSTRUCTION = (REPO / "minigpt4" / "prompts" / "alignment.txt").read_text().splitlines()[0]
