"""The lr schedules: values at chosen global steps equal the original fine-tune's formula (docs/training.md)."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from minigpt4.registry import LR_SCHEDULERS
from minigpt4.training import lr_schedulers  # noqa: F401  (registers)


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2, 2))], lr=123.0)


def _run(**kw):
    base = dict(max_epoch=5, iters_per_epoch=500, init_lr=3e-5, min_lr=1e-5, warmup_lr=1e-6, warmup_steps=200)
    return OmegaConf.create({**base, **kw})


def spec_lr(t: int, init_lr=3e-5, min_lr=1e-5, warmup_lr=1e-6, warmup_steps=200, total=2500) -> float:
    """Linear warmup, then cosine from init_lr to min_lr over all steps, written out independently of the implementation."""
    if t < warmup_steps:
        return warmup_lr + (init_lr - warmup_lr) * t / warmup_steps
    return min_lr + (init_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * t / total))


def test_flickr_defaults_at_chosen_steps():
    opt = _optimizer()
    sched = LR_SCHEDULERS.get("linear_warmup_cosine_lr").from_config(_run(), opt)
    # (epoch, step) -> expected lr, a few worked by hand
    assert sched.step(0, 0) == pytest.approx(1e-6, rel=1e-12)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-6, rel=1e-12)
    assert sched.step(0, 100) == pytest.approx(1e-6 + 29e-6 * 0.5, rel=1e-12)  # half-way through warmup
    assert sched.step(0, 200) == pytest.approx(1e-5 + 2e-5 * 0.5 * (1 + math.cos(math.pi * 200 / 2500)), rel=1e-12)
    assert sched.step(2, 250) == pytest.approx(2e-5, rel=1e-12)  # t = 1250: cosine at its midpoint
    assert sched.step(4, 499) == pytest.approx(spec_lr(2499), rel=1e-12)
    assert sched.lr_at(2500) == pytest.approx(1e-5, rel=1e-12)  # the end of the schedule is min_lr
    for epoch, step in [(0, 1), (0, 199), (1, 0), (1, 37), (3, 250)]:
        assert sched.step(epoch, step) == pytest.approx(spec_lr(epoch * 500 + step), rel=1e-12)
        assert opt.param_groups[0]["lr"] == sched.lr_at(epoch * 500 + step)


def test_warmup_uses_the_global_step_across_epochs():
    """warmup_steps > iters_per_epoch: epoch 1 continues the warmup (the original restarted it)."""
    sched = LR_SCHEDULERS.get("linear_warmup_cosine_lr").from_config(_run(iters_per_epoch=10, max_epoch=4, warmup_steps=25), _optimizer())
    for epoch in range(4):
        for step in range(10):
            t = epoch * 10 + step
            assert sched.step(epoch, step) == pytest.approx(spec_lr(t, warmup_steps=25, total=40), rel=1e-12)
    assert sched.step(1, 5) < sched.step(2, 4)  # still rising at t = 15 .. 24


def test_no_warmup_and_monotone_decay():
    sched = LR_SCHEDULERS.get("linear_warmup_cosine_lr").from_config(_run(warmup_steps=0), _optimizer())
    lrs = [sched.lr_at(t) for t in range(0, 2501, 50)]
    assert lrs[0] == pytest.approx(3e-5)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_constant_lr():
    opt = _optimizer()
    sched = LR_SCHEDULERS.get("constant_lr").from_config(_run(init_lr=7e-4), opt)
    assert {sched.step(e, s) for e in range(3) for s in (0, 5, 499)} == {7e-4}
    assert opt.param_groups[0]["lr"] == 7e-4


def test_state_dict_round_trip_and_mismatch_warning(caplog):
    sched = LR_SCHEDULERS.get("linear_warmup_cosine_lr").from_config(_run(), _optimizer())
    state = sched.state_dict()
    assert state["name"] == "linear_warmup_cosine_lr" and state["warmup_steps"] == 200
    sched.load_state_dict(state)
    other = LR_SCHEDULERS.get("linear_warmup_cosine_lr").from_config(_run(max_epoch=6), _optimizer())
    with caplog.at_level("WARNING", logger="minigpt4"):
        other.load_state_dict(state)
    assert "differs from the checkpoint" in caplog.text


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="iters_per_epoch"):
        LR_SCHEDULERS.get("linear_warmup_cosine_lr").from_config(_run(iters_per_epoch=0), _optimizer())
    with pytest.raises(KeyError, match="linear_warmup_cosine_lr"):
        LR_SCHEDULERS.get("linear_warmup_cosine")
