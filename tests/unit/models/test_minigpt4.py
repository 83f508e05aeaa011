"""The MiniGPT-4 model on the tiny stack: freezing, labels, loss, training signal, generation."""

import logging

import pytest
import torch

import minigpt4
from tests.helpers.configs import tiny_model_section, write_yaml
from tests.helpers.training import overfit

INSTR = "<Img><ImageHere></Img> Describe this image in detail."
INSTR2 = "<Img><ImageHere></Img> Could you describe the contents of this image for me?"


@pytest.fixture(scope="module")
def model(tiny_stack, tmp_path_factory):
    path = write_yaml(tmp_path_factory.mktemp("cfg") / "m.yaml", {"model": tiny_model_section(tiny_stack)})
    return minigpt4.build_model(minigpt4.load_config(path).model)


def _images(n, seed=0):
    return torch.randn(n, 3, 56, 56, generator=torch.Generator().manual_seed(seed))


def test_only_llama_proj_trains_and_frozen_parts_stay_eval(model):
    assert sorted(model.trainable_state_dict()) == ["llama_proj.bias", "llama_proj.weight"]
    model.train()
    assert model.training and model.llama_proj.training
    for part in (model.visual_encoder, model.qformer, model.llama_model):
        assert not part.training and not any(m.training for m in part.modules())
    model.zero_grad(set_to_none=True)
    model({"image": _images(2), "instruction_input": [INSTR, INSTR2], "answer": ["a red circle", "two squares"]})["loss"].backward()
    with_grad = sorted(n for n, p in model.named_parameters() if p.grad is not None)
    assert with_grad == ["llama_proj.bias", "llama_proj.weight"]
    assert model.query_tokens.grad is None
    model.zero_grad(set_to_none=True)
    model.eval()


def test_labels_are_exactly_the_answer_and_end_sym(model):
    answers = ["a red circle on a blue background", "two"]
    img, _ = model.encode_img(_images(2))
    embeds, mask, labels = model.assemble(img, [INSTR, INSTR2], answers)
    tok = model.llama_tokenizer
    n_img = img.shape[1]
    for i, (instr, ans) in enumerate(zip([INSTR, INSTR2], answers)):
        before, after = model.template.split(instr)
        n_prompt = 1 + len(tok(before, add_special_tokens=False).input_ids) + n_img + len(tok(after, add_special_tokens=False).input_ids)
        ans_ids = tok(ans, add_special_tokens=False).input_ids + model.end_ids
        n = n_prompt + len(ans_ids)
        assert (labels[i, :n_prompt] == -100).all()
        assert labels[i, n_prompt:n].tolist() == ans_ids
        assert (labels[i, n:] == -100).all() and (mask[i, n:] == 0).all() and (mask[i, :n] == 1).all()
        assert tok.decode(labels[i, n_prompt:n]).endswith("###")
    # loss = token-level mean cross-entropy over exactly those positions
    logits = model.llama_model(inputs_embeds=embeds, attention_mask=mask).logits
    sel = labels[:, 1:] != -100
    manual = torch.nn.functional.cross_entropy(logits[:, :-1][sel], labels[:, 1:][sel])
    out = model({"image": _images(2), "instruction_input": [INSTR, INSTR2], "answer": answers})
    assert torch.allclose(out["loss"], manual, atol=1e-5)


def test_truncation_keeps_end_sym(model):
    long = " ".join(["red"] * 200)
    ids = model.answer_ids(long)
    assert len(ids) == model.max_txt_len and ids[-len(model.end_ids) :] == model.end_ids


def test_train_and_eval_prompt_prefix_identical(model):
    img, _ = model.encode_img(_images(1))
    train_emb, train_mask, _ = model.assemble(img, [INSTR], ["a caption"])
    gen_emb, gen_mask, _ = model.assemble(img, [INSTR], None, pad_left=True)
    n = gen_emb.shape[1]
    assert torch.equal(train_emb[:, :n], gen_emb) and gen_mask.all()


def test_few_steps_lower_the_loss(model):
    batch = {
        "image": _images(4, seed=1),
        "instruction_input": [INSTR] * 4,
        "answer": ["a red circle", "a blue square", "two green triangles", "a white star"],
    }
    proj0 = {k: v.clone() for k, v in model.llama_proj.state_dict().items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(15):
        loss = model(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    model.llama_proj.load_state_dict(proj0)
    # a frozen random LLM only lets the 8 image tokens move the loss: a small but steady drop
    assert losses[-1] < losses[0] - 0.05 and losses == sorted(losses, reverse=True), losses


def test_generate_stops_at_end_sym_and_respects_max_new_tokens(tiny_stack, tmp_path):
    """Teach a model (LLM unfrozen) to answer 'a red circle### Human: more text', then decode."""
    path = write_yaml(tmp_path / "m.yaml", {"model": tiny_model_section(tiny_stack, freeze_llm=False)})
    torch.manual_seed(0)
    m = minigpt4.build_model(minigpt4.load_config(path).model)
    images = _images(2, seed=3)
    batch = {"image": images, "instruction_input": [INSTR, INSTR2], "answer": ["a red circle### Human: more text"] * 2}
    assert overfit(m, batch) < 0.05
    out = m.generate(images, [INSTR, INSTR2], max_new_tokens=30)
    assert out == ["a red circle", "a red circle"]
    short = m.generate(images, [INSTR, INSTR2], max_new_tokens=2)
    for s in short:
        assert len(m.llama_tokenizer(s, add_special_tokens=False).input_ids) <= 2 and "###" not in s
    # batched = one by one (left padding is masked correctly)
    assert [m.generate(images[i : i + 1], [ins])[0] for i, ins in enumerate([INSTR, INSTR2])] == out
    beams = m.generate(images, [INSTR, INSTR2], max_new_tokens=30, num_beams=2)
    assert beams == ["a red circle", "a red circle"]


def test_low_resource_on_cpu_warns_and_loads_the_llm_in_full_precision(tiny_stack, tmp_path, caplog):
    """The official eval configs say low_resource: true (8-bit on a GPU); on the CPU that cannot apply."""
    path = write_yaml(tmp_path / "m.yaml", {"model": tiny_model_section(tiny_stack, low_resource=True)})
    with caplog.at_level(logging.WARNING, logger="minigpt4"):
        m = minigpt4.build_model(minigpt4.load_config(path).model, device="cpu")
    assert "low_resource: true loads the LLM in 8-bit on a GPU, but this process runs on cpu" in caplog.text
    assert m.llama_model.dtype == torch.float32


def test_fresh_projection_is_the_same_in_every_build(tiny_stack, tmp_path):
    path = write_yaml(tmp_path / "m.yaml", {"model": tiny_model_section(tiny_stack, ckpt=None)})
    cfg = minigpt4.load_config(path).model
    torch.manual_seed(1)
    a = minigpt4.build_model(cfg).llama_proj.weight
    torch.manual_seed(2)
    b = minigpt4.build_model(cfg).llama_proj.weight
    assert torch.equal(a, b) and a.abs().max() > 0


@pytest.mark.parametrize("grad_checkpoint", [False, True])
def test_unfrozen_vit_gets_gradients_through_a_frozen_qformer(tiny_stack, tmp_path, grad_checkpoint):
    path = write_yaml(tmp_path / "m.yaml", {"model": tiny_model_section(tiny_stack, freeze_vit=False, use_grad_checkpoint=grad_checkpoint)})
    m = minigpt4.build_model(minigpt4.load_config(path).model)
    m.train()
    assert m.visual_encoder.training and not m.qformer.training
    m({"image": _images(2), "instruction_input": [INSTR, INSTR2], "answer": ["a red circle", "two"]})["loss"].backward()
    layer = m.visual_encoder.encoder.layers[0]
    assert layer.mlp.fc1.weight.grad is not None and layer.mlp.fc1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in m.qformer.parameters()) and m.query_tokens.grad is None
    q, k, v = layer.self_attn.qkv.bias.grad.chunk(3)
    assert torch.all(k == 0) and q.abs().sum() > 0  # EVA has no key bias: it stays zero


def test_freeze_after_construction_matches_the_flag(tiny_stack, tmp_path):
    path = write_yaml(tmp_path / "m.yaml", {"model": tiny_model_section(tiny_stack, freeze_vit=False, freeze_qformer=False)})
    m = minigpt4.build_model(minigpt4.load_config(path).model)
    m.freeze("visual_encoder")
    m.train()
    assert not m.visual_encoder.training and m.qformer.training
    m({"image": _images(2), "instruction_input": [INSTR, INSTR2], "answer": ["a red circle", "two"]})["loss"].backward()
    assert all(p.grad is None for p in m.visual_encoder.parameters())
    assert m.query_tokens.grad is not None and m.qformer.encoder.layer[0].attention.attention.query.weight.grad is not None
    m.freeze("qformer")
    assert not m.query_tokens.requires_grad and not any(p.requires_grad for p in m.qformer.parameters())
    with pytest.raises(ValueError, match="unknown part 'vit'"):
        m.freeze("vit")


def test_an_8bit_llm_stays_where_it_is_and_image_embeddings_follow_it(tiny_cfg_path):
    """low_resource: the 8-bit LLM sits on cuda:<device_8bit>, the rest on the run's device. Here the
    LLM is on the meta device and marked 8-bit: place() must not move it, and the image embeddings
    and the assembled sequence must land on the LLM's input-embedding device (they used to be built
    on the ViT's device, which fails as soon as the two differ)."""
    model = minigpt4.build_model(minigpt4.load_config(tiny_cfg_path).model)
    model.llama_model.to("meta")
    model.llama_model.is_loaded_in_8bit = True  # what transformers sets for a bitsandbytes model
    model.place("cpu")
    assert model.llama_model.get_input_embeddings().weight.device.type == "meta"
    assert {p.device.type for n, p in model.named_parameters() if not n.startswith("llama_model.")} == {"cpu"}
    embeds, atts = model.encode_img(torch.randn(2, 3, model.visual_encoder.config.image_size, model.visual_encoder.config.image_size))
    assert embeds.device.type == atts.device.type == "meta"
    inputs, mask, labels = model.assemble(embeds, [model.instructions[0]] * 2, ["a dog", "a cat"])
    assert inputs.device.type == mask.device.type == labels.device.type == "meta"
