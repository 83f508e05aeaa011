"""Trackers of a training run: W&B offline logging the console's scalars and the config (with TensorBoard
beside it where installed), a missing tracker package as a config error."""

from __future__ import annotations

import importlib.util
import json
import re
import struct
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from minigpt4.errors import ConfigError
from minigpt4.utils.tracking import Trackers
from tests.helpers.training import epoch_records, options, run_dirs, run_train

pytestmark = pytest.mark.slow
TENSORBOARD = importlib.util.find_spec("tensorboard") is not None  # an optional extra


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
        tensorboard=str(TENSORBOARD).lower(),
    )
    proc = run_train(opts, env={"WANDB_SILENT": "true"}, process=True)  # wandb's run state is per process
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
    if TENSORBOARD:  # the optional package, when installed, logs beside W&B
        assert list((run / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    "key, package",
    [("tensorboard", "tensorboard"), ("wandb_log", "wandb")],
)
def test_a_missing_tracker_package_is_a_config_error(monkeypatch, tmp_path, key, package):
    run = OmegaConf.create({"tensorboard": False, "wandb_log": False, "wandb_project": "p", "wandb_name": None, "wandb_mode": "offline"})
    run[key] = True
    monkeypatch.setitem(sys.modules, package, None)
    if package == "tensorboard":  # torch's module imports the package
        monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(
        ConfigError,
        match=rf"run.{key} is true but the '{package}' package is not installed: pip "
        rf"install {package} \(or set run.{key}: false\)",
    ):
        Trackers.from_run(run, tmp_path, {}, is_main=True)
    assert Trackers.from_run(run, tmp_path, {}, is_main=False).trackers == []  # other ranks log nothing
