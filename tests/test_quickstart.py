"""The front door: quickstart.sh end to end at a reduced size (one process, few steps)."""
import os
import subprocess

import pytest
from conftest import REPO
from PIL import Image


@pytest.mark.slow
def test_quickstart_reduced(tmp_path):
    cache = tmp_path / "qs"
    env = {**os.environ, "QS_CACHE": str(cache), "QS_IMAGES": "40", "QS_VISION_STEPS": "20", "QS_STAGE1_STEPS": "15",
           "QS_NPROC": "1", "QS_EPOCHS": "2", "QS_ITERS": "3"}
    proc = subprocess.run(["bash", str(REPO / "quickstart.sh")], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dirs = list((cache / "runs" / "minigpt4_flickr_quickstart").iterdir())
    assert len(run_dirs) == 1
    run = run_dirs[0]
    for name in ("checkpoint_0.pth", "checkpoint_1.pth", "log.txt", "config.yaml"):
        assert (run / name).is_file(), name
    summary = (run / "eval" / "summary.md").read_text()
    for row in ("pretrained", "checkpoint_0", "checkpoint_1"):
        assert row in summary
    with Image.open(run / "eval" / "summary.png") as im:
        assert im.size[0] > 300
    assert "summary.png" in proc.stdout and "CIDEr" in proc.stdout
    assert "| checkpoint | shape right | colour right |" in proc.stdout and "| checkpoint_1 |" in proc.stdout
    # a second run reuses the prepared sample and the stand-ins
    again = subprocess.run(["bash", str(REPO / "quickstart.sh")], env={**env, "QS_EPOCHS": "1"},
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "reusing the prepared sample" in again.stdout and "up to date; reusing" in again.stdout + again.stderr
