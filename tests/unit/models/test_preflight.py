"""minigpt4-check: the tiny stacks made wrong in each way the official weights go wrong, each found in
seconds without reading a weight tensor, every problem at once; a correct config passes."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from minigpt4.config import load_model_config
from minigpt4.models.preflight import check_model
from tests.helpers.configs import tiny_model_section, write_yaml


@pytest.fixture()
def stack(tiny_stack, tmp_path) -> dict[str, str]:
    """A private copy of the tiny stack, free to break."""
    out = {}
    for key, path in tiny_stack.items():
        target = tmp_path / "stack" / Path(path).name
        target.parent.mkdir(exist_ok=True)
        (shutil.copytree if Path(path).is_dir() else shutil.copy)(path, target)
        out[key] = str(target)
    return out


def problems(stack: dict, tmp_path: Path, **model) -> list[str]:
    cfg = write_yaml(tmp_path / "check.yaml", {"custom_imports": ["minigpt4.testing"], "model": tiny_model_section(stack, **model)})
    start = time.perf_counter()
    report = check_model(load_model_config(cfg))
    assert time.perf_counter() - start < 10
    return [str(p) for p in report.problems]


def edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_a_correct_stack_passes_without_reading_a_weight_tensor(stack, tmp_path, monkeypatch):
    import safetensors.torch

    real_load = torch.load

    def mapped_only(*args, **kwargs):
        assert kwargs.get("mmap") is True, "a weights file read whole"
        return real_load(*args, **kwargs)

    def never(*args, **kwargs):
        raise AssertionError("safetensors tensors read")

    monkeypatch.setattr(torch, "load", mapped_only)
    monkeypatch.setattr(safetensors.torch, "load_file", never)
    monkeypatch.setattr(safetensors.torch, "load", never)
    assert problems(stack, tmp_path) == []


def test_truncated_files_are_named(stack, tmp_path):
    shard = Path(stack["llama_model"]) / "model.safetensors"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    vit = Path(stack["vit_ckpt"])
    vit.write_bytes(vit.read_bytes()[:1000])
    found = problems(stack, tmp_path)
    assert any(p.startswith(f"{shard}: truncated: ") for p in found), found
    assert any(p.startswith(f"{vit}: truncated or not a torch.save file") and "download it again (model.vit_ckpt)" in p for p in found)


def test_a_checkpoint_for_another_llm_size(stack, tmp_path):
    ckpt = Path(stack["ckpt"])
    state = torch.load(ckpt, weights_only=True)
    state["model"]["llama_proj.weight"] = torch.zeros(96, 64)  # as a 13B checkpoint against a 7B LLM
    state["model"]["llama_proj.bias"] = torch.zeros(96)
    torch.save(state, ckpt)
    (found,) = problems(stack, tmp_path)
    assert found.startswith(f"{ckpt}: the checkpoint's llama_proj is 64 -> 96") and "this model's is 64 -> 64" in found


def test_a_llama2_checkpoint_under_a_qformer_model_type(stack, tmp_path):
    ckpt = Path(stack["ckpt"])
    torch.save({"model": {"llama_proj.weight": torch.zeros(64, 256), "llama_proj.bias": torch.zeros(64)}}, ckpt)
    (found,) = problems(stack, tmp_path)
    assert "llama_proj is 256 -> 64" in found and "(Q-Former -> LLM hidden size)" in found


def test_a_tokenizer_that_does_not_fit_the_embedding_matrix(stack, tmp_path):
    shard = Path(stack["llama_model"]) / "model.safetensors"
    weights = load_file(shard)
    weights["model.embed_tokens.weight"] = torch.cat([weights["model.embed_tokens.weight"], torch.zeros(1, 64)])  # 400 -> 401
    save_file(weights, shard, metadata={"format": "pt"})
    (found,) = problems(stack, tmp_path)
    assert "the tokenizer has 400 tokens but the embedding matrix 401 rows" in found
    weights["model.embed_tokens.weight"] = torch.zeros(448, 64)  # padded to a multiple of 64: legal
    save_file(weights, shard, metadata={"format": "pt"})
    assert problems(stack, tmp_path) == []


@pytest.mark.parametrize(
    ("name", "model", "expected"),
    [
        ("lmsys/vicuna-7b-v1.5", {}, "a vicuna v1 LLM under the Vicuna v0 template"),
        ("meta-llama/Llama-2-7b-chat-hf", {}, "a llama2 LLM under the Vicuna v0 template"),
        ("Vision-CAIR/vicuna", {"prompt_template": "[INST] {} [/INST] ", "end_sym": "</s>"}, "a vicuna v0 LLM under the Llama-2 template"),
    ],
)
def test_a_template_that_does_not_fit_the_llm_family(stack, tmp_path, name, model, expected):
    edit_json(Path(stack["llama_model"]) / "config.json", _name_or_path=name)
    (found,) = problems(stack, tmp_path, **model)
    assert found.startswith(f"{stack['llama_model']}: {expected}")


def test_a_generation_config_with_the_wrong_eos(stack, tmp_path):
    gen = Path(stack["llama_model"]) / "generation_config.json"
    edit_json(gen, eos_token_id=1, bos_token_id=0)  # as in Vision-CAIR/vicuna
    (found,) = problems(stack, tmp_path)
    assert (
        found
        == f"{gen}: eos_token_id 1 differs from the tokenizer's 2 ('</s>'); set \"eos_token_id\": 2 (and bos_token_id 1) or delete the file"
    )


def test_vision_files_not_in_the_official_layout(stack, tmp_path):
    vit, blip2 = Path(stack["vit_ckpt"]), Path(stack["q_former_model"])
    torch.save({"embeddings.class_embedding": torch.zeros(1, 1, 64)}, vit)  # converted to Hugging Face names
    torch.save({"model": {"qformer.encoder.layer.0.x": torch.zeros(1)}}, blip2)
    found = problems(stack, tmp_path)
    assert len(found) == 2
    assert found[0].startswith(f"{vit}: not the official EVA-ViT-G (LAVIS eva_vit_g.pth) layout (keys like ['embeddings.class_embedding'])")
    assert found[1].startswith(f"{blip2}: not the official BLIP-2")


def test_every_problem_is_reported_at_once(stack, tmp_path):
    edit_json(Path(stack["llama_model"]) / "generation_config.json", eos_token_id=1)
    edit_json(Path(stack["llama_model"]) / "config.json", _name_or_path="lmsys/vicuna-13b-v1.3")
    torch.save({"model": {"llama_proj.weight": torch.zeros(64, 256), "llama_proj.bias": torch.zeros(64)}}, stack["ckpt"])
    assert len(problems(stack, tmp_path)) == 3


def test_the_command_prints_a_summary_or_every_problem(stack, tmp_path, capsys):
    from minigpt4.cli import check

    cfg = write_yaml(tmp_path / "check.yaml", {"custom_imports": ["minigpt4.testing"], "model": tiny_model_section(stack)})
    assert check(["--cfg-path", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert out.count("ok  ") == 4 and "all files fine" in out
    edit_json(Path(stack["llama_model"]) / "generation_config.json", eos_token_id=1)
    assert check(["--cfg-path", str(cfg)]) == 2
    assert "error: 1 problem(s) with the files of" in capsys.readouterr().err


def test_sizes_always_and_hashes_on_request_against_the_manifest(stack, tmp_path, capsys):
    import hashlib

    import yaml

    from minigpt4.cli import check

    vit = Path(stack["vit_ckpt"])
    item = {"name": "vit", "file": vit.name, "url": "http://127.0.0.1/none", "key": "model.vit_ckpt"}
    manifest = tmp_path / "manifest.yaml"
    cfg = write_yaml(tmp_path / "check.yaml", {"custom_imports": ["minigpt4.testing"], "model": tiny_model_section(stack)})
    args = ["--cfg-path", str(cfg), "--manifest", str(manifest)]

    manifest.write_text(yaml.safe_dump({"artefacts": [{**item, "size": vit.stat().st_size + 1}]}))
    assert check(args) == 2
    assert (
        f"{vit}: {vit.stat().st_size:,} bytes, the manifest says {vit.stat().st_size + 1:,}; download it again" in capsys.readouterr().err
    )

    manifest.write_text(yaml.safe_dump({"artefacts": [{**item, "size": vit.stat().st_size, "sha256": "0" * 64}]}))
    assert check(args) == 0  # sizes agree; hashes only with --hash
    assert check([*args, "--hash"]) == 2
    assert f"{vit}: sha256 is not the manifest's {'0' * 64}" in capsys.readouterr().err
    good = hashlib.sha256(vit.read_bytes()).hexdigest()
    manifest.write_text(yaml.safe_dump({"artefacts": [{**item, "size": vit.stat().st_size, "sha256": good}]}))
    assert check([*args, "--hash"]) == 0


def test_train_eval_caption_and_chat_run_the_check_first(stack, tmp_path, synthetic_flickr, capsys):
    from minigpt4 import cli
    from tests.helpers.chat import PHOTOS, chat_config
    from tests.helpers.paths import TINY_CFG
    from tests.helpers.training import options

    edit_json(Path(stack["llama_model"]) / "generation_config.json", eos_token_id=1)
    eval_cfg = str(chat_config(tmp_path, stack))
    runs = {
        "train": ["--cfg-path", str(TINY_CFG), "--options", *options(stack, synthetic_flickr, tmp_path / "out")],
        "evaluate": ["--cfg-path", eval_cfg, "--save-path", str(tmp_path / "eval")],
        "caption": ["--cfg-path", eval_cfg, str(PHOTOS[0])],
        "chat": ["--cfg-path", eval_cfg],
    }
    for command, args in runs.items():
        assert getattr(cli, command)(args) == 2, command
        err = capsys.readouterr().err
        assert "1 problem(s) with the files of" in err and "eos_token_id 1 differs from the tokenizer's 2" in err, (command, err[-500:])
        assert "loaded LLM" not in err  # before any weight is read
    assert not (tmp_path / "out").exists() and not (tmp_path / "eval").exists()
