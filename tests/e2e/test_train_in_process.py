"""The training runner in this process on the tiny stack: frozen weights stay bit-identical, a resumed
runner restores its data position, RNG and optimizer, stop_after_epoch stops once."""

from __future__ import annotations

import pytest
import torch

import minigpt4
from minigpt4.training.checkpoint import load_checkpoint
from tests.helpers.paths import TINY_CFG
from tests.helpers.training import TRAINABLE, assert_same_weights, build_runner, options

pytestmark = pytest.mark.slow


def test_frozen_weights_unchanged_in_process(tiny_stack, synthetic_flickr, tmp_path):
    """Frozen parameters and buffers are bit-identical after training; llama_proj moved; the
    checkpoint holds exactly the trainable parameters, equal to the model's."""
    cfg = minigpt4.load_config(
        TINY_CFG, options(tiny_stack, synthetic_flickr, tmp_path, max_epoch=1, iters_per_epoch=4, batch_size_train=2)
    )
    model = minigpt4.build_model(cfg.model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == TRAINABLE == set(model.trainable_state_dict())
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    build_runner(cfg, tmp_path / "run", model).train()
    after = model.state_dict()
    assert set(after) == set(before)
    for k, v in before.items():
        if k in TRAINABLE:
            assert not torch.equal(v, after[k]), f"{k} did not train"
        else:
            assert v.dtype == after[k].dtype and torch.equal(v, after[k]), f"frozen {k} changed"
    saved = torch.load(tmp_path / "run" / "checkpoint_0.pth", weights_only=True)["model"]
    assert_same_weights(saved, {k: after[k] for k in TRAINABLE})


def test_resume_restores_step_data_and_rng_in_process(tiny_stack, synthetic_flickr, tmp_path):
    """A runner built with run.resume_ckpt_path starts at the next epoch with this rank's saved
    data-stream position, RNG states, optimizer state and weights."""
    common = dict(iters_per_epoch=3, batch_size_train=2, max_epoch=2)
    cfg = minigpt4.load_config(TINY_CFG, options(tiny_stack, synthetic_flickr, tmp_path, stop_after_epoch=0, **common))
    first = build_runner(cfg, tmp_path / "a")
    assert [r["epoch"] for r in first.train()] == [0]  # stop_after_epoch
    ckpt = load_checkpoint(tmp_path / "a" / "checkpoint_0.pth")
    torch.manual_seed(12345)  # scramble the RNG; resume must restore it
    cfg2 = minigpt4.load_config(
        TINY_CFG,
        options(tiny_stack, synthetic_flickr, tmp_path, **common) + [f"run.resume_ckpt_path={tmp_path / 'a' / 'checkpoint_0.pth'}"],
    )
    second = build_runner(cfg2, tmp_path / "b")
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
    cfg = minigpt4.load_config(TINY_CFG, options(tiny_stack, synthetic_flickr, tmp_path, **common))
    assert [r["epoch"] for r in build_runner(cfg, tmp_path / "a").train()] == [0]
    cfg = minigpt4.load_config(
        TINY_CFG,
        options(tiny_stack, synthetic_flickr, tmp_path, **common) + [f"run.resume_ckpt_path={tmp_path / 'a' / 'checkpoint_0.pth'}"],
    )
    assert [r["epoch"] for r in build_runner(cfg, tmp_path / "a").train()] == [1, 2]
