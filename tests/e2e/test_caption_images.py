"""minigpt4-caption: the captions of image files are the evaluation's for the same config and checkpoint
(compared with the evaluation job's captions.json), one ``path<TAB>caption`` line each on stdout; --json;
unreadable images named and skipped (exit 1); a LoRA checkpoint's settings from the config.yaml next to it;
a bad checkpoint or config is an error (exit 2). The tiny Llama-2 variant: its image tokens are ViT patches,
so even the random stack's captions differ between the two photos and a mix-up would show."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from minigpt4.cli import caption
from minigpt4.cli import evaluate as eval_main
from minigpt4.cli import main as cli_main
from minigpt4.datasets.caption_datasets import open_image
from minigpt4.evaluation import caption_images
from minigpt4.processors.base import create_processor
from tests.helpers.configs import tiny_model_section, write_yaml
from tests.helpers.evaluation import adapted_lora_checkpoint, write_ckpt
from tests.helpers.paths import REPO
from tests.helpers.processes import subprocess_env

PHOTOS = [REPO / "tests" / "data" / "flickr_1000268201.jpg", REPO / "tests" / "data" / "flickr_1002674143.jpg"]
LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
FIRST_INSTRUCTION = (REPO / "minigpt4" / "prompts" / "alignment.txt").read_text().splitlines()[0]
MAX_NEW_TOKENS = 8


@pytest.fixture(scope="module")
def setup(tiny_llama2_stack, tmp_path_factory) -> dict:
    """The two photos in a folder, a 2-image annotation file of them, an eval config (batches of 2, a
    feature cache) and a checkpoint near the stack's projection."""
    root = tmp_path_factory.mktemp("caption_images")
    photos = root / "photos"
    photos.mkdir()
    for p in PHOTOS:
        shutil.copy(p, photos / p.name)
    (photos / "notes.txt").write_text("not an image: a folder gives only its image files")
    ann = root / "ann.json"
    ann.write_text(json.dumps([{"image": p.name, "image_id": p.stem, "captions": ["a photo"]} for p in PHOTOS]))
    model = tiny_model_section(tiny_llama2_stack, model_type="tiny_llama2")
    cfg = write_yaml(
        root / "eval.yaml",
        {
            "custom_imports": ["minigpt4.testing"],
            "model": model,
            "evaluation_datasets": {
                "flickr30k_eval": {
                    "build_info": {"ann_path": str(ann), "image_path": str(photos)},
                    "vis_processor": {"eval": {"name": "blip2_image_eval", "image_size": 56}},
                }
            },
            "run": {
                "device": "cpu",
                "batch_size_eval": 2,
                "max_new_tokens": MAX_NEW_TOKENS,
                "num_workers": 0,
                "feature_cache": str(root / "feature_cache"),
            },
        },
    )
    base = {k: v for k, v in torch.load(tiny_llama2_stack["ckpt"], weights_only=True)["model"].items() if k.startswith("llama_proj.")}
    ckpt = write_ckpt(root / "checkpoint_1.pth", base, 1, 0.05)
    return {"root": root, "photos": photos, "cfg": cfg, "ckpt": ckpt, "model": model}


def _lines(out: str) -> list[tuple[str, str]]:
    return [tuple(line.split("\t")) for line in out.splitlines()]


def test_the_captions_are_the_evaluations_one_line_per_image_in_order(setup, capsys):
    save = setup["root"] / "eval"
    assert eval_main(["--cfg-path", str(setup["cfg"]), "--ckpt", str(setup["ckpt"]), "--save-path", str(save)]) == 0
    evaluated = json.loads((save / "checkpoint_1" / "captions.json").read_text())
    assert [c["image"] for c in evaluated] == [p.name for p in PHOTOS]
    expected = [c["caption"] for c in evaluated]
    assert len(set(expected)) == 2 and all(expected)  # image-dependent: a mix-up would show
    assert all(caption_images.tsv_field(c) == c for c in expected)  # (else the TSV lines would differ)
    capsys.readouterr()

    files = [str(setup["photos"] / p.name) for p in PHOTOS]
    assert caption(["--cfg-path", str(setup["cfg"]), "--ckpt", str(setup["ckpt"]), *files]) == 0
    out, err = capsys.readouterr()
    assert _lines(out) == list(zip(files, expected))
    assert f"checkpoint: {setup['ckpt']}" in err and "captioning 2 image(s) on cpu in batches of 2" in err
    assert "encoding" in err and "error" not in err and "warning" not in err

    # a folder: its image files, sorted (notes.txt left out); --json writes the same captions
    out_json = setup["root"] / "captions.json"
    assert caption(["--cfg-path", str(setup["cfg"]), "--ckpt", str(setup["ckpt"]), "--json", str(out_json), str(setup["photos"])]) == 0
    out, err = capsys.readouterr()
    assert _lines(out) == list(zip(files, expected))
    assert json.loads(out_json.read_text()) == [{"image": f, "caption": c} for f, c in zip(files, expected)]
    assert f"wrote 2 caption(s) to {out_json}" in err


def test_unreadable_images_are_named_on_stderr_and_skipped_with_exit_status_1(setup, tmp_path):
    """The installed script; the default checkpoint is model.ckpt (here null: said on stderr)."""
    not_an_image = tmp_path / "x.jpg"
    not_an_image.write_text("not a JPEG")
    missing = tmp_path / "missing.jpg"
    empty = tmp_path / "empty"
    empty.mkdir()
    script = shutil.which("minigpt4-caption")
    assert script, "minigpt4-caption is not installed: pip install -e ."
    proc = subprocess.run(
        [
            script,
            "--cfg-path",
            str(setup["cfg"]),
            str(not_an_image),
            str(PHOTOS[0]),
            str(missing),
            str(empty),
            "--options",
            "model.ckpt=null",
        ],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    (line,) = proc.stdout.splitlines()
    assert line.startswith(f"{PHOTOS[0]}\t") and len(line) > len(f"{PHOTOS[0]}\t")
    warnings = [w for w in proc.stderr.splitlines() if w.startswith("warning: ")]
    assert [w.split(": ")[1].removeprefix("cannot read ") for w in warnings] == [str(not_an_image), str(missing), str(empty)]
    assert warnings[0].startswith(f"warning: cannot read {not_an_image}: UnidentifiedImageError: ")
    assert warnings[1] == f"warning: cannot read {missing}: no such file or directory"
    assert "checkpoint: none (model.ckpt is null)" in proc.stderr and "3 image path(s) skipped" in proc.stderr
    assert "Traceback" not in proc.stderr


def _lora_checkpoint(model_section: dict, run_dir: Path) -> tuple[torch.nn.Module, Path]:
    """A LoRA run's config.yaml and a checkpoint of moved adapters and projection in ``run_dir``."""
    run_dir.mkdir()
    ckpt = run_dir / "checkpoint_3.pth"
    return adapted_lora_checkpoint({**model_section, "lora": LORA}, run_dir / "config.yaml", ckpt), ckpt


def test_a_lora_checkpoint_takes_the_adapter_settings_of_the_config_yaml_next_to_it(setup, tmp_path, capsys):
    adapted, ckpt = _lora_checkpoint(setup["model"], tmp_path / "run")
    alone = tmp_path / "checkpoint_3.pth"  # the same file without its run's config.yaml
    shutil.copy(ckpt, alone)
    assert caption(["--cfg-path", str(setup["cfg"]), "--ckpt", str(alone), str(PHOTOS[0])]) == 2
    assert (
        f"error: {alone}: the checkpoint holds LoRA adapters (r=4 on q_proj, v_proj), the config has no model.lora "
        "and there is no config.yaml next to it"
    ) in capsys.readouterr().err

    assert caption(["--cfg-path", str(setup["cfg"]), "--ckpt", str(ckpt), *map(str, PHOTOS)]) == 0
    out, err = capsys.readouterr()
    assert "model.lora: the run trained LoRA adapters (r 4, alpha 8" in err
    vis = create_processor({"name": "blip2_image_eval", "image_size": 56})
    images = torch.stack([vis(open_image(p)) for p in PHOTOS])
    expected = adapted.generate(images, [FIRST_INSTRUCTION] * 2, MAX_NEW_TOKENS)
    assert _lines(out) == [(str(p), caption_images.tsv_field(c)) for p, c in zip(PHOTOS, expected)]


def test_a_bad_checkpoint_or_config_is_an_error_with_exit_status_2(setup, tmp_path, capsys):
    nope = tmp_path / "nope.pth"
    assert caption(["--cfg-path", str(setup["cfg"]), "--ckpt", str(nope), str(PHOTOS[0])]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: --ckpt {nope}: checkpoint file not found"
    text = tmp_path / "text.pth"
    text.write_text("not a checkpoint")
    assert cli_main(["caption", "--cfg-path", str(setup["cfg"]), "--ckpt", str(text), str(PHOTOS[0])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(text) in err and "Traceback" not in err
    assert caption(["--cfg-path", str(tmp_path / "none.yaml"), str(PHOTOS[0])]) == 2
    assert f"{tmp_path / 'none.yaml'}: config file not found" in capsys.readouterr().err
    assert caption(["--cfg-path", str(setup["cfg"]), "--json", str(tmp_path / "no" / "c.json"), str(PHOTOS[0])]) == 2
    assert "its folder does not exist" in capsys.readouterr().err


def test_a_caption_stays_on_its_tsv_line():
    assert caption_images.tsv_field("a\tred\nsquare\r\x0bon top ") == "a red square  on top "
