"""The model's defaults are the official code's own (stage 1: no template, a newline, 32 tokens), the
official stage-1 configs therefore train without a prompt, and no shipped or official stage-2 or
evaluation config changed meaning when the defaults moved from stage 2's to stage 1's."""

from __future__ import annotations

from pathlib import Path

import pytest

import minigpt4
from minigpt4.config.loading import load_model_config
from minigpt4.datasets.shard_writer import Pair, write_shards
from minigpt4.errors import ConfigError
from minigpt4.utils.prompt import DEFAULT_TEMPLATE as VICUNA
from minigpt4.utils.prompt import LLAMA2_TEMPLATE as LLAMA2
from tests.helpers.configs import edit_paths, tiny_model_section, write_yaml
from tests.helpers.paths import REPO

# (max_txt_len, end_sym, prompt_template) of every shipped and official config as resolved before the change
RESOLVED_BEFORE = {
    "eval_configs/minigpt4_flickr_eval.yaml": (160, "###", VICUNA),
    "eval_configs/minigpt4_flickr_quickstart_eval.yaml": (40, "###", VICUNA),
    "eval_configs/minigpt4_flickr_tiny_eval.yaml": (40, "###", VICUNA),
    "eval_configs/minigpt4_llama2_flickr_eval.yaml": (160, "</s>", LLAMA2),
    "tests/data/official_configs/minigpt4_eval.yaml": (160, "###", VICUNA),
    "tests/data/official_configs/minigpt4_llama2_eval.yaml": (160, "</s>", LLAMA2),
    "tests/data/official_configs/minigpt4_llama2_stage2_finetune.yaml": (160, "</s>", LLAMA2),
    "tests/data/official_configs/minigpt4_stage2_finetune_2023-04.yaml": (160, "###", VICUNA),
    "tests/data/seed_project/minigpt4_flickr_eval.yaml": (300, "###", VICUNA),
    "tests/data/seed_project/minigpt4_flickr_finetune.yaml": (300, "###", VICUNA),
    "train_configs/minigpt4_flickr_finetune.yaml": (300, "###", VICUNA),
    "train_configs/minigpt4_flickr_quickstart.yaml": (40, "###", VICUNA),
    "train_configs/minigpt4_flickr_tiny.yaml": (40, "###", VICUNA),
    "train_configs/minigpt4_llama2_flickr_finetune.yaml": (300, "</s>", LLAMA2),
}


def _paths(stack: dict) -> list[str]:
    return [f"model.{k}={stack[k]}" for k in ("llama_model", "vit_ckpt", "q_former_model")] + ["model.ckpt=null", "model.image_size=56"]


def test_no_shipped_or_official_config_changed_meaning(tiny_stack):
    shipped = {str(p.relative_to(REPO)) for d in ("train_configs", "eval_configs") for p in (REPO / d).glob("*.yaml")}
    assert shipped <= set(RESOLVED_BEFORE)  # a new shipped config is added to the table
    for name, expected in RESOLVED_BEFORE.items():
        m = load_model_config(REPO / name, _paths(tiny_stack))
        assert (m.max_txt_len, m.end_sym, m.prompt_template) == expected, name
        assert Path(m.prompt_path).name == "alignment.txt", name


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory) -> str:
    from PIL import Image

    root = tmp_path_factory.mktemp("s1")
    Image.new("RGB", (20, 20)).save(root / "a.jpg")
    write_shards([Pair(root / "a.jpg", "a black square")] * 3, root / "shards", per_shard=2, image_size=28, report=lambda _: None)
    return f"{root}/shards/{{00000..00001}}.tar"


@pytest.mark.parametrize(
    ("name", "model_type"), [("minigpt4_stage1_pretrain.yaml", "vicuna0"), ("minigpt4_llama2_stage1_pretrain.yaml", "llama2")]
)
def test_the_official_stage1_configs_train_without_a_prompt(tiny_stack, tiny_shards, tmp_path, name, model_type):
    paths = {f"model.{k}": tiny_stack[k] for k in ("llama_model", "vit_ckpt", "q_former_model")}
    paths |= {f"datasets.{d}.build_info.storage": tiny_shards for d in ("laion", "cc_sbu")}
    cfg = minigpt4.load_config(edit_paths(name, tmp_path, paths))
    assert cfg.model.model_type == model_type
    assert (cfg.model.max_txt_len, cfg.model.end_sym, cfg.model.prompt_template) == (32, "\n", "{}")
    assert {n: (e.sample_ratio, e.builder, e.caption_key) for n, e in cfg.datasets.items()} == {
        "laion": (115, "laion", "json.caption"),
        "cc_sbu": (14, "cc_sbu", "json.caption"),
    }
    assert (cfg.run.batch_size_train, cfg.run.iters_per_epoch, cfg.run.warmup_steps, cfg.run.task) == (
        64,
        5000,
        5000,
        "image_text_pretrain",
    )  # the captioning task under its official name


def test_a_shard_pattern_matching_no_file_is_a_config_error(tiny_stack, tmp_path):
    paths = {f"model.{k}": tiny_stack[k] for k in ("llama_model", "vit_ckpt", "q_former_model")}
    paths["datasets.laion.build_info.storage"] = str(tmp_path / "none" / "{00000..00009}.tar")
    with pytest.raises(ConfigError) as e:
        minigpt4.load_config(edit_paths("minigpt4_stage1_pretrain.yaml", tmp_path, paths))
    said = str(e.value)
    assert f"datasets.laion.build_info.storage in {tmp_path / 'minigpt4_stage1_pretrain.yaml'}: " in said
    assert "(10 name(s): " in said and "matches no usable shard (no such file)" in said
    assert "datasets.cc_sbu.build_info.storage in " in said and "cc_sbu/defaults.yaml: '/path/to/cc_sbu_dataset/{00000..01255}.tar'" in said


def test_stage1_sequence_is_bos_image_caption_newline(tiny_stack, tmp_path):
    """[BOS][image][caption + "\\n"]: no prompt text, loss on the caption and the newline only."""
    section = {k: v for k, v in tiny_model_section(tiny_stack, max_txt_len=32).items() if k not in ("end_sym", "prompt_template")}
    model = minigpt4.build_model(
        load_model_config(write_yaml(tmp_path / "m.yaml", {"custom_imports": ["minigpt4.testing"], "model": section}))
    )
    import torch

    tok = model.llama_tokenizer
    queries = model.query_tokens.shape[1]
    embeds, mask, labels = model.assemble(torch.zeros(1, queries, model.llama_proj.out_features), ["<ImageHere>"], ["a small dog"])
    caption = tok("a small dog", add_special_tokens=False).input_ids
    assert model.end_ids and tok.decode(model.end_ids) == "\n"
    assert labels[0].tolist() == [-100] * (1 + queries) + caption + model.end_ids
    assert embeds.shape[1] == 1 + queries + len(caption) + len(model.end_ids) and bool(mask.all())
