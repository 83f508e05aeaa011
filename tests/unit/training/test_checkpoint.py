"""Atomic writes, checkpoint files, checkpoint_latest.pth, resume lookup and RNG state round trips."""

from __future__ import annotations

import os
import random
import time

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from minigpt4.errors import WeightsError
from minigpt4.run_dir import LATEST, create_run_dir, find_resume_checkpoint, list_checkpoints
from minigpt4.training.checkpoint import load_checkpoint, save_checkpoint
from minigpt4.utils import dist
from minigpt4.utils.io import atomic_torch_save, atomic_write_text, remove_stale_tmp_files, tmp_path_for
from minigpt4.utils.logging import EpochLog


def _state(epoch: int, value: float = 1.0) -> dict:
    return {
        "model": {"llama_proj.weight": torch.full((3, 2), value), "llama_proj.bias": torch.zeros(3)},
        "optimizer": {"state": {}, "param_groups": []},
        "lr_scheduler": {"name": "constant_lr", "init_lr": 1e-3, "iters_per_epoch": 4},
        "scaler": {},
        "epoch": epoch,
        "global_step": (epoch + 1) * 4,
        "world_size": 1,
        "rank_states": [{"rng": dist.get_rng_state(), "data": {"data_pass": 0, "batch_in_pass": 4}}],
        "config": {"run": {"seed": 1}},
    }


def test_save_load_and_latest(tmp_path):
    p0 = save_checkpoint(tmp_path, 0, _state(0, 1.0))
    p1 = save_checkpoint(tmp_path, 1, _state(1, 2.0))
    assert p0.name == "checkpoint_0.pth" and p1.name == "checkpoint_1.pth"
    latest = tmp_path / LATEST
    # a plain checkpoint file (hard link or copy), loadable with the safe loader
    raw = torch.load(latest, map_location="cpu", weights_only=True)
    assert raw["epoch"] == 1 and torch.equal(raw["model"]["llama_proj.weight"], torch.full((3, 2), 2.0))
    assert os.path.samefile(latest, p1) or latest.read_bytes() == p1.read_bytes()
    assert load_checkpoint(p0)["epoch"] == 0
    assert [e for e, _ in list_checkpoints(tmp_path)] == [0, 1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(WeightsError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pth")
    torch.save({"model": {}}, tmp_path / "official.pth")
    with pytest.raises(ValueError, match=r"official.pth: not a resumable training checkpoint \(missing optimizer"):
        load_checkpoint(tmp_path / "official.pth")


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint_0.pth"
    atomic_torch_save({"v": torch.tensor(1)}, target)
    real_save = torch.save

    def crash(obj, f, *a, **k):
        real_save(obj, f, *a, **k)  # the temporary file is complete ...
        raise KeyboardInterrupt  # ... but the writer is interrupted before the rename

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"v": torch.tensor(2)}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True)["v"].item() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_0.pth"]

    atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(ZeroDivisionError):
        from minigpt4.utils.io import atomic_write

        atomic_write(tmp_path / "a.txt", lambda tmp: (tmp.write_text("half"), 1 / 0))
    assert (tmp_path / "a.txt").read_text() == "old"


def test_stale_temp_files_are_ignored_and_removable(tmp_path):
    run = tmp_path / "job" / "20240101000000"
    save_checkpoint(run, 0, _state(0))
    stale = tmp_path_for(run / "checkpoint_1.pth")
    stale.write_bytes(b"truncated")  # what a SIGKILL during a save leaves behind
    assert [e for e, _ in list_checkpoints(run)] == [0]
    assert find_resume_checkpoint(tmp_path / "job") == run / "checkpoint_0.pth"
    assert remove_stale_tmp_files(run) == [stale] and not stale.exists()


def test_find_resume_checkpoint_picks_newest_run_then_highest_epoch(tmp_path):
    job = tmp_path / "job"
    assert find_resume_checkpoint(job) is None
    old, new, empty = job / "20240101000000", job / "20240102000000", job / "20240103000000"
    for e in (0, 1, 2):
        save_checkpoint(old, e, _state(e))
    for e in (0, 1, 10):
        save_checkpoint(new, e, _state(e))
    empty.mkdir()  # a newer run that crashed before its first checkpoint
    assert find_resume_checkpoint(job) == new / "checkpoint_10.pth"  # 10 > 2 numerically, not by name


def test_rng_state_round_trip_through_a_safe_checkpoint(tmp_path):
    dist.seed_everything(123)
    state = dist.get_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    torch.save({"rng": state}, tmp_path / "rng.pth")
    dist.seed_everything(999)
    dist.set_rng_state(torch.load(tmp_path / "rng.pth", weights_only=True)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_epoch_log_append_and_truncate(tmp_path):
    log = EpochLog(tmp_path / "log.txt")
    for e in range(3):
        log.append({"epoch": e, "loss": 1.0 / (e + 1)})
    log.truncate_after(0)
    assert [r["epoch"] for r in log.records()] == [0]
    (tmp_path / "log.txt").write_text('{"epoch": 0}\nnot json\n')
    with pytest.raises(ValueError, match=r"log.txt line 2"):
        log.records()


def test_run_folders_are_never_reused(tmp_path):
    run_cfg = OmegaConf.create({"output_dir": str(tmp_path), "job_name": "job"})
    start = time.time()
    a, b = create_run_dir(run_cfg), create_run_dir(run_cfg)
    assert a != b and a.parent == b.parent == tmp_path / "job"
    assert len(a.name) == len(b.name) == 14 and a.name < b.name  # YYYYmmddHHMMSS, the second one waited
    assert time.time() - start < 3
