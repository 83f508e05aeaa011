"""The Llama-2 variant (no Q-Former) against the official recipe, computed here from the official
files: ``llama_proj(view(ln_vision(ViT(x))[:, 1:], B, N/4, 4W))`` with a default-initialised
``ln_vision``; the ``[INST]`` template with ``</s>`` supervised, generation stopping at EOS; and
checkpoints of the wrong variant named."""

import logging

import pytest
import torch
import torch.nn.functional as F

import minigpt4
from minigpt4.errors import WeightsError
from minigpt4.models.weights import load_weights
from tests.helpers.configs import tiny_model_section, write_yaml
from tests.helpers.training import overfit

INSTR = "<Img><ImageHere></Img> Describe this image in detail."


def _build(tmp_path, stack, **over):
    path = write_yaml(tmp_path / "m.yaml", {"model": tiny_model_section(stack, model_type="tiny_llama2", **over)})
    return minigpt4.build_model(minigpt4.load_config(path).model)


def official_encode_img(model, ckpt: str, images: torch.Tensor) -> torch.Tensor:
    """The official recipe on the ViT blocks' output (before any ln_vision) and the official checkpoint."""
    vit_out = model.visual_encoder(pixel_values=images, output_hidden_states=True).hidden_states[-1]
    ln_vision = torch.nn.LayerNorm(vit_out.shape[-1])  # never loaded from a file in this variant: eps 1e-5, 1 / 0
    image_embeds = ln_vision(vit_out)[:, 1:, :]
    bs, pn, hs = image_embeds.shape
    image_embeds = image_embeds.view(bs, int(pn / 4), int(hs * 4))
    sd = load_weights(ckpt)["model"]
    return F.linear(image_embeds, sd["llama_proj.weight"], sd["llama_proj.bias"])


@pytest.fixture(scope="module")
def llama2(tiny_llama2_stack, tiny_stack, tmp_path_factory):
    """Built with a BLIP-2 file named too: it must be ignored (a warning), ln_vision left at its init."""
    return _build(tmp_path_factory.mktemp("llama2"), tiny_llama2_stack, q_former_model=tiny_stack["q_former_model"])


def test_encode_img_is_the_official_recipe(llama2, tiny_llama2_stack):
    images = torch.randn(3, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    ours = llama2.encode_img(images)[0]
    assert ours.shape == (3, 4, 64)  # 16 patches -> 4 tokens of 4 x 64
    # float32 tolerance, not bit equality: the CPU's matmul kernels may round the two ways differently (seen
    # on an AVX-512 Xeon: 8e-7 apart); a wrong recipe (patch grouping, ln_vision, the CLS) is off by O(1)
    torch.testing.assert_close(ours, official_encode_img(llama2, tiny_llama2_stack["ckpt"], images))
    assert llama2.llama_proj.in_features == 4 * 64 and llama2.qformer is None and llama2.query_tokens is None
    assert llama2.feature_cut == llama2.vision_cut == "vit" and "qformer" not in llama2.frozen


def test_four_consecutive_patches_of_a_row_make_one_token(llama2):
    feats = torch.zeros(1, 17, 64)
    feats[0, 1:, 0] = torch.arange(16, dtype=torch.float32)  # patch i (raster order) carries i; CLS 0 is dropped
    tokens = llama2._image_tokens(feats)
    assert tokens.shape == (1, 4, 256)
    assert tokens[0].view(4, 4, 64)[:, :, 0].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]


def test_ln_vision_keeps_its_default_init_and_the_blip2_file_is_ignored(tiny_llama2_stack, tiny_stack, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="minigpt4"):
        m = _build(tmp_path, tiny_llama2_stack, q_former_model=tiny_stack["q_former_model"])
    ln = m.visual_encoder.post_layernorm
    assert torch.equal(ln.weight, torch.ones(64)) and torch.equal(ln.bias, torch.zeros(64)) and ln.eps == 1e-5
    blip2_ln = load_weights(tiny_stack["q_former_model"])["model"]["ln_vision.weight"]
    assert not torch.equal(blip2_ln, torch.ones(64))  # the file's ln_vision differs: loading it would show
    assert "has_qformer is false: model.q_former_model ignored" in caplog.text


def test_inst_template_supervises_eos_as_the_official_tokenisation(llama2):
    tok = llama2.llama_tokenizer
    assert llama2.end_ids == [tok.eos_token_id]
    img = torch.zeros(1, 4, 64)
    embeds, mask, labels = llama2.assemble(img, [INSTR], ["A red circle."])
    # the official sequence: [BOS] "[INST] <Img>" [image] "</Img> ... [/INST] " then "A red circle.</s>" tokenised
    before = tok("[INST] <Img>", add_special_tokens=False).input_ids
    after = tok("</Img> Describe this image in detail. [/INST] ", add_special_tokens=False).input_ids
    answer = tok("A red circle." + "</s>", add_special_tokens=False).input_ids
    assert answer[-1] == tok.eos_token_id
    n_prompt = 1 + len(before) + 4 + len(after)
    assert labels[0].tolist() == [-100] * n_prompt + answer and mask.sum() == n_prompt + len(answer)
    text = embeds[0, 1 + len(before) + 4 :]
    assert torch.equal(text, llama2.llama_model.get_input_embeddings()(torch.tensor(after + answer)))


def test_generation_stops_at_eos(tiny_llama2_stack, tmp_path):
    m = _build(tmp_path, tiny_llama2_stack, freeze_llm=False)
    images = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(3))
    batch = {"image": images, "instruction_input": [INSTR] * 2, "answer": ["a red circle", "two squares"]}
    assert overfit(m, batch) < 0.05
    lengths = []
    generate = m.llama_model.generate

    def spy(*args, **kwargs):
        assert kwargs["generation_config"].stop_strings is None  # EOS is the stop, not a string
        out = generate(*args, **kwargs)
        lengths.append(out.shape[1])
        return out

    m.llama_model.generate = spy
    assert m.generate(images, [INSTR] * 2, max_new_tokens=30) == ["a red circle", "two squares"]
    assert lengths[0] < 30


def test_a_checkpoint_of_another_variant_names_both_shapes_and_the_variant(llama2, tiny_stack):
    with pytest.raises(
        WeightsError,
        match=r"llama_proj\.weight has shape \(64, 64\) but the model expects "
        r"\(64, 256\).*this model's is 256 -> 64 \(4 ViT patches",
    ):
        llama2.load_checkpoint(tiny_stack["ckpt"], check_only=True)  # a Q-Former checkpoint
    hint = llama2._variant_hint((4096, 5632))
    assert "5632 -> 4096, as in MiniGPT-4 Llama-2-7b-chat-hf (model_type llama2, pretrained_minigpt4_llama2_7b.pth)" in hint
    assert "Vicuna-13B v0 (model_type vicuna0, pretrained_minigpt4.pth)" in llama2._variant_hint((5120, 768))
