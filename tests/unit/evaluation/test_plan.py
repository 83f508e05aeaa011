"""The evaluation job's plan without a model: a result whose fingerprint matches is skipped, a changed
setting re-evaluates it and says what changed, ``--save-path`` always evaluates."""

from __future__ import annotations

import json

from minigpt4.evaluation.fingerprint import eval_settings
from minigpt4.evaluation.plan import UP_TO_DATE, Checkpoint, Plan, Request, describe, judge, on_main, pending
from minigpt4.run_dir import FINGERPRINT, METRICS_JSON
from minigpt4.utils import dist


def settings(tmp_path, max_new_tokens: int = 20) -> dict:
    llm = tmp_path / "llm"
    if not llm.is_dir():  # once: the folder's file stamps are part of the settings
        llm.mkdir()
        (llm / "config.json").write_text("{}")

    return eval_settings(
        {"arch": "minigpt4", "llama_model": str(llm), "ckpt": None},
        "flickr30k_eval",
        {"builder": "flickr30k"},
        "test",
        None,
        None,
        {"max_new_tokens": max_new_tokens, "num_beams": 1},
        "Describe this image.",
        "###Human: Describe this image. ###Assistant: ",
        "cpu",
    )


def checkpoints(tmp_path) -> list[Checkpoint]:
    ckpt = tmp_path / "run" / "checkpoint_0.pth"
    ckpt.parent.mkdir(exist_ok=True)
    ckpt.write_bytes(b"weights")
    return [Checkpoint("pretrained", "pretrained", None), Checkpoint("checkpoint_0", str(ckpt), str(ckpt))]


def write_result(save_path, c: Checkpoint) -> None:
    (save_path / c.name).mkdir(parents=True, exist_ok=True)
    (save_path / c.name / METRICS_JSON).write_text(json.dumps({"name": c.name, FINGERPRINT: c.fingerprint}))


def test_a_result_with_the_same_fingerprint_is_skipped_and_a_changed_setting_is_redone(tmp_path):
    save_path = tmp_path / "run" / "eval"
    first = checkpoints(tmp_path)
    judge(first, settings(tmp_path), save_path)
    assert [c.why for c in first] == ["not evaluated yet"] * 2 and not any(c.up_to_date for c in first)
    run = Request(run_dir=str(tmp_path / "run"))
    assert pending(first, run) == first
    for c in first:
        write_result(save_path, c)

    again = checkpoints(tmp_path)
    judge(again, settings(tmp_path), save_path)
    assert all(c.up_to_date for c in again) and pending(again, run) == []
    assert pending(again, Request(save_path=str(save_path))) == again  # --save-path: always evaluated

    changed = checkpoints(tmp_path)
    judge(changed, settings(tmp_path, max_new_tokens=5), save_path)
    assert pending(changed, run) == changed
    assert all(c.why == "settings changed: generation.max_new_tokens: 20 -> 5" for c in changed)


def test_a_result_without_a_fingerprint_is_redone(tmp_path):
    save_path = tmp_path / "eval"
    (save_path / "pretrained").mkdir(parents=True)
    (save_path / "pretrained" / METRICS_JSON).write_text(json.dumps({"name": "pretrained"}))
    (c, _) = checkpoints(tmp_path)
    judge([c], settings(tmp_path), save_path)
    assert not c.up_to_date and c.why.startswith("fingerprint: none recorded")


def test_describe_lists_each_checkpoint_and_why(tmp_path):
    first = checkpoints(tmp_path)
    first[0].up_to_date = True
    plan = Plan(Request(run_dir="RUN"), [], 10, "e", "test", None, "", "", tmp_path, first, first[1:], "d", None)
    assert describe(plan) == [
        "RUN: 1 checkpoint(s) + pretrained, 1 to evaluate",
        f"  pretrained: {UP_TO_DATE}",
        "  checkpoint_0: not evaluated yet",
    ]


def test_on_main_runs_once_without_a_process_group():
    assert not dist.is_dist() and on_main(lambda: 3) == 3
