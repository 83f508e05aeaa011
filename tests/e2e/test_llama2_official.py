"""End to end, the official way: the official Llama-2 stage-2 config (only its paths edited) trains the
Llama-2 variant on cc_sbu_align data with torchrun on 2 CPU ranks, with LoRA adapters on the LLM as
MiniGPT-v2 adds them (``model.lora``, gradient checkpointing on), then evaluate.sh's job scores the run
with the official Llama-2 eval config on Flickr30k, taking the adapter settings from the run. Sizes,
device and step counts come as --options: the tiny stack is not the official size."""

import json
import shutil

import pytest
import torch

from minigpt4.cli import evaluate as eval_main
from minigpt4.testing.stacks import TINY_VIT
from tests.helpers.configs import edit_paths
from tests.helpers.processes import run_ok, torchrun
from tests.helpers.training import run_dirs

SIZE_OPTIONS = ["model.image_size=56", *(f"model.vit_config.{k}={v}" for k, v in TINY_VIT.items())]


def cc_sbu_align_sample(flickr, out):
    """The synthetic images in the official stage-2 layout: filter_cap.json + image/<image_id>.jpg."""
    records = json.loads((flickr / "flickr30k_train.json").read_text())
    (out / "image").mkdir(parents=True)
    annotations = []
    for i, r in enumerate(records):
        shutil.copy(flickr / "flickr30k-images" / r["image"], out / "image" / f"{i}.jpg")
        annotations.append({"image_id": str(i), "caption": r["captions"][0].capitalize() + "."})
    (out / "filter_cap.json").write_text(json.dumps({"annotations": annotations}))
    return out


@pytest.mark.slow
def test_official_llama2_configs_train_on_two_ranks_then_evaluate(tiny_llama2_stack, synthetic_flickr, tmp_path, capsys):
    storage = cc_sbu_align_sample(synthetic_flickr, tmp_path / "cc_sbu_align")
    out = tmp_path / "output"
    stage1 = tiny_llama2_stack["ckpt"]
    model_paths = {
        "model.llama_model": tiny_llama2_stack["llama_model"],
        "model.vit_ckpt": tiny_llama2_stack["vit_ckpt"],
        "model.ckpt": stage1,
    }
    train_cfg = edit_paths(
        "minigpt4_llama2_stage2_finetune.yaml",
        tmp_path,
        {**model_paths, "datasets.cc_sbu_align.build_info.storage": str(storage), "run.output_dir": str(out)},
    )
    proc = run_ok(
        torchrun(
            2,
            "train.py",
            "--cfg-path",
            train_cfg,
            "--options",
            *SIZE_OPTIONS,
            "datasets.cc_sbu_align.vis_processor.train.image_size=56",
            "run.device=cpu",
            "run.num_workers=0",
            "run.iters_per_epoch=3",
            "run.max_epoch=2",
            "run.warmup_steps=2",
            "run.init_lr=1e-3",
            "run.log_freq=3",
            f"run.feature_cache={tmp_path / 'features'}",
            "model.lora.r=4",
            "model.llm_grad_checkpoint=true",
            "run.wandb_mode=offline",
        ),
        timeout=400,
    )
    log = proc.stdout + proc.stderr
    assert "'pretrain_llama2' is the official name of 'llama2'" in log
    for key in ("run.world_size", "run.dist_url", "datasets.cc_sbu_align.text_processor"):
        assert f"{key} in {train_cfg}: ignored: " in log, key
    assert "datasets.cc_sbu_align.batch_size = 12" in log
    assert "trainable parameters: 18,496 (llama_proj 16,448 + LoRA adapters 2,048 (r 4 on q_proj, v_proj))" in log
    assert "DDP over 10 trainable tensors" in log  # llama_proj's 2 + 4 adapter matrices in each of 2 layers
    (run,) = run_dirs(out, "minigpt4_llama2_finetune")
    assert list((run / "wandb").glob("offline-run-*/run-*.wandb"))  # the official wandb_log: True, offline
    records = [json.loads(line) for line in (run / "log.txt").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1] and records[0]["samples"] == 2 * 12 * 3  # 2 ranks x official batch
    assert records[1]["feature_cache"] == {"hits": 72, "encoded": 0}  # the ViT features, cached in epoch 0
    ckpt = torch.load(run / "checkpoint_1.pth", weights_only=True)["model"]
    assert ckpt["llama_proj.weight"].shape == (64, 256)
    assert len(ckpt) == 10 and sum(".lora_B." in k and v.abs().sum() > 0 for k, v in ckpt.items()) == 4

    eval_cfg = edit_paths("minigpt4_llama2_eval.yaml", tmp_path, model_paths)
    capsys.readouterr()
    status = eval_main(
        [
            str(run),
            "--cfg-path",
            str(eval_cfg),
            "--options",
            *SIZE_OPTIONS,
            f"evaluation_datasets.flickr30k_eval.build_info.ann_path={synthetic_flickr}",
            f"evaluation_datasets.flickr30k_eval.build_info.image_path={synthetic_flickr / 'flickr30k-images'}",
            "evaluation_datasets.flickr30k_eval.vis_processor.eval.image_size=56",
            "run.device=cpu",
            "run.max_new_tokens=8",
            "run.num_workers=0",
            f"run.feature_cache={tmp_path / 'features'}",
        ]
    )  # evaluate.sh's job, in this process (the script itself: test_quickstart.py, test_evaluate_checks.py)
    assert status == 0
    log = "".join(capsys.readouterr())
    assert "low_resource: true loads the LLM in 8-bit on a GPU, but this process runs on cpu" in log
    assert "not used by the evaluation" in log
    assert "model.lora: the run trained LoRA adapters (r 4, alpha 16, dropout 0.05, target_modules" in log
    for name in ("pretrained", "checkpoint_0", "checkpoint_1"):
        m = json.loads((run / "eval" / name / "metrics.json").read_text())
        assert m["prompt"] == "[INST] <Img><ImageHere></Img> Describe this image in detail. [/INST] "
        assert m["stop_string"] == "</s>" and m["num_images"] == 4 and m["config"]["model"]["lora"]["r"] == 4
    summary = (run / "eval" / "summary.md").read_text()
    assert "| pretrained |" in summary and "| 1 |" in summary
