"""The front door: quickstart.sh end to end at a reduced size (one process, few steps), and README's
runnable code blocks on its files."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers.paths import REPO

RUNNABLE = "<!-- runnable: after quickstart.sh"


def readme_runnable_blocks() -> list[str]:
    """The README's code blocks marked ``RUNNABLE`` (the line before a fenced ``python`` block)."""
    text = (REPO / "README.md").read_text()
    return re.findall(re.escape(RUNNABLE) + r".*-->\n```python\n(.*?)\n```", text, re.S)


def run_readme_blocks(quickstart_cache: Path, workdir: Path) -> list[str]:
    """Run each runnable README block as written, in a folder that looks like the repository after
    quickstart.sh (its eval_configs/, and cache/quickstart = ``quickstart_cache``); returns their stdouts."""
    (workdir / "cache").mkdir(parents=True)
    (workdir / "cache" / "quickstart").symlink_to(quickstart_cache)
    (workdir / "eval_configs").symlink_to(REPO / "eval_configs")
    outs = []
    for block in readme_runnable_blocks():
        proc = subprocess.run([sys.executable, "-c", block], cwd=workdir, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"README block failed:\n{block}\n--- stderr\n{proc.stderr[-3000:]}"
        outs.append(proc.stdout)
    return outs


def test_readme_has_runnable_blocks():
    blocks = readme_runnable_blocks()
    assert blocks and all("load_checkpoint" in b for b in blocks[:1])


@pytest.mark.slow
def test_quickstart_reduced(tmp_path):
    cache = tmp_path / "qs"
    env = {
        **os.environ,
        "QS_CACHE": str(cache),
        "QS_IMAGES": "40",
        "QS_VISION_STEPS": "20",
        "QS_STAGE1_STEPS": "15",
        "QS_NPROC": "1",
        "QS_EPOCHS": "2",
        "QS_ITERS": "3",
    }
    proc = subprocess.run(["bash", str(REPO / "quickstart.sh")], env=env, capture_output=True, text=True, timeout=900)
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
    # README's Python snippet runs as written on these files
    (api,) = run_readme_blocks(cache, tmp_path / "repo")
    printed = [line for line in api.splitlines() if " -> " in line]
    assert len(printed) == 3 and all(line.split(" -> ")[1].strip() for line in printed), api
    # a second run reuses the prepared sample and the stand-ins (steps 4-6 ran above)
    again = subprocess.run(
        ["bash", str(REPO / "quickstart.sh")],
        env={**env, "QS_PREPARE_ONLY": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "reusing the prepared sample" in again.stdout and "up to date; reusing" in again.stdout + again.stderr
    assert again.stdout.rstrip().endswith("stopping before training") and len(list(run_dirs[0].parent.iterdir())) == 1
