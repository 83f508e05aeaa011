"""Random stacks beyond the tiny one: the official-size preset (for measuring a GPU before downloading)
and the writer options it uses (fp16 files, an LLM vocabulary larger than the tokenizer's)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from transformers import Blip2QFormerModel, LlamaConfig, LlamaForCausalLM

import minigpt4
import minigpt4.cli
from minigpt4.commands import random_stack as random_stack_command
from minigpt4.errors import DataError
from minigpt4.models.llm import load_tokenizer
from minigpt4.models.minigpt4 import MiniGPT4
from minigpt4.models.qformer import qformer_config
from minigpt4.models.variants import OFFICIAL_CHECKPOINTS
from minigpt4.models.vision import build_vision_encoder, vision_config
from minigpt4.models.weights import load_weights
from minigpt4.testing import stacks
from minigpt4.testing.stacks import (
    SIZES,
    TINY_IMAGE_SIZE,
    TINY_LLM,
    TINY_NUM_QUERY_TOKEN,
    TINY_QFORMER,
    TINY_VIT,
    main,
    write_random_stack,
)
from tests.helpers.configs import tiny_model_section, write_yaml

INSTR = "<Img><ImageHere></Img> Describe this image in detail."
CAPTIONS = [
    "A man in an orange hat starring at something.",
    "Two dogs run across a snowy field.",
    "A woman in a red dress is dancing on a stage.",
    "Children play soccer in a park.",
]


def test_vicuna_7b_size_is_the_official_stack():
    s = SIZES["vicuna-7b"]
    with torch.device("meta"):  # shapes only: no memory, no time
        llm = LlamaForCausalLM(LlamaConfig(**s["llm"]))
    assert sum(p.numel() for p in llm.parameters()) == 6_738_415_616  # LLaMA-7B / Vicuna-7B
    vit = vision_config(s["image_size"], s["vit"])
    assert (vit.hidden_size, vit.intermediate_size, vit.num_hidden_layers, vit.num_attention_heads, vit.patch_size) == (
        1408,
        6144,
        39,
        16,
        14,
    )
    qf = qformer_config(vit.hidden_size, s["qformer"])
    assert (qf.hidden_size, qf.num_hidden_layers, qf.encoder_hidden_size) == (768, 12, 1408)
    assert s["num_query_token"] == 32 and s["dtype"] == torch.float16
    # the trainable projection of the 7B model: 768 x 4096 weights + 4096 biases = 3,149,824 parameters
    assert qf.hidden_size * s["llm"]["hidden_size"] + s["llm"]["hidden_size"] == 3_149_824


@pytest.mark.parametrize(
    "size, file, llm_params, trainable",
    [
        ("vicuna-7b", "prerained_minigpt4_7b.pth", 6_738_415_616, 3_149_824),
        ("vicuna-13b", "pretrained_minigpt4.pth", 13_015_864_320, 3_937_280),
        ("llama2-7b", "pretrained_minigpt4_llama2_7b.pth", 6_738_415_616, 23_072_768),
    ],
)
def test_every_official_size_builds_the_shapes_of_its_released_checkpoint(size, file, llm_params, trainable, tiny_stack):
    """MiniGPT4 itself at each official size, on the meta device: llama_proj's width comes from the LLM."""
    s, released = SIZES[size], next(c for c in OFFICIAL_CHECKPOINTS if c.file == file)
    with torch.device("meta"):  # shapes only: no memory, no time
        vit = build_vision_encoder(vision_config(s["image_size"], s["vit"]))
        llm = LlamaForCausalLM(LlamaConfig(**s["llm"]))
        qformer = Blip2QFormerModel(qformer_config(vit.config.hidden_size, s["qformer"])) if s["has_qformer"] else None
        queries = torch.nn.Parameter(torch.zeros(1, s["num_query_token"], 768)) if s["has_qformer"] else None
        model = MiniGPT4(vit, qformer, queries, llm, load_tokenizer(tiny_stack["llama_model"]), [INSTR])
    assert sum(p.numel() for p in llm.parameters()) == llm_params
    assert tuple(model.llama_proj.weight.shape) == released.proj_shape
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trainable
    assert released.model_type == ("vicuna0" if s["has_qformer"] else "llama2")


@pytest.fixture(scope="module")
def fp16_stack(tmp_path_factory) -> dict[str, str]:
    """Tiny sizes written the way the official-size preset writes: fp16 files, LLM vocab > tokenizer."""
    out = tmp_path_factory.mktemp("fp16_stack")
    return write_random_stack(
        out,
        0,
        CAPTIONS * 5,
        TINY_IMAGE_SIZE,
        TINY_NUM_QUERY_TOKEN,
        TINY_VIT,
        TINY_QFORMER,
        {**TINY_LLM, "vocab_size": 700},
        torch.float16,
        "cpu",
        tokenizer_vocab=500,
    )


def test_fp16_files_and_larger_llm_vocab_are_written(fp16_stack):
    eva = load_weights(fp16_stack["vit_ckpt"])
    assert {v.dtype for v in eva.values() if v.is_floating_point()} == {torch.float16}
    assert len([k for k in eva if k.endswith(".attn.qkv.weight")]) == TINY_VIT["num_hidden_layers"] + 1
    config = json.loads((Path(fp16_stack["llama_model"]) / "config.json").read_text())
    assert config["vocab_size"] == 700 and config["dtype"] == "float16"
    tokenizer = load_tokenizer(fp16_stack["llama_model"])
    assert len(tokenizer) < 700


def test_fp16_stack_with_larger_vocab_trains_and_generates(fp16_stack, tmp_path):
    path = write_yaml(tmp_path / "m.yaml", {"model": tiny_model_section(fp16_stack, ckpt=None)})
    model = minigpt4.build_model(minigpt4.load_config(path).model)
    assert model.llama_model.get_input_embeddings().weight.shape[0] == 700
    images = torch.randn(2, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)
    loss = model({"image": images, "instruction_input": [INSTR] * 2, "answer": CAPTIONS[:2]})["loss"]
    loss.backward()
    assert torch.isfinite(loss) and model.llama_proj.weight.grad.abs().sum() > 0
    captions = model.generate(images, [INSTR] * 2, max_new_tokens=8)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)


def test_cli_trains_the_tokenizer_on_the_captions(tmp_path, capsys):
    ann = tmp_path / "flickr30k_train.json"
    ann.write_text(json.dumps([{"image": f"{i}.jpg", "image_id": str(i), "captions": CAPTIONS} for i in range(3)]))
    main(["--out", str(tmp_path / "with"), "--captions", str(ann)])
    assert f"model.llama_model={tmp_path / 'with' / 'llama'}" in capsys.readouterr().out
    main(["--out", str(tmp_path / "without")])
    lengths = [len(load_tokenizer(tmp_path / d / "llama")(" ".join(CAPTIONS)).input_ids) for d in ("with", "without")]
    assert lengths[0] < 0.8 * lengths[1], lengths


def test_cli_names_a_bad_captions_file(tmp_path):
    bad = tmp_path / "captions.csv"
    bad.write_text("raw,split\n")
    with pytest.raises(DataError, match="captions.csv: expected a prepared annotation file"):
        main(["--out", str(tmp_path / "stack"), "--captions", str(bad)])


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_random_stack_command_and_its_testing_alias_write_the_same_files(tmp_path, capsys):
    """``python -m minigpt4.testing.stacks`` (tiny by default; its ``main``, here) is
    ``minigpt4-random-stack`` with the tiny sizes (registered by importing minigpt4.testing.stacks)."""
    stacks.main(["--size", "tiny-llama2", "--out", str(tmp_path / "old")])
    old = capsys.readouterr()
    assert "note:" not in old.err  # the tiny sizes stay the test tool's: no note
    assert minigpt4.cli.main(["random-stack", "--size", "tiny-llama2", "--out", str(tmp_path / "new")]) == 0
    new_out = capsys.readouterr().out
    assert new_out.replace(str(tmp_path / "new"), "DIR") == old.out.replace(str(tmp_path / "old"), "DIR")
    old_files, new_files = _digests(tmp_path / "old"), _digests(tmp_path / "new")
    assert sorted(old_files) == sorted(new_files) and "eva_vit_g.pth" in new_files
    assert old_files["llama/config.json"] == new_files["llama/config.json"]
    # (tokenizer.model records the temporary folder it was trained in: compare the vocabularies)
    assert load_tokenizer(tmp_path / "old" / "llama").get_vocab() == load_tokenizer(tmp_path / "new" / "llama").get_vocab()
    assert [old_files[f] == new_files[f] for f in old_files if f.endswith(".safetensors")] == [True]
    for name in ("eva_vit_g.pth", "minigpt4_ckpt.pth"):
        a, b = torch.load(tmp_path / "old" / name), torch.load(tmp_path / "new" / name)
        a, b = a.get("model", a), b.get("model", b)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_vicuna0_is_an_alias_of_the_vicuna_7b_size(capsys):
    assert "vicuna0" not in SIZES  # one name per size
    assert random_stack_command.parse_args(["--out", "x", "--size", "vicuna0"]).size == "vicuna-7b"
    assert capsys.readouterr().err.strip() == "note: --size vicuna0 is now called vicuna-7b"
    assert random_stack_command.parse_args(["--out", "x"]).size == "vicuna-7b"  # the product command's default
    assert capsys.readouterr().err == ""


def test_testing_stacks_notes_the_new_command_for_official_sizes(monkeypatch, capsys):
    from minigpt4.testing import stacks

    built = []
    monkeypatch.setattr(random_stack_command, "build", lambda args: built.append(args.size) or {})
    stacks.main(["--out", "x", "--size", "vicuna0"])
    stacks.main(["--out", "x"])
    assert built == ["vicuna-7b", "tiny"]
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "note: --size vicuna0 is now called vicuna-7b",
        "note: the official sizes' command is now minigpt4-random-stack (python -m minigpt4.cli random-stack)",
    ]
