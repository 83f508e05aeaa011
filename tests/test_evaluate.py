"""Evaluation end to end: eval_flickr30k.py with 1 process and under torchrun with 2 (identical
captions and scores), evaluate.sh on a run folder (summary files, nothing re-evaluated), the eval
configs, and clear errors. Uses the quickstart's pre-trained stand-ins so the captions are real words."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import interrupt_when
from omegaconf import OmegaConf
from PIL import Image

from minigpt4.cli import evaluate as eval_main
from minigpt4.evaluation import METRICS, CaptionScorer, score_captions

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "eval_scripts" / "eval_flickr30k.py"
EVALUATE_SH = REPO / "evaluate.sh"
TEMPLATE = "###Human: {} ###Assistant: "
FIRST_INSTRUCTION = (REPO / "minigpt4" / "prompts" / "alignment.txt").read_text().splitlines()[0]


def _env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run(cmd: list[str], cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def _write_ckpt(path: Path, base: dict, epoch: int, scale: float) -> Path:
    """A checkpoint in the runner's format (trainable params only under "model"), near ``base``."""
    g = torch.Generator().manual_seed(epoch)
    model = {k: v + scale * torch.randn(v.shape, generator=g) for k, v in base.items()}
    torch.save({"model": model, "epoch": epoch, "global_step": 10 * (epoch + 1)}, path)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """Synthetic 112-px Flickr30k sample (10 test images), stand-ins after a short stage 1 (long enough for
    image-dependent captions), an eval config."""
    from minigpt4.datasets import flickr30k_prepare
    from minigpt4.quickstart import synthetic
    from minigpt4.quickstart.standins import model_section, train_standins

    root = tmp_path_factory.mktemp("eval_e2e")
    data = root / "data"
    synthetic.make_synthetic_flickr30k(data, 100, seed=0, image_size=112)
    flickr30k_prepare.prepare_flickr30k(data)
    paths = train_standins(data / "flickr30k_train.json", data / "flickr30k-images", root / "standins", steps=150)
    stage1 = paths["stage1_ckpt"]
    cfg = {
        "custom_imports": ["minigpt4.quickstart"],
        "model": model_section(paths, ckpt=stage1),
        "evaluation_datasets": {"flickr30k_eval": {
            "build_info": {"ann_path": str(data), "image_path": str(data / "flickr30k-images")},
            "vis_processor": {"eval": {"name": "blip2_image_eval", "image_size": 112}}}},
        "run": {"device": "cpu", "batch_size_eval": 4, "max_new_tokens": 16, "num_workers": 0},
    }
    cfg_path = root / "eval.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    base = torch.load(stage1, weights_only=True)["model"]
    base = {k: v for k, v in base.items() if k.startswith("llama_proj.")}
    return {"root": root, "data": data, "cfg": cfg_path, "cfg_dict": cfg, "base": base}


def _outputs(save: Path, name: str) -> tuple[list, dict]:
    return (json.loads((save / name / "captions.json").read_text()),
            json.loads((save / name / "metrics.json").read_text()))


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
def test_one_and_two_processes_give_identical_results(setup, tmp_path):
    """Two checkpoints in one job; 10 test images in batches of 3 (the last one short)."""
    ckpt = _write_ckpt(tmp_path / "checkpoint_1.pth", setup["base"], 1, 0.01)
    args = ["--cfg-path", setup["cfg"], "--ckpt", "pretrained", "--ckpt", ckpt, "--options", "run.batch_size_eval=3"]
    _run([sys.executable, SCRIPT, "--save-path", tmp_path / "one", *args])
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", SCRIPT,
          "--save-path", tmp_path / "two", *args])

    test_split = json.loads((setup["data"] / "flickr30k_test.json").read_text())
    refs = {r["image_id"]: r["captions"] for r in test_split}
    scorer = CaptionScorer()
    for name, epoch in (("pretrained", -1), ("checkpoint_1", 1)):
        caps1, m1 = _outputs(tmp_path / "one", name)
        caps2, m2 = _outputs(tmp_path / "two", name)
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
    scorer.close()
    assert _outputs(tmp_path / "one", "pretrained")[1]["checkpoint_file"] == setup["cfg_dict"]["model"]["ckpt"]


@pytest.mark.slow
def test_evaluate_sh_on_a_run_folder(setup, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for epoch in (0, 1):
        _write_ckpt(run / f"checkpoint_{epoch}.pth", setup["base"], epoch, 0.01)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": setup["cfg_dict"]["model"]}))

    first = _run(["bash", EVALUATE_SH, run, "--cfg-path", setup["cfg"], "--options", "run.max_new_tokens=12"])
    log = first.stdout + first.stderr
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
    second = _run(["bash", EVALUATE_SH, run, "--cfg-path", setup["cfg"], "--options", "run.max_new_tokens=12"])
    assert "evaluating" not in second.stdout + second.stderr and "up to date (same fingerprint)" in second.stdout
    assert {p: p.stat().st_mtime_ns for p in eval_dir.glob("*/*.json")} == stamps

    # a new checkpoint: only it is evaluated (here with torchrun), and epoch 10 sorts after epoch 1
    _write_ckpt(run / "checkpoint_10.pth", setup["base"], 10, 0.01)
    third = _run(["bash", EVALUATE_SH, run, "--cfg-path", setup["cfg"], "--options", "run.max_new_tokens=12",
                  "--nproc", "2"])  # evaluate.sh's own flag after --options
    assert "evaluating 1 checkpoint(s)" in third.stdout + third.stderr
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((eval_dir / "checkpoint_10" / "metrics.json").read_text())["world_size"] == 2
    csv = (eval_dir / "summary.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in csv[1:]] == ["pretrained", "checkpoint_0", "checkpoint_1", "checkpoint_10"]

    report = _run([sys.executable, "-m", "minigpt4.quickstart.report", run, "--samples", "2"]).stdout
    first_image = json.loads((setup["data"] / "flickr30k_test.json").read_text())[0]
    assert first_image["captions"][0] in report and "checkpoint_10" in report and "summary.png" in report

    # flags after --options are evaluate.sh's and the script's own: --limit 4 goes to eval_limit4/
    limited = _run(["bash", EVALUATE_SH, run, "--cfg-path", setup["cfg"], "--options", "run.max_new_tokens=12",
                    "--limit", "4"])
    assert "evaluating 4 checkpoint(s) on 4 test images" in limited.stdout
    assert json.loads((run / "eval_limit4" / "checkpoint_0" / "metrics.json").read_text())["limit"] == 4
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # the full-split results are untouched

    # a changed setting re-evaluates everything it affects, says why, and keeps the old results aside
    changed = _run(["bash", EVALUATE_SH, run, "--cfg-path", setup["cfg"], "--options", "run.max_new_tokens=5"])
    log = changed.stdout
    assert "4 to evaluate" in log and "checkpoint_1: settings changed: generation.max_new_tokens: 12 -> 5" in log
    for name in ("pretrained", "checkpoint_0", "checkpoint_1", "checkpoint_10"):
        m = json.loads((eval_dir / name / "metrics.json").read_text())
        assert m["generation"]["max_new_tokens"] == 5
        (aside,) = (eval_dir / name).glob("replaced-*")
        assert json.loads((aside / "metrics.json").read_text())["generation"]["max_new_tokens"] == 12
        assert (aside / "captions.json").is_file()
    assert [r.split(",")[0] for r in (eval_dir / "summary.csv").read_text().splitlines()[1:]] == [
        "pretrained", "checkpoint_0", "checkpoint_1", "checkpoint_10"]


@pytest.mark.slow
def test_limit(tiny_root, tmp_path, monkeypatch):
    """The tiny config as documented (run from a folder holding cache/), scoring only 4 of 10 images."""
    monkeypatch.chdir(tiny_root)
    assert eval_main(["--cfg-path", str(REPO / "eval_configs" / "minigpt4_flickr_tiny_eval.yaml"),
                      "--save-path", str(tmp_path), "--limit", "4"]) == 0
    caps, m = _outputs(tmp_path, "pretrained")
    assert len(caps) == 4 and m["num_images"] == 4 and m["limit"] == 4 and m["split_size"] == 10
    assert "not comparable with the full split" in m["limit_note"]
    assert m["checkpoint_file"] is None and "fresh llama_proj" in m["checkpoint_note"]  # model.ckpt: null
    assert m["config"]["model"]["model_type"] == "tiny"
    # a limit larger than the split is the full split: scored and labelled as such
    assert eval_main(["--cfg-path", str(REPO / "eval_configs" / "minigpt4_flickr_tiny_eval.yaml"),
                      "--save-path", str(tmp_path / "all"), "--limit", "5000"]) == 0
    caps, m = _outputs(tmp_path / "all", "pretrained")
    assert len(caps) == 10 and m["limit"] is None and m["limit_note"] is None


def _fail(args: list[str], capsys) -> str:
    assert eval_main([str(a) for a in args]) == 2
    return capsys.readouterr().err


def test_config_and_options_are_checked_even_with_nothing_pending(setup, tmp_path, capsys):
    """A typo'd --options key or a missing config file is an error although every result is up to date
    (the job used to print "0 to evaluate" and exit 0)."""
    run = tmp_path / "run"
    run.mkdir()
    err = _fail([run, "--cfg-path", setup["cfg"], "--options", "run.max_new_tokenz=5"], capsys)
    assert "run.max_new_tokenz in --options: unknown key" in err and "max_new_tokens" in err
    err = _fail([run, "--cfg-path", tmp_path / "nope.yaml"], capsys)
    assert "nope.yaml: config file not found" in err


def test_wrong_model_is_an_error_before_anything_is_generated(setup, tmp_path, capsys, monkeypatch):
    """An eval config whose model differs from the run's config.yaml stops before the model is built;
    --allow-model-mismatch evaluates and records it; the corrected rerun re-evaluates that baseline."""
    from minigpt4.models.minigpt4 import MiniGPT4

    run = tmp_path / "run"
    run.mkdir()
    _write_ckpt(run / "checkpoint_0.pth", setup["base"], 0, 0.01)
    other_ckpt = _write_ckpt(tmp_path / "other_start.pth", setup["base"], 5, 0.5)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {**setup["cfg_dict"]["model"], "ckpt": str(other_ckpt)}}))
    built = []
    real_build = MiniGPT4.from_config.__func__
    monkeypatch.setattr(MiniGPT4, "from_config", classmethod(lambda cls, *a, **k: built.append(1) or real_build(cls, *a, **k)))
    err = _fail([run, "--cfg-path", setup["cfg"]], capsys)
    assert f"the eval config's model differs from the training run's {run / 'config.yaml'}" in err
    assert f"model.ckpt: training '{other_ckpt}', evaluation '{setup['cfg_dict']['model']['ckpt']}'" in err
    assert "--allow-model-mismatch" in err and not built and not (run / "eval").exists()

    opts = ["--limit", "2", "--options", "run.max_new_tokens=4"]
    assert eval_main([str(run), "--cfg-path", str(setup["cfg"]), "--allow-model-mismatch", *opts]) == 0
    m = json.loads((run / "eval_limit2" / "pretrained" / "metrics.json").read_text())
    assert m["model_mismatch"]["allowed"] is True and "model.ckpt" in m["model_mismatch"]["differences"][0]
    # the corrected eval config (the run's own starting point) re-evaluates the baseline, and says why
    capsys.readouterr()
    assert eval_main([str(run), "--cfg-path", str(setup["cfg"]), *opts, f"model.ckpt={other_ckpt}"]) == 0
    out = capsys.readouterr().out
    assert "pretrained: settings changed: checkpoint.sha256" in out and "checkpoint_0: up to date" in out
    m = json.loads((run / "eval_limit2" / "pretrained" / "metrics.json").read_text())
    assert m["model_mismatch"] is None and m["checkpoint_file"] == str(other_ckpt)


def test_unreadable_checkpoint_is_named_before_any_work(setup, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint_0.pth").write_text("hello, not weights\n")
    err = _fail([run, "--cfg-path", setup["cfg"]], capsys)
    assert f"cannot load {run / 'checkpoint_0.pth'}: not a PyTorch checkpoint: it is a text file" in err
    assert not (run / "eval").exists()


def test_duplicate_image_ids_are_found_before_the_model_is_built(setup, tmp_path, capsys, monkeypatch):
    """A COCO-style file (one record per caption) fails from the annotations alone."""
    from minigpt4.models.minigpt4 import MiniGPT4

    monkeypatch.setattr(MiniGPT4, "from_config", classmethod(lambda cls, *a, **k: pytest.fail("model was built")))
    rec = json.loads((setup["data"] / "flickr30k_test.json").read_text())[:2]
    coco = [{"image": r["image"], "image_id": r["image_id"], "caption": c} for r in rec for c in r["captions"][:2]]
    ann = tmp_path / "coco_style.json"
    ann.write_text(json.dumps(coco))
    entry = "evaluation_datasets.flickr30k_eval"
    err = _fail(["--cfg-path", setup["cfg"], "--save-path", tmp_path / "out", "--options",
                 f"{entry}.build_info.ann_path={ann}"], capsys)
    assert f"{ann}: item 0: key 'captions' (captions_key) is missing; the item has keys ['caption', 'image', 'image_id']" in err
    cfg = {**setup["cfg_dict"], "evaluation_datasets": {"coco": {
        "builder": "caption_json", "split": "test", "captions_key": "caption", "image_id_key": "image_id",
        "build_info": {"ann_path": str(ann), "image_path": str(setup["data"] / "flickr30k-images")},
        "vis_processor": {"eval": {"name": "blip2_image_eval", "image_size": 112}}}}}
    cfg_path = tmp_path / "coco.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    err = _fail(["--cfg-path", cfg_path, "--save-path", tmp_path / "out"], capsys)
    assert f"evaluation_datasets.coco ({ann}): image_id '{rec[0]['image_id']}' appears twice (items 0 and 1" in err
    assert "one record per image" in err and not (tmp_path / "out").exists()


def test_missing_checkpoint(setup, tmp_path, capsys):
    err = _fail(["--cfg-path", setup["cfg"], "--ckpt", tmp_path / "checkpoint_3.pth", "--save-path", tmp_path], capsys)
    assert "checkpoint_3.pth: checkpoint file not found" in err
    assert not list(tmp_path.iterdir())


def test_two_checkpoints_with_one_name(setup, tmp_path, capsys):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        _write_ckpt(tmp_path / d / "checkpoint_0.pth", setup["base"], 0, 0.0)
    err = _fail(["--cfg-path", setup["cfg"], "--ckpt", tmp_path / "a" / "checkpoint_0.pth",
                 "--ckpt", tmp_path / "b" / "checkpoint_0.pth", "--save-path", tmp_path / "out"], capsys)
    assert "would both write to <save-path>/checkpoint_0/" in err


def test_empty_split(setup, tmp_path, capsys):
    (tmp_path / "flickr30k_test.json").write_text("[]")
    err = _fail(["--cfg-path", setup["cfg"], "--save-path", tmp_path / "out", "--options",
                 f"evaluation_datasets.flickr30k_eval.build_info.ann_path={tmp_path / 'flickr30k_test.json'}"], capsys)
    assert "flickr30k_test.json" in err and "empty" in err
    assert not (tmp_path / "out").exists()


def test_missing_java(setup, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    err = _fail(["--cfg-path", setup["cfg"], "--save-path", tmp_path / "out"], capsys)
    assert "`java` was not found on PATH" in err
    assert not (tmp_path / "out").exists()


def test_bad_eval_instruction(setup, tmp_path, capsys):
    err = _fail(["--cfg-path", setup["cfg"], "--save-path", tmp_path / "out", "--options",
                 "run.eval_instruction=Describe the picture."], capsys)
    assert "run.eval_instruction" in err and "<ImageHere>" in err


@pytest.mark.slow
def test_unreadable_image(setup, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(setup["data"], data)
    victim = json.loads((data / "flickr30k_test.json").read_text())[4]["image"]
    (data / "flickr30k-images" / victim).write_bytes(b"not a jpeg")
    err = _fail(["--cfg-path", setup["cfg"], "--save-path", tmp_path / "out", "--options",
                 f"evaluation_datasets.flickr30k_eval.build_info.ann_path={data}",
                 f"evaluation_datasets.flickr30k_eval.build_info.image_path={data / 'flickr30k-images'}"], capsys)
    assert f"cannot load image {data / 'flickr30k-images' / victim}" in err
    assert "does not skip unreadable" in err
    assert not (tmp_path / "out" / "pretrained" / "metrics.json").exists()


def test_eval_configs_are_valid(setup, tmp_path):
    """The shipped eval configs pass validation once their paths exist (as a user or quickstart.sh sets them)."""
    from minigpt4 import load_config
    from minigpt4.evaluation.job import training_mismatches

    model = setup["cfg_dict"]["model"]
    data = setup["data"]
    real = REPO / "eval_configs" / "minigpt4_flickr_eval.yaml"
    assert real.read_text().count("# EDIT") == 6
    ckpt = _write_ckpt(tmp_path / "pretrained.pth", setup["base"], 0, 0.0)
    cfg = load_config(real, [f"model.llama_model={model['llama_model']}", f"model.vit_ckpt={model['vit_ckpt']}",
                             f"model.q_former_model={model['q_former_model']}", f"model.ckpt={ckpt}",
                             f"evaluation_datasets.flickr30k_eval.build_info.ann_path={data}",
                             f"evaluation_datasets.flickr30k_eval.build_info.image_path={data / 'flickr30k-images'}"])
    assert cfg.model.model_type == "vicuna0" and cfg.model.image_size == 224 and cfg.run.num_beams == 1
    assert cfg.model.prompt_template == TEMPLATE and cfg.model.end_sym == "###"
    assert cfg.evaluation_datasets.flickr30k_eval.vis_processor.eval.image_size == 224

    quick = load_config(REPO / "eval_configs" / "minigpt4_flickr_quickstart_eval.yaml", [
        f"model.llama_model={model['llama_model']}", f"model.vit_ckpt={model['vit_ckpt']}",
        f"model.q_former_model={model['q_former_model']}",
        f"evaluation_datasets.flickr30k_eval.build_info.ann_path={data / 'flickr30k_test.json'}",
        f"evaluation_datasets.flickr30k_eval.build_info.image_path={data / 'flickr30k-images'}"])
    assert quick.model.model_type == "standin" and quick.model.ckpt is None
    assert quick.evaluation_datasets.flickr30k_eval.vis_processor.eval.image_size == quick.model.image_size

    # a run trained with another LLM is reported
    train_cfg = tmp_path / "config.yaml"
    trained = {**OmegaConf.to_container(quick.model), "llama_model": "/elsewhere/llama", "max_txt_len": 7}
    train_cfg.write_text(yaml.safe_dump({"model": trained, "run": {"seed": 7}}))
    problems = training_mismatches(quick, train_cfg)
    assert len(problems) == 1 and "model.llama_model" in problems[0] and "/elsewhere/llama" in problems[0]


def test_split_option_with_an_annotation_file(setup, tmp_path, capsys):
    """--split val with ann_path = the test file used to score the test images and label them "val"."""
    test_file = setup["data"] / "flickr30k_test.json"
    err = _fail(["--cfg-path", setup["cfg"], "--save-path", tmp_path / "out", "--split", "val", "--options",
                 f"evaluation_datasets.flickr30k_eval.build_info.ann_path={test_file}"], capsys)
    assert "--split val: evaluation_datasets.flickr30k_eval is the 'test' split of the file" in err
    assert str(test_file) in err and not (tmp_path / "out").exists()
    # with the folder of per-split files, --split picks the file
    from minigpt4 import load_config
    from minigpt4.tasks.captioning import ImageTextPretrainTask

    cfg = load_config(setup["cfg"])
    val, _, split = ImageTextPretrainTask().build_eval_split(cfg, "val")
    val_ids = [r["image_id"] for r in json.loads((setup["data"] / "flickr30k_val.json").read_text())]
    assert split == "val" and [val[i]["image_id"] for i in range(len(val))] == val_ids


@pytest.mark.slow
def test_caption_json_test_set_without_image_ids_reports(setup, tmp_path):
    """A caption_json test set whose records have no image_id (ids = file stems): the job scores it and
    the report shows each image's references (it used to re-read the annotations with image_id
    required, and failed with a DataError)."""
    from minigpt4.quickstart.report import report

    records = json.loads((setup["data"] / "flickr30k_test.json").read_text())[:3]
    ann = tmp_path / "my_test.json"
    ann.write_text(json.dumps([{"image": r["image"], "captions": r["captions"]} for r in records]))
    cfg = {**setup["cfg_dict"], "evaluation_datasets": {"my_set": {
        "builder": "caption_json", "split": "test",
        "build_info": {"ann_path": str(ann), "image_path": str(setup["data"] / "flickr30k-images")},
        "vis_processor": {"eval": {"name": "blip2_image_eval", "image_size": 112}}}}}
    cfg_path = tmp_path / "eval.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    run = tmp_path / "run"
    run.mkdir()
    assert eval_main([str(run), "--cfg-path", str(cfg_path), "--options", "run.max_new_tokens=6"]) == 0
    caps, m = _outputs(run / "eval", "pretrained")
    assert m["dataset"] == "my_set" and [c["image_id"] for c in caps] == [Path(r["image"]).stem for r in records]
    text = report(run, samples=2)
    assert records[0]["captions"][0] in text and records[1]["captions"][0] in text


@pytest.mark.slow
def test_ctrl_c_during_evaluation_keeps_finished_results(setup, tmp_path):
    """SIGINT after the first result: exit 130, no traceback, the finished result is kept and named;
    under evaluate.sh --nproc 2 a SIGTERM to the launcher: exit 143 from every process; the rerun
    evaluates only the rest."""
    import re
    import signal

    run = tmp_path / "run"
    run.mkdir()
    for epoch in (0, 1):
        _write_ckpt(run / f"checkpoint_{epoch}.pth", setup["base"], epoch, 0.01)
    cmd = [sys.executable, "-m", "minigpt4.cli", "eval", str(run), "--cfg-path", str(setup["cfg"]), "--options",
           "run.max_new_tokens=6"]
    rc, text, _ = interrupt_when(cmd, tmp_path / "log.txt", r"pretrained: Bleu_1 .* -> ", signal.SIGINT, _env(),
                                 timeout=240)
    assert rc == 130 and "Traceback" not in text, text[-3000:]
    assert re.search(r"Interrupted by SIGINT; finished results are kept \(pretrained(, checkpoint_0)?\); rerun the same "
                     r"command to evaluate the rest", text), text[-2000:]
    assert (run / "eval" / "pretrained" / "metrics.json").is_file()
    assert not list((run / "eval").rglob(".*"))  # no temporary files
    # the same under evaluate.sh --nproc 2 (minigpt4-torchrun) with a scheduler's SIGTERM to the launcher
    shutil.rmtree(run / "eval")
    sh = ["bash", EVALUATE_SH, run, "--cfg-path", setup["cfg"], "--nproc", "2", "--options", "run.max_new_tokens=6"]
    rc, text, seconds = interrupt_when(sh, tmp_path / "log2.txt", r"pretrained: Bleu_1 .* -> ", signal.SIGTERM, _env(),
                                       timeout=240)
    assert rc == 143 and "Traceback" not in text and "forcefully" not in text and seconds < 20, text[-3000:]
    assert "Interrupted by SIGTERM; finished results are kept (pretrained" in text and text.count("Interrupted by") == 1
    assert "torchrun: stopped by SIGTERM" in text and (run / "eval" / "pretrained" / "metrics.json").is_file()
    again = _run(cmd)
    assert "pretrained: up to date" in again.stdout and not (run / "eval" / "pretrained" / "replaced").exists()
