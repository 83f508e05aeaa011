"""Official file layouts: key maps both ways, strict loading, clear errors."""

import pytest
import torch

import minigpt4
from minigpt4.errors import WeightsError
from minigpt4.models.qformer import blip2_to_hf, hf_to_blip2
from minigpt4.models.vision import eva_to_hf
from minigpt4.models.weights import load_weights
from minigpt4.testing.stacks import official_blip2_state, official_vit_state
from minigpt4.utils.io import atomic_torch_save
from tests.helpers.configs import tiny_model_section, write_yaml


def _build(tmp_path, stack, name="m.yaml", **over):
    path = write_yaml(tmp_path / name, {"model": tiny_model_section(stack, **over)})
    return minigpt4.build_model(minigpt4.load_config(path).model)


def test_files_written_from_a_model_reproduce_its_encode_img(tmp_path, tiny_stack):
    """Random model -> official-layout files -> a second model loads them -> identical encode_img."""
    torch.manual_seed(1)
    src = _build(tmp_path, tiny_stack, vit_ckpt=None, q_former_model=None, ckpt=None)
    eva, ln_vision = official_vit_state(src.visual_encoder)
    assert "blocks.0.attn.q_bias" in eva and "blocks.0.attn.v_bias" in eva and "cls_token" in eva
    atomic_torch_save(eva, tmp_path / "vit.pth")
    atomic_torch_save(official_blip2_state(src.qformer, src.query_tokens, ln_vision), tmp_path / "blip2.pth")
    atomic_torch_save({"model": src.trainable_state_dict()}, tmp_path / "proj.pth")
    dst = _build(
        tmp_path,
        tiny_stack,
        "d.yaml",
        vit_ckpt=str(tmp_path / "vit.pth"),
        q_former_model=str(tmp_path / "blip2.pth"),
        ckpt=str(tmp_path / "proj.pth"),
    )
    images = torch.randn(2, 3, 56, 56)
    a, b = src.encode_img(images)[0], dst.encode_img(images)[0]
    assert torch.equal(a, b)
    assert dst.visual_encoder.post_layernorm.eps == 1e-5


def test_vit_and_qformer_maps_round_trip(tiny_stack):
    eva = load_weights(tiny_stack["vit_ckpt"])
    hf, unexpected = eva_to_hf(eva, depth=3, num_patches=16)
    assert not unexpected
    back, _ = official_vit_state_from(hf)
    assert set(back) == set(eva) and all(torch.equal(back[k], eva[k]) for k in eva)
    blip2 = load_weights(tiny_stack["q_former_model"])["model"]
    q, extra, ignored = blip2_to_hf(blip2)
    assert "layernorm.weight" in q and "encoder.layer.0.crossattention.attention.query.weight" in q
    assert sorted(ignored) == ["Qformer.cls.predictions.bias", "t5_proj.weight"]
    again = hf_to_blip2(q, extra["query_tokens"], {k: v for k, v in extra.items() if k.startswith("ln_vision")})
    dropped = {
        "Qformer.bert.embeddings.word_embeddings.weight",
        "Qformer.bert.embeddings.position_embeddings.weight",
        "Qformer.bert.embeddings.position_ids",
        "Qformer.bert.encoder.layer.0.intermediate.dense.weight",
        "Qformer.bert.encoder.layer.0.output.dense.weight",
    }
    assert set(again) == set(blip2) - dropped - set(ignored)
    assert all(torch.equal(again[k], blip2[k]) for k in again)


def official_vit_state_from(hf_sd):
    from minigpt4.models.vision import hf_to_eva

    return hf_to_eva(hf_sd)


def test_missing_vit_key_is_named(tmp_path, tiny_stack):
    eva = load_weights(tiny_stack["vit_ckpt"])
    del eva["blocks.1.mlp.fc2.weight"]
    atomic_torch_save(eva, tmp_path / "vit.pth")
    with pytest.raises(WeightsError, match=r"Missing keys: \['encoder.layers.1.mlp.fc2.weight'\]"):
        _build(tmp_path, tiny_stack, vit_ckpt=str(tmp_path / "vit.pth"))


def test_missing_qformer_key_is_named(tmp_path, tiny_stack):
    sd = load_weights(tiny_stack["q_former_model"])
    del sd["model"]["Qformer.bert.encoder.layer.1.attention.self.key.bias"]
    del sd["model"]["query_tokens"]
    atomic_torch_save(sd, tmp_path / "blip2.pth")
    with pytest.raises(WeightsError) as e:
        _build(tmp_path, tiny_stack, q_former_model=str(tmp_path / "blip2.pth"))
    assert "encoder.layer.1.attention.attention.key.bias" in str(e.value) and "query_tokens" in str(e.value)


def test_unexpected_vit_key_is_named(tmp_path, tiny_stack):
    eva = load_weights(tiny_stack["vit_ckpt"])
    eva["blocks.0.attn.relative_position_bias_table"] = torch.zeros(3)
    atomic_torch_save(eva, tmp_path / "vit.pth")
    with pytest.raises(WeightsError, match="Unexpected keys: .*relative_position_bias_table"):
        _build(tmp_path, tiny_stack, vit_ckpt=str(tmp_path / "vit.pth"))


def test_pos_embed_is_resized_for_another_image_size(tmp_path, tiny_stack):
    m = _build(tmp_path, tiny_stack, image_size=84)
    eva = load_weights(tiny_stack["vit_ckpt"])
    pos = m.visual_encoder.embeddings.position_embedding
    assert pos.shape == (1, 1 + 36, 64)
    assert torch.equal(pos[:, 0], eva["pos_embed"][:, 0])  # CLS kept
    assert m.encode_img(torch.randn(1, 3, 84, 84))[0].shape == (1, 8, 64)


def test_minigpt4_ckpt_without_projection_fails(tmp_path, tiny_stack):
    atomic_torch_save({"model": {"llama_model.model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(2)}}, tmp_path / "c.pth")
    with pytest.raises(WeightsError, match="no llama_proj.weight/llama_proj.bias"):
        _build(tmp_path, tiny_stack, ckpt=str(tmp_path / "c.pth"))


def test_minigpt4_ckpt_size_mismatch_names_both_sizes(tmp_path, tiny_stack):
    atomic_torch_save({"model": {"llama_proj.weight": torch.zeros(5120, 64), "llama_proj.bias": torch.zeros(5120)}}, tmp_path / "c.pth")
    with pytest.raises(ValueError, match=r"shape \(5120, 64\) but the model expects \(64, 64\)"):
        _build(tmp_path, tiny_stack, ckpt=str(tmp_path / "c.pth"))


def test_official_ckpt_buffers_are_dropped_and_projection_loaded(tmp_path, tiny_stack):
    m = _build(tmp_path, tiny_stack)
    sd = load_weights(tiny_stack["ckpt"])["model"]
    assert torch.equal(m.llama_proj.weight, sd["llama_proj.weight"])
    assert torch.equal(m.llama_proj.bias, sd["llama_proj.bias"])


def test_truncated_file_fails_clearly(tmp_path, tiny_stack):
    data = open(tiny_stack["vit_ckpt"], "rb").read()
    (tmp_path / "vit.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="cannot load .*vit.pth"):
        _build(tmp_path, tiny_stack, vit_ckpt=str(tmp_path / "vit.pth"))
