"""End-to-end training of the tiny stack on the synthetic Flickr30k sample: torchrun with 2 CPU
processes (gloo), exact resume (clean stop, SIGINT, SIGKILL), NaN stop, frozen weights."""

from __future__ import annotations

import json
import re
import signal
import struct
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import minigpt4
from minigpt4.errors import ConfigError
from minigpt4.registry import RUNNERS, TASKS
from minigpt4.run_dir import LATEST
from minigpt4.testing.tasks import NAN_STEP_ENV
from minigpt4.training.checkpoint import load_checkpoint
from minigpt4.utils import dist
from minigpt4.utils.logging import setup_logger
from minigpt4.utils.tracking import Trackers
from tests.helpers.paths import TINY_CFG
from tests.helpers.processes import interrupt_when
from tests.helpers.training import epoch_records, options, run_dirs, run_train, train_cmd, train_env

TRAINABLE = {"llama_proj.weight", "llama_proj.bias"}
# The resume runs: 150 steps of 4 samples per epoch over 32 images x 5 captions (40 batches per data
# pass), so epochs end mid-pass and the resumed stream must start in the middle of a pass.
RESUME_RUN = {"max_epoch": 2, "iters_per_epoch": 150, "batch_size_train": 4, "log_freq": 1, "warmup_steps": 20}

pytestmark = pytest.mark.slow


def final_weights(run_dir: Path, epoch: int) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / f"checkpoint_{epoch}.pth", weights_only=True)["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert set(a) == set(b) == TRAINABLE
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs (max abs diff {(a[k] - b[k]).abs().max().item():.3g})"


@pytest.fixture(scope="module")
def reference(tiny_stack, synthetic_flickr, tmp_path_factory) -> Path:
    """An uninterrupted single-process run of RESUME_RUN: its run folder."""
    out = tmp_path_factory.mktemp("reference")
    run_train(options(tiny_stack, synthetic_flickr, out, **RESUME_RUN))
    (run_dir,) = run_dirs(out)
    return run_dir


def test_torchrun_two_processes(tiny_stack, synthetic_flickr, tmp_path):
    """2 CPU ranks (gloo) x 2 epochs with gradient accumulation and a DataLoader worker: documented
    files, loss goes down, lr follows the formula; a second torchrun job resumed from checkpoint_0
    (mid data pass) ends with the same weights and epoch-1 loss (per-rank state restored)."""
    run = {
        "max_epoch": 2,
        "iters_per_epoch": 25,
        "batch_size_train": 4,
        "accum_grad_iters": 2,
        "log_freq": 5,
        "warmup_steps": 5,
        "num_workers": 1,
        "job_name": "ddp",
    }
    proc = run_train(options(tiny_stack, synthetic_flickr, tmp_path / "a", **run), nproc=2)
    (run_dir,) = run_dirs(tmp_path / "a", "ddp")
    assert re.fullmatch(r"\d{14}", run_dir.name)
    names = {p.name for p in run_dir.iterdir()}
    assert names == {"config.yaml", "log.txt", "checkpoint_0.pth", "checkpoint_1.pth", LATEST}
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

    run_train(options(tiny_stack, synthetic_flickr, tmp_path / "b", **run), nproc=2, resume=str(run_dir / "checkpoint_0.pth"))
    (resumed,) = run_dirs(tmp_path / "b", "ddp")
    assert [r["epoch"] for r in epoch_records(resumed)] == [1]
    assert epoch_records(resumed)[0]["loss"] == records[1]["loss"]
    assert_same_weights(final_weights(resumed, 1), final_weights(run_dir, 1))


def test_stop_and_resume_equals_uninterrupted(tiny_stack, synthetic_flickr, reference, tmp_path):
    opts = options(tiny_stack, synthetic_flickr, tmp_path, **RESUME_RUN)
    run_train(opts + ["run.stop_after_epoch=0"])
    (run_dir,) = run_dirs(tmp_path)
    assert not (run_dir / "checkpoint_1.pth").exists()
    proc = run_train(opts, resume="auto")
    assert "--resume auto: continuing from" in proc.stdout
    assert run_dirs(tmp_path) == [run_dir]  # continued in the same run folder
    assert_same_weights(final_weights(run_dir, 1), final_weights(reference, 1))
    timing = ("seconds", "samples_per_s", "tokens_per_s", "mfu")
    assert epoch_records(run_dir) == [
        {**r, **{k: r2[k] for k in timing}} for r, r2 in zip(epoch_records(reference), epoch_records(run_dir))
    ]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_interrupted_mid_epoch_then_resume_auto(tiny_stack, synthetic_flickr, reference, tmp_path, sig):
    """Kill during epoch 1 (after checkpoint_0), resume with --resume auto: epoch 1 is redone and
    the final weights and per-epoch losses equal the uninterrupted run's (feature cache on, cold in
    the reference, partly filled by the killed run). SIGTERM exits 143 with a message naming the
    checkpoint and the resume command (SIGINT takes the same path: 130 and the same message, as
    test_train_start_stop.py's Ctrl-C cases show under torchrun)."""
    opts = options(tiny_stack, synthetic_flickr, tmp_path, **RESUME_RUN)
    rc, text, _ = interrupt_when(train_cmd(opts), tmp_path / "stdout.txt", r"Train: epoch \[1\] \[\s*3/150\]", sig, train_env())
    (run_dir,) = run_dirs(tmp_path)
    assert (run_dir / "checkpoint_0.pth").exists()
    assert not (run_dir / "checkpoint_1.pth").exists(), "the kill came too late: epoch 1 had finished"
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no temporary files
    if sig in (signal.SIGINT, signal.SIGTERM):
        assert rc == 128 + sig, text[-3000:]
        assert re.search(
            rf"Interrupted by {sig.name} at epoch 1 step \d+; the unfinished step was abandoned and "
            rf"nothing is half-written\. Last complete checkpoint: {re.escape(str(run_dir))}/checkpoint_0\.pth\. "
            r"Continue with: python train\.py --cfg-path \S+ --options .* --resume auto",
            text,
        ), text[-3000:]
        assert "Traceback" not in text
    else:
        assert rc == -signal.SIGKILL
    assert [r["epoch"] for r in epoch_records(run_dir)] == [0]

    run_train(opts, resume="auto")
    assert run_dirs(tmp_path) == [run_dir]
    assert_same_weights(final_weights(run_dir, 1), final_weights(reference, 1))
    assert [r["loss"] for r in epoch_records(run_dir)] == [r["loss"] for r in epoch_records(reference)]
    # with the feature cache on (options() gives each run its own): the resumed epoch read it
    assert epoch_records(run_dir)[1]["feature_cache"] == {"hits": 600, "encoded": 0}


def test_resume_auto_without_checkpoint_starts_fresh(tiny_stack, synthetic_flickr, tmp_path):
    proc = run_train(options(tiny_stack, synthetic_flickr, tmp_path, max_epoch=1, iters_per_epoch=2, batch_size_train=2), resume="auto")
    assert "no checkpoint under" in proc.stdout and "starting a fresh run" in proc.stdout
    assert (run_dirs(tmp_path)[0] / "checkpoint_0.pth").is_file()


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


def test_frozen_weights_unchanged_in_process(tiny_stack, synthetic_flickr, tmp_path):
    """Frozen parameters and buffers are bit-identical after training; llama_proj moved; the
    checkpoint holds exactly the trainable parameters, equal to the model's."""
    cfg = minigpt4.load_config(
        TINY_CFG, options(tiny_stack, synthetic_flickr, tmp_path, max_epoch=1, iters_per_epoch=4, batch_size_train=2)
    )
    info = dist.init_distributed("cpu")
    setup_logger(0)
    task = TASKS.get(cfg.run.task).from_config(cfg.run)
    model = minigpt4.build_model(cfg.model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == TRAINABLE == set(model.trainable_state_dict())
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    runner = RUNNERS.get(cfg.run.runner).from_config(
        cfg, task=task, model=model, datasets=task.build_datasets(cfg.datasets), run_dir=tmp_path / "run", dist_info=info
    )
    runner.train()
    after = model.state_dict()
    assert set(after) == set(before)
    for k, v in before.items():
        if k in TRAINABLE:
            assert not torch.equal(v, after[k]), f"{k} did not train"
        else:
            assert v.dtype == after[k].dtype and torch.equal(v, after[k]), f"frozen {k} changed"
    saved = torch.load(tmp_path / "run" / "checkpoint_0.pth", weights_only=True)["model"]
    assert_same_weights(saved, {k: after[k] for k in TRAINABLE})


def test_tensorboard_is_optional(tiny_stack, synthetic_flickr, tmp_path):
    import importlib.util

    opts = options(tiny_stack, synthetic_flickr, tmp_path, max_epoch=1, iters_per_epoch=2, batch_size_train=2, tensorboard="true")
    proc = run_train(opts, check=False)
    if importlib.util.find_spec("tensorboard") is None:
        assert proc.returncode != 0
        assert "run.tensorboard is true but the 'tensorboard' package is not installed" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert list((run_dirs(tmp_path)[0] / "tensorboard").glob("events.out.tfevents.*"))


def wandb_records(path: Path) -> list:
    """The records of an offline run's ``.wandb`` file (W&B's transaction log: a 7-byte header, then
    32 KiB blocks of chunks, each ``crc32 u32, length u16, kind u8`` + data; kinds full 1, first 2,
    middle 3, last 4), parsed with wandb's own protobuf ``Record``."""
    from wandb.proto import wandb_internal_pb2

    data, pos, block, parts, out = path.read_bytes(), 7, 32768, b"", []
    assert data[:4] == b":W&B", f"{path}: not a W&B transaction log"
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # the zero padding at a block's end
            pos += left
            continue
        parts += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            out.append(wandb_internal_pb2.Record.FromString(parts))
            parts = b""
    return out


def test_wandb_offline_logs_the_same_scalars_and_the_config(tiny_stack, synthetic_flickr, tmp_path):
    """run.wandb_log as in the official configs, offline: no network or account; the run's files go to
    RUN/wandb/, with every train/* line and epoch/* record of the console log at its global step."""
    pytest.importorskip("wandb", reason="the wandb package is not installed (pip install wandb)")
    opts = options(
        tiny_stack,
        synthetic_flickr,
        tmp_path,
        max_epoch=2,
        iters_per_epoch=2,
        batch_size_train=2,
        log_freq=1,
        wandb_log="true",
        wandb_mode="offline",
        wandb_project="flickr-tests",
    )
    proc = run_train(opts, env={"WANDB_SILENT": "true"})
    (run,) = run_dirs(tmp_path)
    (log_file,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(log_file)
    history = [
        {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    assert [h["_step"] for h in history] == [0, 1, 2, 3]
    assert [h["epoch"] for h in history if "epoch" in h] == [0, 1]
    assert [h["epoch/loss"] for h in history if "epoch/loss" in h] == pytest.approx([r["loss"] for r in epoch_records(run)])
    losses = [float(m) for m in re.findall(r"Train: epoch \[\d\] \[\d/2\] .* loss (\S+)", proc.stdout)]
    assert [h["train/loss"] for h in history] == pytest.approx(losses, abs=1e-4) and len(losses) == 4
    (start,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert start.project == "flickr-tests" and start.display_name == f"minigpt4_flickr_tiny/{run.name}"
    config = {i.key: json.loads(i.value_json) for i in start.config.update}
    assert config["model"]["llama_model"] == tiny_stack["llama_model"] and config["run"]["wandb_mode"] == "offline"
    assert "\r" not in proc.stdout + proc.stderr  # not a terminal: progress lines, no bar updates


def test_a_missing_tracker_package_is_a_config_error(monkeypatch, tmp_path):
    run = OmegaConf.create({"tensorboard": False, "wandb_log": True, "wandb_project": "p", "wandb_name": None, "wandb_mode": "offline"})
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(
        ConfigError,
        match=r"run.wandb_log is true but the 'wandb' package is not installed: pip "
        r"install wandb \(or set run.wandb_log: false\)",
    ):
        Trackers.from_run(run, tmp_path, {}, is_main=True)
    assert Trackers.from_run(run, tmp_path, {}, is_main=False).trackers == []  # other ranks log nothing


def test_resume_restores_step_data_and_rng_in_process(tiny_stack, synthetic_flickr, tmp_path):
    """A runner built with run.resume_ckpt_path starts at the next epoch with this rank's saved
    data-stream position, RNG states, optimizer state and weights."""
    common = dict(iters_per_epoch=3, batch_size_train=2, max_epoch=2)
    cfg = minigpt4.load_config(TINY_CFG, options(tiny_stack, synthetic_flickr, tmp_path, stop_after_epoch=0, **common))
    info = dist.init_distributed("cpu")
    setup_logger(0)
    task = TASKS.get(cfg.run.task).from_config(cfg.run)
    build = lambda c, d: RUNNERS.get(c.run.runner).from_config(  # noqa: E731
        c, task=task, model=minigpt4.build_model(c.model), datasets=task.build_datasets(c.datasets), run_dir=d, dist_info=info
    )
    first = build(cfg, tmp_path / "a")
    assert [r["epoch"] for r in first.train()] == [0]  # stop_after_epoch
    ckpt = load_checkpoint(tmp_path / "a" / "checkpoint_0.pth")
    torch.manual_seed(12345)  # scramble the RNG; resume must restore it
    cfg2 = minigpt4.load_config(
        TINY_CFG,
        options(tiny_stack, synthetic_flickr, tmp_path, **common) + [f"run.resume_ckpt_path={tmp_path / 'a' / 'checkpoint_0.pth'}"],
    )
    second = build(cfg2, tmp_path / "b")
    assert second.start_epoch == 1
    assert second.loader.state_dict() == ckpt["rank_states"][0]["data"] == {"data_pass": 0, "batch_in_pass": 3}
    assert torch.equal(torch.get_rng_state(), ckpt["rank_states"][0]["rng"]["torch"])
    assert_same_weights(second.model_without_ddp.trainable_state_dict(), ckpt["model"])
    assert second.optimizer.state_dict()["state"][0]["step"].item() == 3
    assert [r["epoch"] for r in second.train()] == [1]


def test_resume_past_stop_after_epoch_trains_to_the_end(tiny_stack, synthetic_flickr, tmp_path):
    """stop_after_epoch stops once: the resumed run (same config) trains every remaining epoch, not one
    more per call (it used to stop after each epoch past it)."""
    common = dict(iters_per_epoch=2, batch_size_train=2, max_epoch=3, stop_after_epoch=0)
    info = dist.init_distributed("cpu")
    setup_logger(0)

    def runner(cfg, run_dir):
        task = TASKS.build(cfg.run.task, cfg.run)
        return RUNNERS.build(
            cfg.run.runner,
            cfg,
            task=task,
            model=minigpt4.build_model(cfg.model),
            datasets=task.build_datasets(cfg.datasets),
            run_dir=run_dir,
            dist_info=info,
        )

    cfg = minigpt4.load_config(TINY_CFG, options(tiny_stack, synthetic_flickr, tmp_path, **common))
    assert [r["epoch"] for r in runner(cfg, tmp_path / "a").train()] == [0]
    cfg = minigpt4.load_config(
        TINY_CFG,
        options(tiny_stack, synthetic_flickr, tmp_path, **common) + [f"run.resume_ckpt_path={tmp_path / 'a' / 'checkpoint_0.pth'}"],
    )
    assert [r["epoch"] for r in runner(cfg, tmp_path / "a").train()] == [1, 2]


def test_resume_auto_keeps_the_original_config(tiny_stack, synthetic_flickr, tmp_path):
    """--resume auto writes the new invocation's config beside config.yaml instead of over it."""
    opts = options(tiny_stack, synthetic_flickr, tmp_path, iters_per_epoch=2, batch_size_train=2, max_epoch=2, stop_after_epoch=0)
    run_train(opts)
    (run_dir,) = run_dirs(tmp_path)
    original = (run_dir / "config.yaml").read_text()
    run_train(opts + ["run.log_freq=7"], resume="auto")
    assert run_dirs(tmp_path) == [run_dir] and (run_dir / "checkpoint_1.pth").is_file()
    assert (run_dir / "config.yaml").read_text() == original and "log_freq: 10" in original
    (resumed,) = run_dir.glob("config.resumed-*.yaml")
    assert "log_freq: 7" in resumed.read_text()
    assert minigpt4.load_config(resumed).run.log_freq == 7  # itself a valid config


@pytest.fixture()
def corrupt_flickr(synthetic_flickr, tmp_path) -> tuple[Path, str]:
    """A copy of the synthetic data whose first training image is not a JPEG any more."""
    import shutil

    data = tmp_path / "corrupt_data"
    shutil.copytree(synthetic_flickr, data)
    name = json.loads((data / "flickr30k_train.json").read_text())[0]["image"]
    (data / "flickr30k-images" / name).write_bytes(b"not a jpeg")
    return data, name


def test_corrupt_image_is_skipped_and_counted(tiny_stack, corrupt_flickr, tmp_path):
    data, name = corrupt_flickr
    # one full data pass: 32 images x 5 captions = 160 samples = 40 batches of 4
    proc = run_train(options(tiny_stack, data, tmp_path / "out", max_epoch=1, iters_per_epoch=40, batch_size_train=4))
    (record,) = epoch_records(run_dirs(tmp_path / "out")[0])
    assert record["skipped"] == 5 and record["samples"] == 155  # the 5 captions of the bad image
    assert "Epoch 0: skipped 5 missing/corrupt samples" in proc.stdout + proc.stderr


def test_failing_rank_takes_the_job_down(tiny_stack, corrupt_flickr, tmp_path):
    """strict_data: the rank that meets the bad image raises; torchrun ends the job (no hang)."""
    data, name = corrupt_flickr
    start = time.time()
    proc = run_train(
        options(tiny_stack, data, tmp_path / "out", max_epoch=1, iters_per_epoch=20, batch_size_train=4, strict_data="true"),
        nproc=2,
        check=False,
        timeout=150,
    )
    assert proc.returncode != 0 and time.time() - start < 120
    assert "error: cannot load image" in proc.stderr and name in proc.stderr
    assert not list(run_dirs(tmp_path / "out")[0].glob("checkpoint_*"))


def test_two_datasets_mixed_by_sample_ratio_are_counted(tiny_stack, synthetic_flickr, tmp_path):
    """Two entries with sample_ratio 1:3: the start-up log gives each dataset's size and share, and
    log.txt counts the samples each one gave in the epoch."""
    extra = [
        "datasets.flickr30k_caption.sample_ratio=1",
        "datasets.mine.builder=caption_json",
        f"datasets.mine.build_info.ann_path={synthetic_flickr / 'flickr30k_train.json'}",
        f"datasets.mine.build_info.image_path={synthetic_flickr / 'flickr30k-images'}",
        "datasets.mine.vis_processor.train.image_size=56",
        "datasets.mine.sample_ratio=3",
    ]
    proc = run_train(options(tiny_stack, synthetic_flickr, tmp_path, max_epoch=1, iters_per_epoch=20, batch_size_train=4) + extra)
    assert (
        "Training data (mixed by sample_ratio; batches grouped by length; 320 samples per pass): flickr30k_caption: "
        "160 samples (25.0% of each pass); mine: 160 samples (75.0% of each pass)"
    ) in proc.stdout
    (record,) = epoch_records(run_dirs(tmp_path)[0])
    counts = record["samples_per_dataset"]
    assert set(counts) == {"flickr30k_caption", "mine"} and sum(counts.values()) == record["samples"] == 80
    assert counts["mine"] > 2 * counts["flickr30k_caption"]


def test_two_ranks_with_the_cache_equal_one_rank_at_the_same_global_batch(tiny_stack, synthetic_flickr, tmp_path):
    """2 gloo ranks x batch 4 and 1 process x batch 8 see the same samples per step (the feature cache on,
    length-grouped batches): the same training up to the loss's token weighting (a token mean per rank,
    averaged over ranks, vs one token mean over the 8 samples), which Adam's steps carry on. The log
    lines report samples/s, tokens/s, padding, MFU (given a peak) and cache hits."""
    run = {"max_epoch": 2, "iters_per_epoch": 10, "log_freq": 5, "warmup_steps": 2, "peak_tflops": 0.01}
    one = run_train(options(tiny_stack, synthetic_flickr, tmp_path / "one", batch_size_train=8, **run))
    run_train(options(tiny_stack, synthetic_flickr, tmp_path / "two", batch_size_train=4, **run), nproc=2)
    (a,), (b,) = run_dirs(tmp_path / "one"), run_dirs(tmp_path / "two")
    wa, wb = final_weights(a, 1), final_weights(b, 1)
    for k in TRAINABLE:
        assert torch.allclose(wa[k], wb[k], rtol=0, atol=5e-3), f"{k}: {(wa[k] - wb[k]).abs().max().item():.3g}"
    ra, rb = epoch_records(a), epoch_records(b)
    assert [r["loss"] for r in ra] == pytest.approx([r["loss"] for r in rb], rel=1e-3)
    assert ra[0]["feature_cache"]["encoded"] > 0 and ra[1]["feature_cache"]["encoded"] == 0  # warm in epoch 1
    assert ra[1]["feature_cache"]["hits"] == 80 and 0 <= ra[1]["padding"] < 0.2 and ra[1]["mfu"] > 0
    assert re.search(r"samples/s [\d.]+ tokens/s [\d,]+ pad [\d.]+% mfu [\d.]+% cache hits \d+%", one.stdout)
    assert "feature cache: " in one.stdout and "KiB per image" in one.stdout
