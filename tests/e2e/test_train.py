"""End-to-end training of the tiny stack on the synthetic Flickr30k sample: torchrun with 2 CPU
processes (gloo), exact resume after SIGTERM or SIGKILL, a clean stop resumed, the NaN stop."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
import torch

import minigpt4
from minigpt4.run_dir import LATEST
from minigpt4.testing.tasks import NAN_STEP_ENV
from minigpt4.training.checkpoint import load_checkpoint
from tests.helpers.processes import interrupt_when
from tests.helpers.training import (
    TRAINABLE,
    assert_same_weights,
    epoch_records,
    final_weights,
    options,
    run_dirs,
    run_train,
    train_cmd,
    train_env,
)

# The resume runs: 150 steps of 4 samples per epoch over 32 images x 5 captions (40 batches per data
# pass), so epochs end mid-pass and the resumed stream must start in the middle of a pass.
# A step checkpoint every 2 steps: SIGKILL resumes from the newest, SIGTERM writes its own where it stops.
RESUME_RUN = {"max_epoch": 2, "iters_per_epoch": 150, "batch_size_train": 4, "log_freq": 1, "warmup_steps": 20, "save_every_steps": 2}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(tiny_stack, synthetic_flickr, tmp_path_factory) -> Path:
    """An uninterrupted single-process run of RESUME_RUN: its run folder."""
    out = tmp_path_factory.mktemp("reference")
    run_train(options(tiny_stack, synthetic_flickr, out, **RESUME_RUN))
    (run_dir,) = run_dirs(out)
    return run_dir


def test_torchrun_two_processes(tiny_stack, synthetic_flickr, tmp_path):
    """2 CPU ranks (gloo) x 2 epochs with gradient accumulation and a DataLoader worker: documented
    files, loss goes down, lr follows the formula; a second torchrun job resumed from the step
    checkpoint 5 steps into epoch 1 (mid data pass) ends with the same weights and epoch-1 record
    (per-rank state and the epoch's running totals restored)."""
    run = {
        "max_epoch": 2,
        "iters_per_epoch": 25,
        "batch_size_train": 4,
        "accum_grad_iters": 2,
        "log_freq": 5,
        "warmup_steps": 5,
        "num_workers": 1,
        "job_name": "ddp",
        "save_every_steps": 10,
    }
    proc = run_train(options(tiny_stack, synthetic_flickr, tmp_path / "a", **run), nproc=2)
    (run_dir,) = run_dirs(tmp_path / "a", "ddp")
    assert re.fullmatch(r"\d{14}", run_dir.name)
    names = {p.name for p in run_dir.iterdir()}
    steps = {"checkpoint_1_step_5.pth", "checkpoint_1_step_15.pth"}  # global steps 30, 40: the newest 2 are kept
    assert names == {"config.yaml", "log.txt", "checkpoint_0.pth", "checkpoint_1.pth", LATEST, *steps}
    assert re.search(
        r"Train: epoch \[1\] \[20/25\] eta \d+:\d\d:\d\d lr 0\.\d{6} loss \d+\.\d{4} time \d+\.\d{4} "
        r"data \d+\.\d{4} max mem \d+",
        proc.stdout,
    )
    assert "2 rank(s) on cpu" in proc.stdout
    assert re.search(r"DDP over 2 trainable tensors; [1-9]\d* frozen parameters/buffers excluded", proc.stdout)

    records = epoch_records(run_dir)
    assert [r["epoch"] for r in records] == [0, 1]
    for r in records:
        assert {"epoch", "loss", "lr", "seconds", "samples_per_s", "skipped"} <= set(r)
        assert r["samples"] == 25 * 2 * 4 * 2 and r["skipped"] == 0 and r["samples_per_s"] > 0
    assert records[1]["loss"] < records[0]["loss"] - 0.005, records  # it learns
    cfg = minigpt4.load_config(run_dir / "config.yaml")  # the resolved config is itself a valid config
    assert cfg.run.max_epoch == 2 and cfg.run.job_name == "ddp"
    sched = lambda t: 1e-3 + (1e-2 - 1e-3) * 0.5 * (1 + __import__("math").cos(__import__("math").pi * t / 50))  # noqa: E731
    assert records[1]["lr"] == pytest.approx(sched(49), rel=1e-9)  # lr of the epoch's last step

    ckpt = load_checkpoint(run_dir / LATEST)
    assert set(ckpt["model"]) == TRAINABLE  # only the trainable parameters
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 50 and ckpt["world_size"] == 2
    assert len(ckpt["rank_states"]) == 2
    assert ckpt["rank_states"][0]["data"] == ckpt["rank_states"][1]["data"] == {"data_pass": 4, "batch_in_pass": 20}
    assert not torch.equal(ckpt["rank_states"][0]["rng"]["torch"], ckpt["rank_states"][1]["rng"]["torch"])

    step_ckpt = load_checkpoint(run_dir / "checkpoint_1_step_5.pth")
    assert (step_ckpt["epoch"], step_ckpt["step_in_epoch"], step_ckpt["global_step"]) == (1, 5, 30)
    run_train(options(tiny_stack, synthetic_flickr, tmp_path / "b", **run), nproc=2, resume=str(run_dir / "checkpoint_1_step_5.pth"))
    (resumed,) = run_dirs(tmp_path / "b", "ddp")
    assert [r["epoch"] for r in epoch_records(resumed)] == [1]
    timing = ("seconds", "samples_per_s", "tokens_per_s", "mfu", "feature_cache")  # job b's own feature cache starts cold
    assert {k: v for k, v in epoch_records(resumed)[0].items() if k not in timing} == {
        k: v for k, v in records[1].items() if k not in timing
    }
    assert_same_weights(final_weights(resumed, 1), final_weights(run_dir, 1))


@pytest.mark.xdist_group("resume_reference")  # under pytest -n N: one worker, one reference run
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_interrupted_mid_epoch_then_resume_auto(tiny_stack, synthetic_flickr, reference, tmp_path, sig):
    """Kill during epoch 1 (after checkpoint_0 and step checkpoints every 2 steps), resume with --resume
    auto (in the same run folder) from the newest step checkpoint (SIGKILL) or the one SIGTERM wrote where
    it stopped: the final weights and epoch records equal the uninterrupted run's (feature cache on, cold
    in the reference, partly filled by the killed run). SIGTERM exits 143 with a message naming the
    checkpoint and the resume command (SIGINT takes the same path: 130 and the same message, as
    test_train_start_stop.py's Ctrl-C cases show under torchrun)."""
    opts = options(tiny_stack, synthetic_flickr, tmp_path, **RESUME_RUN)
    rc, text, _ = interrupt_when(train_cmd(opts), tmp_path / "stdout.txt", r"Train: epoch \[1\] \[\s*3/150\]", sig, train_env())
    (run_dir,) = run_dirs(tmp_path)
    assert (run_dir / "checkpoint_0.pth").exists()
    assert not (run_dir / "checkpoint_1.pth").exists(), "the kill came too late: epoch 1 had finished"
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no temporary files
    steps = sorted(int(p.name.split("_")[-1][: -len(".pth")]) for p in run_dir.glob("checkpoint_1_step_*.pth"))
    assert steps and len(steps) <= 2, steps  # run.keep_step_checkpoints: 2
    if sig in (signal.SIGINT, signal.SIGTERM):
        assert rc == 128 + sig, text[-3000:]
        stopped = re.search(r"Interrupted by \w+ at epoch 1 step (\d+)", text)
        assert stopped and int(stopped.group(1)) == steps[-1], (steps, text[-3000:])  # saved where it stopped
        assert re.search(
            rf"Interrupted by {sig.name} at epoch 1 step \d+; the unfinished step was abandoned and "
            rf"nothing is half-written\. Last complete checkpoint: {re.escape(str(run_dir))}/checkpoint_1_step_{steps[-1]}\.pth\. "
            r"Continue with: python train\.py --cfg-path \S+ --options .* --resume auto",
            text,
        ), text[-3000:]
        assert "Traceback" not in text
    else:
        assert rc == -signal.SIGKILL
        assert all(s % 2 == 0 for s in steps)
    assert [r["epoch"] for r in epoch_records(run_dir)] == [0]

    said = run_train(opts, resume="auto").stdout
    assert f"--resume auto: continuing from {run_dir}/checkpoint_1_step_{steps[-1]}.pth" in said
    assert f"(epoch 1, {steps[-1]} of 150 steps done" in said
    assert run_dirs(tmp_path) == [run_dir]
    assert_same_weights(final_weights(run_dir, 1), final_weights(reference, 1))
    timing = ("seconds", "samples_per_s", "tokens_per_s", "mfu")
    assert [{k: v for k, v in r.items() if k not in timing} for r in epoch_records(run_dir)] == [
        {k: v for k, v in r.items() if k not in timing} for r in epoch_records(reference)
    ]  # losses, lr, samples, skipped, padding, per-dataset counts: all as if never interrupted
    # with the feature cache on (options() gives each run its own): the resumed epoch read it
    assert epoch_records(run_dir)[1]["feature_cache"] == {"hits": 600, "encoded": 0}


def test_nan_loss_stops_and_keeps_last_checkpoint(tiny_stack, synthetic_flickr, tmp_path):
    run = {"max_epoch": 3, "iters_per_epoch": 6, "batch_size_train": 2}
    proc = run_train(options(tiny_stack, synthetic_flickr, tmp_path, task="nan_injecting", **run), env={NAN_STEP_ENV: "9"}, check=False)
    assert proc.returncode == 1
    assert "Loss is nan at epoch 1 step 3 (global step 9); stopping" in proc.stdout
    (run_dir,) = run_dirs(tmp_path)
    assert f"The last good checkpoint is {run_dir / 'checkpoint_0.pth'}" in proc.stdout
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint_0.pth", LATEST, "config.yaml", "log.txt"]
    ckpt = load_checkpoint(run_dir / LATEST)
    assert ckpt["epoch"] == 0 and all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_nan_on_one_rank_stops_every_rank(tiny_stack, synthetic_flickr, tmp_path):
    """NaN on rank 1 only: both ranks stop at the same step (no hang in a collective)."""
    run = {"max_epoch": 2, "iters_per_epoch": 4, "batch_size_train": 2}
    start = time.time()
    proc = run_train(
        options(tiny_stack, synthetic_flickr, tmp_path, task="nan_injecting", **run),
        nproc=2,
        env={NAN_STEP_ENV: "2:1"},
        check=False,
        timeout=120,
    )
    assert proc.returncode != 0 and time.time() - start < 100
    assert "Loss is nan at epoch 0 step 2 (global step 2)" in proc.stdout
    assert "none (no epoch has finished yet)" in proc.stdout
    assert not list(run_dirs(tmp_path)[0].glob("checkpoint_*"))


def test_resume_auto_keeps_the_original_config(tiny_stack, synthetic_flickr, tmp_path):
    """--resume auto with no checkpoint yet starts a fresh run; resuming it writes the new invocation's config
    beside config.yaml instead of over it."""
    opts = options(tiny_stack, synthetic_flickr, tmp_path, iters_per_epoch=2, batch_size_train=2, max_epoch=2, stop_after_epoch=0)
    first = run_train(opts, resume="auto")  # nothing to resume yet: a fresh run
    assert "no checkpoint under" in first.stdout and "starting a fresh run" in first.stdout
    (run_dir,) = run_dirs(tmp_path)
    original = (run_dir / "config.yaml").read_text()
    run_train(opts + ["run.log_freq=7"], resume="auto")
    assert run_dirs(tmp_path) == [run_dir] and (run_dir / "checkpoint_1.pth").is_file()
    assert (run_dir / "config.yaml").read_text() == original and "log_freq: 10" in original
    (resumed,) = run_dir.glob("config.resumed-*.yaml")
    assert "log_freq: 7" in resumed.read_text()
    assert minigpt4.load_config(resumed).run.log_freq == 7  # itself a valid config
