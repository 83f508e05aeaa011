"""Evaluation encodes each test image once for all the job's checkpoints (from the feature cache when
it is there), records the counts and phase times, and captions the same with and without the cache."""

from __future__ import annotations

import json

from minigpt4.cli import evaluate as eval_main
from minigpt4.evaluation import shared_scorer
from minigpt4.models.minigpt4 import MiniGPT4
from tests.helpers.evaluation import eval_outputs, write_ckpt


def _count_encoder_passes(monkeypatch) -> list[int]:
    """Images run through the frozen vision stack, per call, in this process."""
    calls: list[int] = []
    real = MiniGPT4.frozen_features
    monkeypatch.setattr(MiniGPT4, "frozen_features", lambda self, images, cut: calls.append(len(images)) or real(self, images, cut))
    return calls


def test_k_checkpoints_share_one_encoding_pass(standin_eval, tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    for epoch in range(3):
        write_ckpt(run / f"checkpoint_{epoch}.pth", standin_eval["base"], epoch, 0.02)
    cache = tmp_path / "features"
    opts = ["--options", "run.max_new_tokens=6", f"run.feature_cache={cache}"]
    calls = _count_encoder_passes(monkeypatch)
    scorer = shared_scorer()
    assert eval_main([str(run), "--cfg-path", str(standin_eval["cfg"]), *opts]) == 0
    assert shared_scorer() is scorer and scorer.usable  # a finished job leaves the process's METEOR JVM running
    assert sum(calls) == 10  # 4 checkpoints (pretrained + 3), 10 test images: each image once
    for name in ("pretrained", "checkpoint_0", "checkpoint_1", "checkpoint_2"):
        _, m = eval_outputs(run / "eval", name)
        assert m["feature_cache"]["encoded"] == 10 and m["feature_cache"]["hits"] == 0
        assert m["feature_cache"]["shared_by"] == 4 and m["feature_cache"]["folder"] == str(cache)
        assert set(m["seconds"]) == {"encode", "generate", "score"}
    # a new checkpoint later: its images come from the cache, nothing is encoded
    write_ckpt(run / "checkpoint_3.pth", standin_eval["base"], 3, 0.02)
    calls.clear()
    assert eval_main([str(run), "--cfg-path", str(standin_eval["cfg"]), *opts]) == 0
    assert sum(calls) == 0
    _, m = eval_outputs(run / "eval", "checkpoint_3")
    assert m["feature_cache"] == {**m["feature_cache"], "encoded": 0, "hits": 10, "shared_by": 1}


def test_captions_without_the_cache_match(standin_eval, tmp_path, monkeypatch):
    """run.feature_cache: null encodes in memory (fp32, once per job); the fp16 cache gives the same
    captions on the stand-ins, and the two are different settings (never mixed in one summary)."""
    save = tmp_path / "out"
    args = ["--cfg-path", str(standin_eval["cfg"]), "--limit", "6"]
    calls = _count_encoder_passes(monkeypatch)
    assert (
        eval_main([*args, "--save-path", str(save / "cached"), "--options", "run.max_new_tokens=8", f"run.feature_cache={tmp_path / 'fc'}"])
        == 0
    )
    assert eval_main([*args, "--save-path", str(save / "plain"), "--options", "run.max_new_tokens=8", "run.feature_cache=null"]) == 0
    assert sum(calls) == 12  # 6 images encoded by each job (the third below reads the cache)
    caps_c, m_c = eval_outputs(save / "cached", "pretrained")
    caps_p, m_p = eval_outputs(save / "plain", "pretrained")
    assert [c["caption"] for c in caps_c] == [c["caption"] for c in caps_p]
    assert m_p["feature_cache"]["folder"] is None and m_p["feature_cache"]["encoded"] == 6
    assert m_c["fingerprint"]["settings_digest"] != m_p["fingerprint"]["settings_digest"]
    assert json.dumps(m_c["fingerprint"]["settings"]["generation"]["features"]) == '"fp16"'
    # an eval config that leaves the Q-Former trainable (training's cut is then the ViT's output):
    # evaluation still encodes after the Q-Former and captions the same
    assert (
        eval_main(
            [
                *args,
                "--save-path",
                str(save / "qformer_trains"),
                "--options",
                "run.max_new_tokens=8",
                f"run.feature_cache={tmp_path / 'fc'}",
                "model.freeze_qformer=false",
            ]
        )
        == 0
    )
    assert [c["caption"] for c in eval_outputs(save / "qformer_trains", "pretrained")[0]] == [c["caption"] for c in caps_c]
