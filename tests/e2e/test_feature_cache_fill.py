"""The feature cache's fill command (``python -m minigpt4.cli cache``) under torchrun with 2 ranks. (The
cache itself: tests/unit/features/test_cache.py.)"""

import hashlib
import json
import re

from minigpt4.commands.cache import main as fill_main
from tests.helpers.configs import tiny_model_section, write_yaml
from tests.helpers.processes import run_ok, torchrun


def test_fill_command_fills_over_two_ranks_then_skips(tiny_stack, synthetic_flickr, tmp_path):
    """``python -m minigpt4.cli cache`` under torchrun: the ranks share the images; a rerun finds them all."""
    cfg = write_yaml(
        tmp_path / "fill.yaml",
        {
            "custom_imports": ["minigpt4.testing"],  # model_type tiny, in the torchrun processes too
            "model": tiny_model_section(tiny_stack),
            "datasets": {
                "flickr30k_caption": {
                    "build_info": {
                        "ann_path": str(synthetic_flickr / "flickr30k_train.json"),
                        "image_path": str(synthetic_flickr / "flickr30k-images"),
                    },
                    "vis_processor": {"train": {"name": "blip2_image_train", "image_size": 56}},
                }
            },
            "run": {"device": "cpu", "num_workers": 0, "feature_cache": str(tmp_path / "fc")},
        },
    )
    proc = run_ok(
        torchrun(
            2,
            "-m",
            "minigpt4.cli",
            "cache",
            "--cfg-path",
            cfg,
            "--batch-size",
            "5",
        )
    )
    found = re.search(r"flickr30k_caption: (\d+) images encoded now, (\d+) were cached already, 0 unreadable", proc.stdout + proc.stderr)
    assert found and int(found[1]) + int(found[2]) == 32 and int(found[1]) >= 30  # 32 images (some may be twins)
    # one file per distinct image (a twin may be encoded by both ranks at once: the first write wins)
    distinct = {
        hashlib.sha256((synthetic_flickr / "flickr30k-images" / r["image"]).read_bytes()).hexdigest()
        for r in json.loads((synthetic_flickr / "flickr30k_train.json").read_text())
    }
    assert len(list((tmp_path / "fc").glob("qformer-*/*/*.safetensors"))) == len(distinct) <= int(found[1])
    assert fill_main(["--cfg-path", str(cfg)])["flickr30k_caption"] == [0, 32, 0]  # resumable: nothing to redo
