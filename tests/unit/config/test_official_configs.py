"""Official names and config files: aliases become the canonical names, official keys that have no
effect are reported by name with the reason, mapped keys are mapped, anything else still fails; the
README's checkpoint table is the code's."""

import logging
import re
from pathlib import Path

import pytest

import minigpt4
from minigpt4.errors import ConfigError
from minigpt4.models.variants import OFFICIAL_CHECKPOINTS
from tests.helpers.configs import edit_paths, tiny_model_section, write_yaml
from tests.helpers.paths import REPO


def stack_paths(stack: dict, storage: Path | None = None) -> dict[str, str]:
    paths = {"model.llama_model": stack["llama_model"], "model.vit_ckpt": stack["vit_ckpt"], "model.ckpt": stack["ckpt"]}
    if storage is not None:
        paths["datasets.cc_sbu_align.build_info.storage"] = str(storage)
    return paths


def notes(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "minigpt4.config.loading")


def test_official_train_configs_load_with_names_mapped_and_ignored_keys_reported(tiny_stack, tmp_path, caplog):
    storage = tmp_path / "cc_sbu_align"
    storage.mkdir()
    with caplog.at_level(logging.INFO, logger="minigpt4"):
        old = minigpt4.load_config(
            edit_paths(
                "minigpt4_stage2_finetune_2023-04.yaml",
                tmp_path,
                {**stack_paths(tiny_stack, storage), "model.q_former_model": tiny_stack["q_former_model"]},
            )
        )
    said = notes(caplog)
    assert old.model.arch == "minigpt4" and old.model.model_type == "vicuna0" and old.model.has_qformer
    assert "model.arch in" in said and "'mini_gpt4' is the official name of 'minigpt4'" in said
    assert "'pretrain_vicuna' is the official name of 'vicuna0'" in said
    for key in (
        "run.evaluate",
        "run.train_splits",
        "run.world_size",
        "run.dist_url",
        "run.distributed",
        "datasets.cc_sbu_align.text_processor",
    ):
        assert re.search(rf"{re.escape(key)} in .*: ignored: \S", said), key
        assert key.split(".")[-1] not in (old.run if key.startswith("run.") else old.datasets.cc_sbu_align)
    assert old.run.batch_size_train == 12 and old.run.batch_size_eval == 12 and old.datasets.cc_sbu_align.builder == "cc_sbu_align"

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="minigpt4"):
        new = minigpt4.load_config(edit_paths("minigpt4_llama2_stage2_finetune.yaml", tmp_path, stack_paths(tiny_stack, storage)))
    said = notes(caplog)
    m = new.model
    assert (m.model_type, m.has_qformer, m.end_sym, m.prompt_template) == ("llama2", False, "</s>", "[INST] {} [/INST] ")
    assert new.run.batch_size_train == 12 and "batch_size" not in new.datasets.cc_sbu_align
    assert "datasets.cc_sbu_align.batch_size = 12" in said and "used as run.batch_size_train" in said
    assert new.run.wandb_log is True and "run.wandb_log" not in said  # honoured, as in the official code
    assert new.run.job_name == "minigpt4_llama2_finetune"


def test_official_eval_configs_load_without_their_datasets(tiny_stack, tmp_path, caplog):
    for name, model_type in (("minigpt4_eval.yaml", "vicuna0"), ("minigpt4_llama2_eval.yaml", "llama2")):
        path = edit_paths(name, tmp_path, {**stack_paths(tiny_stack), "model.q_former_model": tiny_stack["q_former_model"]})
        caplog.clear()
        with (
            caplog.at_level(logging.INFO, logger="minigpt4"),
            pytest.raises(
                ConfigError,
                match=r"evaluation_datasets\.flickr30k_eval\.build_info\.ann_path in \S+flickr30k/eval\.yaml: "
                "path not found: data/flickr30k",
            ),
        ):
            minigpt4.load_config(path, evaluation=True)  # the default Flickr30k files are not here
        assert "has no evaluation_datasets: scoring flickr30k_eval with its defaults" in notes(caplog)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="minigpt4"):
            cfg = minigpt4.load_config(
                path,
                [
                    f"evaluation_datasets.flickr30k_eval.build_info.ann_path={tmp_path}",
                    f"evaluation_datasets.flickr30k_eval.build_info.image_path={tmp_path}",
                ],
                evaluation=True,
            )
        said = notes(caplog)
        assert cfg.model.model_type == model_type and cfg.model.low_resource and not cfg.datasets
        assert "datasets in" in said and "not used by the evaluation" in said
        assert list(cfg.evaluation_datasets) == ["flickr30k_eval"]


def _load(tmp_path, model=None, **sections):
    return minigpt4.load_config(write_yaml(tmp_path / "c.yaml", {"model": model, **sections}))


def test_ignored_keys_are_dropped_and_unsupported_values_still_fail(tiny_stack, tmp_path, caplog):
    model = tiny_model_section(tiny_stack, lora_r=64, lora_alpha=16, prompt="", vit_model="eva_clip_g", drop_path_rate=0)
    with caplog.at_level(logging.WARNING, logger="minigpt4"):
        cfg = _load(tmp_path, model)
    for key in ("lora_r", "lora_alpha", "prompt", "vit_model", "drop_path_rate"):
        assert key not in cfg.model and f"model.{key} in " in caplog.text
    assert "read by MiniGPT-v2 only" in caplog.text
    bad = tiny_model_section(tiny_stack, vit_model="eva_vit_l", drop_path_rate=0.1)
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, bad, run={"evaluate": True, "dist_url": "tcp://10.0.0.1:23456", "train_splits": ["val"], "lora_rank": 8})
    msg = str(e.value)
    for expected in (
        r"model\.vit_model in .*only 'eva_clip_g' is supported here, got 'eva_vit_l'",
        r"model\.drop_path_rate in .*got 0\.1",
        r"run\.evaluate in .*only False",
        r"run\.dist_url in .*env://",
        r"run\.train_splits in .*\['train'\]",
        r"run\.lora_rank in .*unknown key",
    ):
        assert re.search(expected, msg), expected


def test_unknown_model_type_lists_the_official_names_and_urls_are_refused(tiny_stack, tmp_path):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, tiny_model_section(tiny_stack, model_type="pretrain_vicuna13b"))
    assert "pretrain_llama2 (= llama2)" in str(e.value) and "pretrain_vicuna0 (= vicuna0)" in str(e.value)
    url = "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/BLIP2/blip2_pretrained_flant5xxl.pth"
    with pytest.raises(ConfigError, match="is a URL: nothing is downloaded here"):
        _load(tmp_path, tiny_model_section(tiny_stack, q_former_model=url))


def test_per_dataset_batch_sizes_must_agree(tiny_stack, tmp_path):
    def entry(batch):
        return {
            "builder": "flickr30k_caption",
            "batch_size": batch,
            "build_info": {"ann_path": str(tmp_path), "image_path": str(tmp_path)},
            "vis_processor": {"train": {"name": "blip2_image_train", "image_size": 56}},
        }

    model = tiny_model_section(tiny_stack)
    assert _load(tmp_path, model, datasets={"a": entry(6), "b": entry(6)}).run.batch_size_train == 6
    with pytest.raises(ConfigError, match=r"datasets\.a\.batch_size = 6 .* datasets\.b\.batch_size = 4 .*same value"):
        _load(tmp_path, model, datasets={"a": entry(6), "b": entry(4)})
    with pytest.raises(ConfigError, match=r"but run\.batch_size_train = 8"):
        _load(tmp_path, model, datasets={"a": entry(6)}, run={"batch_size_train": 8})
    assert _load(tmp_path, model, datasets={"a": entry(8)}, run={"batch_size_train": 8}).run.batch_size_train == 8


def test_readme_checkpoint_table_is_the_code_s():
    readme = (REPO / "README.md").read_text()
    for c in OFFICIAL_CHECKPOINTS:
        row = f"| `{c.file}` | `{c.model_type}` | {c.llm} | `{c.template}` | `{c.end_sym}` | `[{c.proj_shape[0]}, {c.proj_shape[1]}]` |"
        assert row in readme, row


def test_shipped_llama2_configs_are_valid(tiny_llama2_stack, tmp_path):
    """train_configs/ and eval_configs/ minigpt4_llama2_flickr_*.yaml once their paths exist."""
    paths = [
        f"model.llama_model={tiny_llama2_stack['llama_model']}",
        f"model.vit_ckpt={tiny_llama2_stack['vit_ckpt']}",
        f"model.ckpt={tiny_llama2_stack['ckpt']}",
    ]
    train = minigpt4.load_config(
        REPO / "train_configs" / "minigpt4_llama2_flickr_finetune.yaml",
        paths
        + [f"datasets.flickr30k_caption.build_info.ann_path={tmp_path}", f"datasets.flickr30k_caption.build_info.image_path={tmp_path}"],
    )
    evaluation = minigpt4.load_config(
        REPO / "eval_configs" / "minigpt4_llama2_flickr_eval.yaml",
        paths
        + [
            f"evaluation_datasets.flickr30k_eval.build_info.ann_path={tmp_path}",
            f"evaluation_datasets.flickr30k_eval.build_info.image_path={tmp_path}",
        ],
        evaluation=True,
    )
    for cfg in (train, evaluation):
        m = cfg.model
        assert (m.model_type, m.has_qformer, m.end_sym, m.prompt_template, m.q_former_model) == (
            "llama2",
            False,
            "</s>",
            "[INST] {} [/INST] ",
            None,
        )
