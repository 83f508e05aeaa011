"""Evaluation end to end: eval_flickr30k.py with 1 process and under torchrun with 2 (identical
captions and scores), the job of evaluate.sh on a run folder (summary files, fingerprints: nothing
re-evaluated unless a setting changed), --limit, the eval configs. Uses the quickstart's pre-trained stand-ins
(conftest's ``standin_eval``) so the captions are real words. Errors and interruption:
test_evaluate_checks.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf
from PIL import Image

from minigpt4.cli import evaluate as eval_main
from minigpt4.evaluation import METRICS, score_captions, shared_scorer
from minigpt4.quickstart.report import report
from minigpt4.quickstart.standins import STANDIN
from tests.helpers.evaluation import eval_outputs, write_ckpt
from tests.helpers.paths import REPO
from tests.helpers.processes import run_ok, torchrun

SCRIPT = REPO / "eval_scripts" / "eval_flickr30k.py"
TEMPLATE = "###Human: {} ###Assistant: "
FIRST_INSTRUCTION = (REPO / "minigpt4" / "prompts" / "alignment.txt").read_text().splitlines()[0]


@pytest.fixture(scope="module")
def tiny_root(tiny_stack, tmp_path_factory) -> Path:
    """A folder laid out as eval_configs/minigpt4_flickr_tiny_eval.yaml expects: cache/tiny_stack (random
    tiny stack) and cache/synthetic_flickr30k (100 synthetic 56-px images, 10 in the test split)."""
    from minigpt4.datasets import flickr30k_prepare
    from minigpt4.quickstart import synthetic

    root = tmp_path_factory.mktemp("tiny_eval")
    (root / "cache").mkdir()
    os.symlink(Path(tiny_stack["llama_model"]).parent, root / "cache" / "tiny_stack")
    data = root / "cache" / "synthetic_flickr30k"
    synthetic.make_synthetic_flickr30k(data, 100, seed=1, image_size=56)
    flickr30k_prepare.prepare_flickr30k(data)
    return root


@pytest.mark.slow
def test_one_and_two_processes_give_identical_results(standin_eval, tmp_path):
    """Two checkpoints in one job; 10 test images in batches of 3 (the last one short)."""
    ckpt = write_ckpt(tmp_path / "checkpoint_1.pth", standin_eval["base"], 1, 0.01)
    args = ["--cfg-path", standin_eval["cfg"], "--ckpt", "pretrained", "--ckpt", ckpt, "--options", "run.batch_size_eval=3"]
    assert eval_main(["--save-path", str(tmp_path / "one"), *map(str, args)]) == 0  # in this process
    run_ok(
        torchrun(
            2,
            SCRIPT,
            "--save-path",
            tmp_path / "two",
            *args,
        )
    )

    test_split = json.loads((standin_eval["data"] / "flickr30k_test.json").read_text())
    refs = {r["image_id"]: r["captions"] for r in test_split}
    scorer = shared_scorer()  # the one the in-process job above used
    for name, epoch in (("pretrained", -1), ("checkpoint_1", 1)):
        caps1, m1 = eval_outputs(tmp_path / "one", name)
        caps2, m2 = eval_outputs(tmp_path / "two", name)
        assert caps1 == caps2, name
        assert m1["scores"] == m2["scores"], name
        assert (m1["world_size"], m2["world_size"]) == (1, 2)
        # captions.json: one entry per test image, in annotation order
        assert [c["image_id"] for c in caps1] == [r["image_id"] for r in test_split]
        assert [c["image"] for c in caps1] == [r["image"] for r in test_split]
        assert all(set(c) == {"image_id", "image", "caption", "references"} for c in caps1)
        assert [c["references"] for c in caps1] == [r["captions"] for r in test_split]
        assert all(c["caption"] and "###" not in c["caption"] and "Assistant" not in c["caption"] for c in caps1)
        assert len({c["caption"] for c in caps1}) >= 2  # captions depend on the image: a mix-up would show
        # metrics.json: what produced the numbers
        assert m1["epoch"] == epoch and m1["split"] == "test" and m1["num_images"] == len(test_split) == 10
        assert m1["limit"] is None and m1["limit_note"] is None
        assert m1["prompt_template"] == TEMPLATE and m1["stop_string"] == "###"
        assert m1["instruction"] == FIRST_INSTRUCTION and m1["prompt"] == TEMPLATE.format(FIRST_INSTRUCTION)
        assert m1["generation"]["num_beams"] == 1 and m1["generation"]["batch_size_eval"] == 3
        assert m1["config"]["model"]["model_type"] == "standin" and "reason" in m1["spice"]
        # the stored scores are the captions' scores; the stand-ins write real words
        preds = {c["image_id"]: c["caption"] for c in caps1}
        assert score_captions(preds, refs, scorer=scorer) == m1["scores"]
        assert m1["scores"]["Bleu_1"] > 0.2 and set(METRICS) <= set(m1["scores"])
    assert eval_outputs(tmp_path / "one", "pretrained")[1]["checkpoint_file"] == standin_eval["cfg_dict"]["model"]["ckpt"]


@pytest.mark.slow
def test_a_run_folder_then_only_what_is_new_or_changed(standin_eval, tmp_path, capsys):
    """evaluate.sh's job on a run folder (the script itself runs in test_quickstart.py and, with 2
    processes, in test_evaluate_checks.py; its flags in tests/unit/test_cli.py), in this process."""
    run = tmp_path / "run"
    run.mkdir()
    for epoch in (0, 1):
        write_ckpt(run / f"checkpoint_{epoch}.pth", standin_eval["base"], epoch, 0.01)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": standin_eval["cfg_dict"]["model"]}))

    def evaluate(*extra: str, tokens: int = 12) -> str:
        capsys.readouterr()
        assert eval_main([str(run), "--cfg-path", str(standin_eval["cfg"]), *extra, "--options", f"run.max_new_tokens={tokens}"]) == 0
        out, err = capsys.readouterr()
        return out + err

    log = evaluate()
    assert "evaluating 3 checkpoint(s)" in log and "differs from" not in log
    eval_dir = run / "eval"
    for name in ("pretrained", "checkpoint_0", "checkpoint_1"):
        assert (eval_dir / name / "captions.json").is_file() and (eval_dir / name / "metrics.json").is_file()
    csv = (eval_dir / "summary.csv").read_text().splitlines()
    assert csv[0].startswith("name,epoch,") and [r.split(",")[0] for r in csv[1:]] == ["pretrained", "checkpoint_0", "checkpoint_1"]
    md = (eval_dir / "summary.md").read_text()
    assert "| checkpoint | epoch | images | " + " | ".join(METRICS) + " |" in md
    with Image.open(eval_dir / "summary.png") as im:
        im.load()
        assert im.format == "PNG"
        assert json.loads(im.text["Metrics"]) == list(METRICS)
        assert json.loads(im.text["Epochs"]) == [-1, 0, 1]
    stamps = {p: p.stat().st_mtime_ns for p in eval_dir.glob("*/*.json")}

    # a second call with the same settings evaluates nothing
    second = evaluate()
    assert "evaluating" not in second and "up to date (same fingerprint)" in second
    assert {p: p.stat().st_mtime_ns for p in eval_dir.glob("*/*.json")} == stamps

    # a new checkpoint: only it is evaluated, and epoch 10 sorts after epoch 1
    write_ckpt(run / "checkpoint_10.pth", standin_eval["base"], 10, 0.01)
    assert "evaluating 1 checkpoint(s)" in evaluate()
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    csv = (eval_dir / "summary.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in csv[1:]] == ["pretrained", "checkpoint_0", "checkpoint_1", "checkpoint_10"]

    text = report(run, samples=2)
    first_image = json.loads((standin_eval["data"] / "flickr30k_test.json").read_text())[0]
    assert first_image["captions"][0] in text and "checkpoint_10" in text and "summary.png" in text

    # --limit 4 goes to eval_limit4/
    assert "evaluating 4 checkpoint(s) on 4 test images" in evaluate("--limit", "4")
    assert json.loads((run / "eval_limit4" / "checkpoint_0" / "metrics.json").read_text())["limit"] == 4
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # the full-split results are untouched

    # a changed setting re-evaluates everything it affects, says why, and keeps the old results aside
    log = evaluate(tokens=5)
    assert "4 to evaluate" in log and "checkpoint_1: settings changed: generation.max_new_tokens: 12 -> 5" in log
    for name in ("pretrained", "checkpoint_0", "checkpoint_1", "checkpoint_10"):
        m = json.loads((eval_dir / name / "metrics.json").read_text())
        assert m["generation"]["max_new_tokens"] == 5
        (aside,) = (eval_dir / name).glob("replaced-*")
        assert json.loads((aside / "metrics.json").read_text())["generation"]["max_new_tokens"] == 12
        assert (aside / "captions.json").is_file()
    assert [r.split(",")[0] for r in (eval_dir / "summary.csv").read_text().splitlines()[1:]] == [
        "pretrained",
        "checkpoint_0",
        "checkpoint_1",
        "checkpoint_10",
    ]


@pytest.mark.slow
def test_limit(tiny_root, tmp_path, monkeypatch):
    """The tiny config as documented (run from a folder holding cache/), scoring only 4 of 10 images."""
    monkeypatch.chdir(tiny_root)
    assert (
        eval_main(
            ["--cfg-path", str(REPO / "eval_configs" / "minigpt4_flickr_tiny_eval.yaml"), "--save-path", str(tmp_path), "--limit", "4"]
        )
        == 0
    )
    caps, m = eval_outputs(tmp_path, "pretrained")
    assert len(caps) == 4 and m["num_images"] == 4 and m["limit"] == 4 and m["split_size"] == 10
    assert "not comparable with the full split" in m["limit_note"]
    assert m["checkpoint_file"] is None and "fresh llama_proj" in m["checkpoint_note"]  # model.ckpt: null
    assert m["config"]["model"]["model_type"] == "tiny"
    # a limit larger than the split is the full split: scored and labelled as such
    assert (
        eval_main(
            [
                "--cfg-path",
                str(REPO / "eval_configs" / "minigpt4_flickr_tiny_eval.yaml"),
                "--save-path",
                str(tmp_path / "all"),
                "--limit",
                "5000",
            ]
        )
        == 0
    )
    caps, m = eval_outputs(tmp_path / "all", "pretrained")
    assert len(caps) == 10 and m["limit"] is None and m["limit_note"] is None


def test_eval_configs_are_valid(standin_eval, tmp_path):
    """The shipped eval configs pass validation once their paths exist (as a user or quickstart.sh sets them)."""
    from minigpt4 import load_config
    from minigpt4.evaluation.train_match import training_mismatches

    model = standin_eval["cfg_dict"]["model"]
    data = standin_eval["data"]
    real = REPO / "eval_configs" / "minigpt4_flickr_eval.yaml"
    assert real.read_text().count("# EDIT") == 6
    ckpt = write_ckpt(tmp_path / "pretrained.pth", standin_eval["base"], 0, 0.0)
    cfg = load_config(
        real,
        [
            f"model.llama_model={model['llama_model']}",
            f"model.vit_ckpt={model['vit_ckpt']}",
            f"model.q_former_model={model['q_former_model']}",
            f"model.ckpt={ckpt}",
            f"evaluation_datasets.flickr30k_eval.build_info.ann_path={data}",
            f"evaluation_datasets.flickr30k_eval.build_info.image_path={data / 'flickr30k-images'}",
        ],
    )
    assert cfg.model.model_type == "vicuna0" and cfg.model.image_size == 224 and cfg.run.num_beams == 1
    assert cfg.model.prompt_template == TEMPLATE and cfg.model.end_sym == "###"
    assert cfg.evaluation_datasets.flickr30k_eval.vis_processor.eval.image_size == 224

    quick = load_config(
        REPO / "eval_configs" / "minigpt4_flickr_quickstart_eval.yaml",
        [
            f"model.llama_model={model['llama_model']}",
            f"model.vit_ckpt={model['vit_ckpt']}",
            f"model.q_former_model={model['q_former_model']}",
            f"evaluation_datasets.flickr30k_eval.build_info.ann_path={data / 'flickr30k_test.json'}",
            f"evaluation_datasets.flickr30k_eval.build_info.image_path={data / 'flickr30k-images'}",
        ],
    )
    assert quick.model.model_type == "standin" and quick.model.ckpt is None
    assert quick.evaluation_datasets.flickr30k_eval.vis_processor.eval.image_size == quick.model.image_size

    # a run trained with another LLM is reported
    train_cfg = tmp_path / "config.yaml"
    trained = {**OmegaConf.to_container(quick.model), "llama_model": "/elsewhere/llama", "max_txt_len": 7}
    train_cfg.write_text(yaml.safe_dump({"model": trained, "run": {"seed": 7}}))
    problems = training_mismatches(quick, train_cfg)
    assert len(problems) == 1 and "model.llama_model" in problems[0] and "/elsewhere/llama" in problems[0]


@pytest.mark.slow
def test_caption_json_test_set_without_image_ids_reports(standin_eval, tmp_path):
    """A caption_json test set whose records have no image_id (ids = file stems): the job scores it and
    the report shows each image's references (it used to re-read the annotations with image_id
    required, and failed with a DataError)."""
    from minigpt4.quickstart.report import report

    records = json.loads((standin_eval["data"] / "flickr30k_test.json").read_text())[:3]
    ann = tmp_path / "my_test.json"
    ann.write_text(json.dumps([{"image": r["image"], "captions": r["captions"]} for r in records]))
    cfg = {
        **standin_eval["cfg_dict"],
        "evaluation_datasets": {
            "my_set": {
                "builder": "caption_json",
                "split": "test",
                "build_info": {"ann_path": str(ann), "image_path": str(standin_eval["data"] / "flickr30k-images")},
                "vis_processor": {"eval": {"name": "blip2_image_eval", "image_size": STANDIN["image_size"]}},
            }
        },
    }
    cfg_path = tmp_path / "eval.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    run = tmp_path / "run"
    run.mkdir()
    assert eval_main([str(run), "--cfg-path", str(cfg_path), "--options", "run.max_new_tokens=6"]) == 0
    caps, m = eval_outputs(run / "eval", "pretrained")
    assert m["dataset"] == "my_set" and [c["image_id"] for c in caps] == [Path(r["image"]).stem for r in records]
    text = report(run, samples=2)
    assert records[0]["captions"][0] in text and records[1]["captions"][0] in text
