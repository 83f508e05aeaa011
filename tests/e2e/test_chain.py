"""The three-stage chain on the tiny stack, each stage starting from the previous one's checkpoint
(``model.ckpt``): stage 1 (the official stage-1 config on shards) -> stage 2 (the official stage-2
config on cc_sbu_align) -> the Flickr30k fine-tune, then the evaluation of the last run folder."""

from __future__ import annotations

import pytest

from minigpt4.cli import evaluate as eval_main
from tests.helpers.configs import OFFICIAL
from tests.helpers.paths import REPO, TINY_CFG
from tests.helpers.stage1 import STAGE1_CFG, make_shard_sets, stage1_options
from tests.helpers.training import epoch_records, options, run_dirs, run_train
from tests.unit.datasets.test_cc_sbu_align import make_storage

pytestmark = pytest.mark.slow

STAGE2_CFG = OFFICIAL / "minigpt4_stage2_finetune_2023-04.yaml"
TINY_EVAL = REPO / "eval_configs" / "minigpt4_flickr_tiny_eval.yaml"


def test_stage1_then_stage2_then_flickr30k_then_evaluate(tiny_stack, synthetic_flickr, tmp_path, capsys):
    shards = make_shard_sets(synthetic_flickr, tmp_path / "shards")
    stack = [f"model.{k}={tiny_stack[k]}" for k in ("llama_model", "vit_ckpt", "q_former_model")]
    short = {"max_epoch": 1, "iters_per_epoch": 8, "warmup_steps": 2, "log_freq": 4}

    # stage 1: the official stage-1 YAML, no model.ckpt (a fresh llama_proj)
    run_train(stage1_options(tiny_stack, shards, tmp_path / "s1", **short), cfg=STAGE1_CFG)
    (stage1,) = run_dirs(tmp_path / "s1", "minigpt4_pretrain")

    # stage 2: the official stage-2 YAML on cc_sbu_align, from stage 1's checkpoint
    storage = make_storage(tmp_path / "cc_sbu_align")
    run_train(
        [
            "custom_imports=[minigpt4.testing]",
            "model.model_type=tiny",
            *stack,
            f"model.ckpt={stage1 / 'checkpoint_0.pth'}",
            f"datasets.cc_sbu_align.build_info.storage={storage}",
            "datasets.cc_sbu_align.vis_processor.train.image_size=56",
            f"run.output_dir={tmp_path / 's2'}",
            "run.job_name=stage2",
            "run.device=cpu",
            "run.num_workers=0",
            "run.batch_size_train=3",
            *[f"run.{k}={v}" for k, v in short.items()],
        ],
        cfg=STAGE2_CFG,
    )
    (stage2,) = run_dirs(tmp_path / "s2", "stage2")

    # the Flickr30k fine-tune from stage 2's checkpoint
    run_train([*options(tiny_stack, synthetic_flickr, tmp_path / "ft", **short), f"model.ckpt={stage2 / 'checkpoint_0.pth'}"], cfg=TINY_CFG)
    (finetune,) = run_dirs(tmp_path / "ft")
    for run_dir in (stage1, stage2, finetune):
        assert len(epoch_records(run_dir)) == 1
    # each saved config names the checkpoint its stage started from
    assert f"ckpt: {stage1 / 'checkpoint_0.pth'}" in (stage2 / "config.yaml").read_text()
    assert f"ckpt: {stage2 / 'checkpoint_0.pth'}" in (finetune / "config.yaml").read_text()

    capsys.readouterr()
    evaluation = [
        str(finetune),
        "--cfg-path",
        str(TINY_EVAL),
        "--options",
        *stack,
        f"model.ckpt={stage2 / 'checkpoint_0.pth'}",  # the baseline: what the fine-tune started from
        f"evaluation_datasets.flickr30k_eval.build_info.ann_path={synthetic_flickr}",
        f"evaluation_datasets.flickr30k_eval.build_info.image_path={synthetic_flickr / 'flickr30k-images'}",
        "run.device=cpu",
    ]
    assert eval_main(evaluation) == 0
    table = (finetune / "eval" / "summary.md").read_text()
    print(table)
    assert "| pretrained |" in table and "| checkpoint_0 |" in table and "CIDEr" in table
