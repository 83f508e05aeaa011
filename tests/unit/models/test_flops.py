"""The analytic FLOP formulas (minigpt4.models.flops) against torch's FlopCounterMode: part by part on
the tiny stack (real forward / training steps), and a full training sample at the official sizes on the
meta device (shapes only, no memory)."""

from types import SimpleNamespace

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count
from transformers import Blip2QFormerModel, LlamaConfig, LlamaForCausalLM

import minigpt4
from minigpt4.models import flops
from minigpt4.models.qformer import qformer_config
from minigpt4.models.vision import build_vision_encoder, vision_config
from minigpt4.testing.stacks import TINY_QFORMER, VICUNA7B_LLM
from tests.helpers.configs import tiny_model_section, write_yaml

aten = torch.ops.aten
INSTR = "<Img><ImageHere></Img> Describe this image in detail."
INSTR2 = "<Img><ImageHere></Img> Could you describe the contents of this image for me?"
# On CPU, sdpa runs _scaled_dot_product_flash_attention_for_cpu, which FlopCounterMode does not count at
# all; map it to the counter's own formulas for the CUDA sdpa kernels, so the CPU count is a GPU's count.
CPU_SDPA = {
    aten._scaled_dot_product_flash_attention_for_cpu: lambda q, k, v, *a, **kw: sdpa_flop_count(q, k, v),
    aten._scaled_dot_product_flash_attention_for_cpu_backward: lambda g, q, k, v, *a, **kw: sdpa_backward_flop_count(g, q, k, v),
}


def counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=CPU_SDPA)


@pytest.fixture(scope="module")
def model(tiny_stack, tmp_path_factory):
    path = write_yaml(tmp_path_factory.mktemp("cfg") / "m.yaml", {"model": tiny_model_section(tiny_stack)})
    return minigpt4.build_model(minigpt4.load_config(path).model)


def _images(n: int) -> torch.Tensor:
    return torch.randn(n, 3, 56, 56, generator=torch.Generator().manual_seed(0))


def _samples() -> dict:
    return {"image": _images(2), "instruction_input": [INSTR, INSTR2], "answer": ["a red circle", "two"]}


@torch.no_grad()
def _vit_feats(model, images: torch.Tensor) -> torch.Tensor:
    return model.visual_encoder(pixel_values=images).last_hidden_state.float()


def _qformer(model, qformer, feats: torch.Tensor) -> torch.Tensor:
    atts = torch.ones(feats.shape[:-1], dtype=torch.long)
    return qformer(
        query_embeds=model.query_tokens.expand(feats.shape[0], -1, -1), encoder_hidden_states=feats, encoder_attention_mask=atts
    ).last_hidden_state


def _like(model, **changes) -> SimpleNamespace:
    """The parts of ``model`` the formulas read, some replaced."""
    parts = ("visual_encoder", "qformer", "query_tokens", "llama_proj", "llama_model", "frozen")
    return SimpleNamespace(**{**{p: getattr(model, p) for p in parts}, **changes})


def test_vit_forward(model):
    with counter() as fc, torch.no_grad():
        model.visual_encoder(pixel_values=_images(2))
    assert fc.get_total_flops() == 2 * flops.vit_flops(model)


@pytest.mark.parametrize("overrides", [{}, {"cross_attention_frequency": 1}, {"num_hidden_layers": 3, "cross_attention_frequency": 2}])
def test_qformer_forward(model, overrides):
    feats = _vit_feats(model, _images(2))
    qformer = model.qformer if not overrides else Blip2QFormerModel(qformer_config(feats.shape[-1], {**TINY_QFORMER, **overrides})).eval()
    with counter() as fc, torch.no_grad():
        _qformer(model, qformer, feats)
    assert fc.get_total_flops() == 2 * flops.qformer_flops(_like(model, qformer=qformer))


@pytest.mark.parametrize("seq_len", [7, 33])
def test_llm_forward(model, seq_len):
    llm = model.llama_model
    with counter() as fc, torch.no_grad():
        llm(
            inputs_embeds=torch.randn(2, seq_len, llm.config.hidden_size),
            attention_mask=torch.ones(2, seq_len, dtype=torch.long),
            use_cache=False,
        )
    assert fc.get_total_flops() == 2 * flops.llm_flops(llm.config, seq_len)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_llm_backward_is_activation_only(model, attn):
    llm, seq_len = model.llama_model, 21
    embeds = torch.randn(2, seq_len, llm.config.hidden_size, requires_grad=True)
    llm.set_attn_implementation(attn)
    try:
        with counter() as fc:
            loss = llm(
                inputs_embeds=embeds,
                attention_mask=torch.ones(2, seq_len, dtype=torch.long),
                labels=torch.randint(0, 50, (2, seq_len)),
                use_cache=False,
            ).loss
            forward = fc.get_total_flops()
            loss.backward()
        expected = flops.llm_backward_flops(llm.config, seq_len)  # reads the attention implementation
    finally:
        llm.set_attn_implementation("sdpa")
    assert embeds.grad is not None and all(p.grad is None for p in llm.parameters())
    assert forward == 2 * flops.llm_flops(llm.config, seq_len)
    # sdpa: 5 backward attention matmuls (scores recomputed), eager: 4 (autograd of the two matmuls)
    assert fc.get_total_flops() - forward == 2 * expected


@pytest.mark.parametrize("cut", [None, "vit", "qformer"])
def test_train_sample(model, cut):
    """One real training step of 2 samples; the cuts start from features cached after the ViT / Q-Former."""
    samples = _samples()
    feats = _vit_feats(model, samples["image"])
    with torch.no_grad():
        queries = _qformer(model, model.qformer, feats)
    model.train()
    model.zero_grad(set_to_none=True)
    try:
        with counter() as fc:
            if cut is None:
                model(samples)["loss"].backward()
            else:
                if cut == "vit":
                    with torch.no_grad():
                        queries = _qformer(model, model.qformer, feats)
                embeds, mask, labels = model.assemble(model.llama_proj(queries), samples["instruction_input"], samples["answer"])
                model.llama_model(inputs_embeds=embeds, attention_mask=mask, labels=labels, use_cache=False).loss.backward()
        seq_len = model.assemble(queries, samples["instruction_input"], samples["answer"])[0].shape[1]
        assert sorted(n for n, p in model.named_parameters() if p.grad is not None) == ["llama_proj.bias", "llama_proj.weight"]
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
    proj = model.llama_proj
    # forward + weight gradient only: the Q-Former output needs no gradient
    proj_key = "MiniGPT4.llama_proj" if cut is None else "Linear"  # the tracker's name outside MiniGPT4.forward
    proj_counts = [sum(c.values()) for name, c in fc.get_flop_counts().items() if name == proj_key]
    assert proj_counts == [2 * 2 * (2 * queries.shape[1] * proj.in_features * proj.out_features)]
    assert fc.get_total_flops() == 2 * flops.train_flops_per_sample(model, seq_len, cut)  # padded: same length


def test_full_size_training_sample_on_meta():
    """Official sizes (EVA-ViT-G 224 px, BERT-base Q-Former, 32 queries, Vicuna-7B), 75 LLM tokens, on the
    meta device. There sdpa runs its math path (4 backward matmuls), so the LLM uses eager attention."""
    with torch.device("meta"):
        vit = build_vision_encoder(vision_config(224)).eval()
        m = SimpleNamespace(
            visual_encoder=vit,
            qformer=Blip2QFormerModel(qformer_config(1408)).eval(),
            query_tokens=torch.zeros(1, 32, 768),
            llama_proj=torch.nn.Linear(768, 4096),
            llama_model=LlamaForCausalLM(LlamaConfig(**VICUNA7B_LLM)).requires_grad_(False).eval(),
        )
        m.llama_model.set_attn_implementation("eager")
        with FlopCounterMode(display=False) as fc:
            with torch.no_grad():  # no 2D masks: their all-ones checks would read meta tensors
                feats = vit(pixel_values=torch.zeros(1, 3, 224, 224)).last_hidden_state
                queries = m.qformer(query_embeds=m.query_tokens, encoder_hidden_states=feats).last_hidden_state
            embeds = torch.cat([m.llama_proj(queries), torch.zeros(1, 75 - 32, 4096)], dim=1)
            mask = torch.ones(1, 1, 75, 75, dtype=torch.bool).tril()
            m.llama_model(
                inputs_embeds=embeds, attention_mask=mask, labels=torch.zeros(1, 75, dtype=torch.long), use_cache=False
            ).loss.backward()
    assert fc.get_total_flops() == flops.train_flops_per_sample(m, 75) == 2_524_840_352_256
    assert flops.vit_flops(m) == 520_719_260_160
    assert flops.qformer_flops(m) == 12_747_866_112
    assert flops.llm_flops(m.llama_model.config, 75) == 994_010_726_400
    assert flops.llm_backward_flops(m.llama_model.config, 75) == 996_959_846_400  # eager
    m.llama_model.set_attn_implementation("sdpa")
    assert flops.llm_backward_flops(m.llama_model.config, 75) == 998_434_406_400  # sdpa: scores recomputed
    assert flops.train_flops_per_sample(m, 75, "vit") == 2_526_314_912_256 - 520_719_260_160
    assert flops.train_flops_per_sample(m, 75, "qformer") == 2_526_314_912_256 - 533_467_126_272


def test_cut_and_frozen_checks(model):
    with pytest.raises(ValueError, match="cut"):
        flops.train_flops_per_sample(model, 10, "llm")
    with pytest.raises(ValueError, match="frozen"):
        flops.train_flops_per_sample(_like(model, frozen={"qformer": False}), 10, None)


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989e12),
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H200", 989e12),
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("NVIDIA A10", 125e12),
        ("NVIDIA L4", 121e12),
        ("NVIDIA L40S", 362e12),
        ("NVIDIA L40", None),
        ("NVIDIA GeForce RTX 4090", 165e12),
        ("Tesla V100-SXM2-16GB", 125e12),
        ("Tesla T4", 65e12),
        ("NVIDIA GeForce GTX 1080", None),
    ],
)
def test_peak_flops_table(monkeypatch, name, peak):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert flops.peak_flops_per_s(torch.device("cuda")) == peak


def test_peak_override_and_mfu():
    assert flops.peak_flops_per_s(torch.device("cpu")) is None
    assert flops.peak_flops_per_s(torch.device("cpu"), 100.0) == 100e12
    assert flops.mfu(1e12, 2.0, 1e12) == 0.5
    assert flops.mfu(1e12, 2.0, None) is None and flops.mfu(1e12, 0.0, 1e12) is None


def test_train_sample_of_the_llama2_variant(tiny_llama2_stack, tmp_path):
    """No Q-Former: the image tokens are 4 patches each (16 patches -> 4 tokens of 4 x 64)."""
    path = write_yaml(tmp_path / "m.yaml", {"model": tiny_model_section(tiny_llama2_stack, model_type="tiny_llama2")})
    m = minigpt4.build_model(minigpt4.load_config(path).model)
    samples = {"image": _images(1), "instruction_input": [INSTR], "answer": ["a red circle"]}
    with counter() as fc:
        out = m(samples)
        out["loss"].backward()
    assert flops.qformer_flops(m) == 0 and flops.image_tokens(m) == 4
    assert flops.train_flops_per_sample(m, int(out["seq_lens"][0])) == fc.get_total_flops()
