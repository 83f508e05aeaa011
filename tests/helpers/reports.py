"""An evaluated run folder for the caption gallery (report.html) tests: real JPEGs and the job's files."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from minigpt4.evaluation import METRICS

NAMES = [("pretrained", -1), ("checkpoint_0", 0), ("checkpoint_1", 1)]


def caption(name: str, i: int) -> str:
    """pretrained says "thing i"; checkpoint_0 changes every even image, checkpoint_1 every third."""
    if name == "checkpoint_1" and i % 3 == 0:
        return f"a red square {i}"
    if name != "pretrained" and i % 2 == 0:
        return f"a blue circle {i}"
    return f"thing {i}"


def make_eval(tmp_path: Path, n: int = 60, names=NAMES, drop: dict | None = None) -> Path:
    """A run folder whose eval/ holds metrics.json and captions.json of ``names`` for ``n`` real JPEGs, as
    the job writes them (file names relative to the config's image_path); ``drop``: {name: image indices
    that name did not caption}."""
    run = tmp_path / "run"
    images = tmp_path / "images"
    images.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (120, 90), (i * 4 % 256, 255 - i * 4 % 256, 90)).save(images / f"{i}.jpg")
    for k, (name, epoch) in enumerate(names):
        folder = run / "eval" / name
        folder.mkdir(parents=True)
        scores = {m: round(0.1 * (k + 1) + 0.01 * j, 4) for j, m in enumerate(METRICS)}
        (folder / "metrics.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "epoch": epoch,
                    "dataset": "flickr30k_eval",
                    "split": "test",
                    "num_images": n,
                    "limit": None,
                    "scores": scores,
                    "fingerprint": {"settings_digest": "s1"},
                    "config": {"evaluation_datasets": {"flickr30k_eval": {"build_info": {"image_path": str(images)}}}},
                }
            )
        )
        skip = (drop or {}).get(name, ())
        (folder / "captions.json").write_text(
            json.dumps(
                [
                    {
                        "image_id": str(i),
                        "image": f"{i}.jpg",
                        "caption": caption(name, i),
                        "references": [f"true caption {i}", "another one"],
                    }
                    for i in range(n)
                    if i not in skip
                ]
            )
        )
    return run
