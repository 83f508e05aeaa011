"""Starting and stopping a training run: a bad start leaves no run folder; under minigpt4-torchrun a
SIGTERM or SIGINT stops both ranks at one step, cleanly and fast, writing a step checkpoint there (single-process signals and exact
resume after them: test_train_e2e.py)."""

from __future__ import annotations

import json
import re
import signal
import sys

import pytest

from minigpt4.run_dir import LATEST
from minigpt4.training.checkpoint import load_checkpoint
from tests.helpers.paths import TINY_CFG
from tests.helpers.processes import interrupt_when
from tests.helpers.training import options, run_dirs, train_env

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("how", ["SIGTERM to the launcher", "SIGINT to the launcher", "SIGINT to the process group"])
def test_torchrun_signal_stops_every_rank_cleanly(tiny_stack, synthetic_flickr, tmp_path, how):
    """Under minigpt4-torchrun with 2 ranks: a scheduler's SIGTERM to the launcher (forwarded to the
    ranks) or a Ctrl-C to the whole group stops both ranks at the same step, with no traceback, the
    resume message, and exit status 143 / 130 of the launcher, within seconds (a rank once hung in
    the gloo group's teardown until torchrun killed it after 30 s); checkpoint_0 is kept intact."""
    sig = signal.SIGTERM if how.startswith("SIGTERM") else signal.SIGINT
    run = {"max_epoch": 2, "iters_per_epoch": 30, "batch_size_train": 2, "log_freq": 1, "job_name": "ddp_signal"}
    cmd = [
        sys.executable,
        "-m",
        "minigpt4.cli",
        "torchrun",
        "--standalone",
        "--nproc-per-node=2",
        "train.py",
        "--cfg-path",
        str(TINY_CFG),
        "--options",
        *options(tiny_stack, synthetic_flickr, tmp_path, **run),
    ]
    rc, text, stop_seconds = interrupt_when(
        cmd, tmp_path / "stdout.txt", r"Train: epoch \[1\] \[\s*2/30\]", sig, train_env(), to_group=how.endswith("group")
    )
    assert rc == 128 + sig, text[-3000:]
    assert "Traceback" not in text and "forcefully" not in text and stop_seconds < 20, (stop_seconds, text[-3000:])
    assert text.count("Interrupted by") == 1  # rank 0 says it for both
    (run_dir,) = run_dirs(tmp_path, "ddp_signal")
    stopped = re.search(
        rf"Interrupted by {sig.name} at epoch 1 step (\d+); .* Last complete checkpoint: "
        rf"{re.escape(str(run_dir))}/checkpoint_1_step_(\d+)\.pth\. Continue with: torchrun --nproc-per-node=2 "
        r"train\.py .* --resume auto",
        text,
    )
    assert stopped and stopped.group(1) == stopped.group(2), text[-3000:]  # a step checkpoint where both ranks stopped
    step = int(stopped.group(1))
    assert f"torchrun: stopped by {sig.name}" in text
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == sorted(["checkpoint_0.pth", f"checkpoint_1_step_{step}.pth", LATEST, "config.yaml", "log.txt"])
    assert load_checkpoint(run_dir / LATEST)["epoch"] == 0
    ckpt = load_checkpoint(run_dir / f"checkpoint_1_step_{step}.pth")
    assert (ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"], len(ckpt["rank_states"])) == (1, step, 30 + step, 2)


def test_failed_start_leaves_no_run_folder(tiny_stack, synthetic_flickr, tmp_path, capsys):
    """Bad data (found before the model is built) or a batch larger than the data (found by the
    runner): exit 2 with the error, and no run folder is left behind."""
    from minigpt4 import cli

    bad = json.loads((synthetic_flickr / "flickr30k_train.json").read_text())
    del bad[3]["captions"]
    ann = tmp_path / "bad_train.json"
    ann.write_text(json.dumps(bad))
    opts = options(tiny_stack, synthetic_flickr, tmp_path / "out", max_epoch=1, iters_per_epoch=2)
    assert cli.train(["--cfg-path", str(TINY_CFG), "--options", *opts, f"datasets.flickr30k_caption.build_info.ann_path={ann}"]) == 2
    assert "item 3: key 'captions' (captions_key) is missing; the item has keys ['image', 'image_id']" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

    assert cli.train(["--cfg-path", str(TINY_CFG), "--options", *opts, "run.batch_size_train=1000"]) == 2
    assert "fewer than run.batch_size_train=1000" in capsys.readouterr().err
    assert run_dirs(tmp_path / "out") == []
