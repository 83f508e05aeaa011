"""The seed project's train and eval configs (tests/data/seed_project/, their structure with placeholder
paths): every key written differently here is one problem naming the file, the key and exactly what to
write instead, all in one error; a dataset entry is never told an evaluation-only builder, nor an
evaluation entry a training-only one."""

from __future__ import annotations

import shutil

import pytest

import minigpt4
import minigpt4.cli
from minigpt4.config import seed_project
from minigpt4.errors import ConfigError
from minigpt4.registry import DATASETS, Registry
from tests.helpers.configs import tiny_model_section, write_yaml
from tests.helpers.paths import REPO

SEED = REPO / "tests" / "data" / "seed_project"
TRAIN = SEED / "minigpt4_flickr_finetune.yaml"
EVAL = SEED / "minigpt4_flickr_eval.yaml"


def problems(path, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as e:
        minigpt4.load_config(path, **kwargs)
    return e.value.problems


def test_the_seed_train_config_is_told_its_training_entry_and_nothing_misleading():
    got = problems(TRAIN)
    assert got[0] == (
        f"datasets.flickr30k_grounded_detail in {TRAIN}: the seed project's training set; write datasets.flickr30k_caption "
        "instead, with build_info.ann_path: DIR and build_info.image_path: DIR/flickr30k-images (where DIR is the folder of "
        "flickr_annotations_30k.csv and flickr30k-images/ and holds flickr30k_train.json once `python prepare_flickr30k.py "
        "--root DIR` has written it); its batch_size, vis_processor, text_processor stay as they are. " + seed_project.TRAIN_DIFFERS
    )
    assert "glued the 5 captions" in seed_project.TRAIN_DIFFERS and "Karpathy train split" in seed_project.TRAIN_DIFFERS
    # the rest is what any config without those files hears; no builder suggestion at all
    assert got[1:] == [
        "model.llama_model: required key is missing (Local Hugging Face directory of the LLaMA/Vicuna LLM and its tokenizer.)",
        f"model.ckpt in {TRAIN}: file not found: /path/to/prerained_minigpt4_7b.pth",
    ]
    assert not any("Did you mean" in p for p in got)


def test_the_seed_eval_config_gets_each_key_with_its_replacement():
    where = f"in {EVAL}"
    entry = "evaluation_datasets.flickr30k"
    assert problems(EVAL, evaluation=True) == [
        f"{entry} {where}: the seed project's evaluation entry; write evaluation_datasets.flickr30k_eval (split: test) "
        f"instead, with the keys below. {seed_project.EVAL_DIFFERS}",
        f"{entry}.eval_file_path {where}: write evaluation_datasets.flickr30k_eval.build_info.ann_path: /path/to/flickr30k "
        "(the folder holding flickr30k_test.json, written by `python prepare_flickr30k.py --root /path/to/flickr30k` from "
        "flickr_annotations_30k.csv; not their flickr30k_grounded_detail.json, whose captions are glued)",
        f"{entry}.img_path {where}: write evaluation_datasets.flickr30k_eval.build_info.image_path: "
        "/path/to/flickr30k/flickr30k-images (the image folder, same meaning)",
        f"{entry}.max_new_tokens {where}: write run.max_new_tokens: 180 (new tokens generated per caption, same meaning)",
        f"{entry}.batch_size {where}: write run.batch_size_eval: 32 (images per generate call and process, same meaning)",
        f"run.name {where}: the seed project's name of run.job_name; write run.job_name: minigpt4_flickr_eval (the run "
        "folder's name, output_dir/job_name/<time>; an evaluation writes into RUN_DIR/eval/ and does not read it)",
        f"model.lora_r {where}: remove it. The seed project's arch minigpt4 never passed lora_r to the LLM, so its runs had "
        "no LoRA adapters and the key changed nothing; LoRA adapters here are model.lora.r (model.lora: {r: 64} in a "
        "training config; an evaluation takes model.lora from the training run's config.yaml)",
        f"model.lora_alpha {where}: remove it. The seed project's arch minigpt4 never passed lora_alpha to the LLM, so its "
        "runs had no LoRA adapters and the key changed nothing; LoRA adapters here are model.lora.alpha (model.lora: "
        "{alpha: 16} in a training config; an evaluation takes model.lora from the training run's config.yaml)",
        f"model.llama_model {where}: directory not found: /path/to/vicuna-7b",
    ]
    assert "Karpathy test split" in seed_project.EVAL_DIFFERS and "random 5%" in seed_project.EVAL_DIFFERS


def test_the_eval_config_given_to_training_also_names_its_training_entry():
    got = problems(EVAL)
    assert got[0].startswith(f"datasets.flickr30k_grounded_detail in {EVAL}: the seed project's training set;")
    assert "its vis_processor, text_processor stay as they are" in got[0]
    assert len(got) == 10


def test_options_and_known_paths_are_named_too(tmp_path):
    """A seed entry with its builder file's build_info: the paths it had, in the replacement."""
    cfg = {
        "datasets": {
            "flickr30k_grounded_detail": {
                "data_type": "images",
                "build_info": {"ann_path": "/data/f30k/flickr30k_grounded_detail.json", "image_path": "/data/f30k/images"},
            }
        },
        "run": {"name": "x"},
    }
    got = seed_project.problems(cfg, "a.yaml")
    assert "build_info.ann_path: /data/f30k and build_info.image_path: /data/f30k/images (/data/f30k holds" in got[0]
    assert "`python prepare_flickr30k.py --root /data/f30k`" in got[0] and "drop data_type (no equivalent)" in got[0]
    assert got[1].startswith("run.name in a.yaml: the seed project's name of run.job_name; write run.job_name: x ")
    assert cfg == {"datasets": {}, "run": {}}  # reported keys are not reported again by the generic checks
    opts = minigpt4.config.parse_options(["run.name=y"])
    assert seed_project.problems(opts, "--options")[0].startswith("run.name in --options:")


def test_entries_with_a_builder_and_lora_keys_outside_seed_files_are_left_alone():
    cfg = {
        "model": {"lora_r": 64},
        "evaluation_datasets": {"flickr30k": {"builder": "flickr30k_eval"}},
    }
    assert seed_project.problems(cfg, "a.yaml") == []
    assert cfg == {"model": {"lora_r": 64}, "evaluation_datasets": {"flickr30k": {"builder": "flickr30k_eval"}}}


@pytest.mark.parametrize(
    ("command", "seed", "first"),
    [
        (["train"], TRAIN, "error: invalid config (3 problems):\n  - datasets.flickr30k_grounded_detail in "),
        (["eval", "--save-path", "out"], EVAL, "error: invalid config (9 problems):\n  - evaluation_datasets.flickr30k in "),
    ],
)
def test_commands_exit_2_with_one_error_before_any_output(tmp_path, monkeypatch, capsys, command, seed, first):
    cfg = shutil.copy(seed, tmp_path / seed.name)
    monkeypatch.chdir(tmp_path)
    assert minigpt4.cli.main([command[0], "--cfg-path", str(cfg), *command[1:]]) == 2
    err = capsys.readouterr().err
    error = err[err.index("error: ") :]
    assert error.startswith(first) and "Did you mean" not in error and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [seed.name]  # no run folder, no output folder


@pytest.mark.parametrize(
    ("section", "name", "hint"),
    [
        ("datasets", "flickr30k_test", "flickr30k_caption"),  # was: flickr30k_eval, which gives no training split
        ("evaluation_datasets", "flickr30k_captions", "flickr30k_eval"),  # was: flickr30k_caption, training only
    ],
)
def test_a_dataset_entry_is_only_told_builders_that_fit_its_section(tmp_path, tiny_stack, section, name, hint):
    path = write_yaml(
        tmp_path / "c.yaml", {"custom_imports": ["minigpt4.testing"], "model": tiny_model_section(tiny_stack), section: {name: {}}}
    )
    (problem,) = problems(path, evaluation=section == "evaluation_datasets")
    assert problem.startswith(f"{section}.{name} in {path}: Unknown dataset builder '{name}'. Did you mean '{hint}'?")


def test_builders_say_which_splits_they_give():
    assert DATASETS.get("flickr30k_caption").splits() == ("train",)
    assert DATASETS.get("cc_sbu_align").splits() == ("train",)
    assert set(DATASETS.get("flickr30k_eval").splits()) == {"test", "val"}
    assert set(DATASETS.get("caption_json").splits()) == {"train", "val", "test"}


def test_registry_suggests_only_among_the_accepted_classes():
    reg = Registry("thing")
    for name, ok in (("alpha", False), ("alphb", True)):
        reg.register(name)(type(name, (), {"ok": ok}))
    with pytest.raises(KeyError, match="Did you mean 'alphb'") as e:
        reg.get("alpha_", suggest=lambda c: c.ok)
    assert "Registered things: alpha, alphb" in e.value.args[0]
    with pytest.raises(KeyError, match="Did you mean 'alpha'"):
        reg.get("alpha_")
