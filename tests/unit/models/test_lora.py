"""LoRA adapters on the frozen LLM (``model.lora``): the config's checks, what trains and what a
checkpoint holds, exact resume, gradient checkpointing, the export to a merged Hugging Face LLM, and
how an evaluation gets a LoRA run's settings. (2 torchrun ranks + evaluate.sh: test_llama2_e2e.py.)"""

from __future__ import annotations

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from safetensors.torch import load_file

import minigpt4
import minigpt4.cli
from minigpt4.config import load_model_config
from minigpt4.errors import ConfigError, WeightsError
from minigpt4.evaluation.fingerprint import eval_settings
from minigpt4.evaluation.train_match import adopt_training_lora, training_mismatches
from minigpt4.models import export as export_job
from minigpt4.training.checkpoint import load_checkpoint
from minigpt4.utils import dist
from tests.helpers.configs import tiny_model_section, write_yaml
from tests.helpers.evaluation import adapted_lora_checkpoint
from tests.helpers.paths import TINY_CFG
from tests.helpers.training import build_runner, options

LORA = {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}
INSTRUCTION = "<Img><ImageHere></Img> Describe this image."


def model_cfg(stack, tmp_path, name="m.yaml", **overrides):
    return load_model_config(
        write_yaml(tmp_path / name, {"custom_imports": ["minigpt4.testing"], "model": tiny_model_section(stack, ckpt=None, **overrides)})
    )


def images(n=3, seed=0):
    return torch.randn(n, 3, 56, 56, generator=torch.Generator().manual_seed(seed))


def adapter_names(model):
    return sorted(n for n, p in model.named_parameters() if p.requires_grad and ".lora_" in n)


def test_lora_settings_default_to_minigpt_v2_and_bad_ones_are_refused(tiny_stack, tmp_path):
    assert model_cfg(tiny_stack, tmp_path).lora is None  # projection only unless asked
    assert OmegaConf.to_container(model_cfg(tiny_stack, tmp_path, lora={}).lora) == {
        "r": 64,
        "alpha": 16,
        "dropout": 0.05,
        "target_modules": ["q_proj", "v_proj"],
    }
    assert model_cfg(tiny_stack, tmp_path, lora={"r": 8}).lora.alpha == 16

    with pytest.raises(ConfigError) as e:
        model_cfg(tiny_stack, tmp_path, "bad.yaml", lora={"target_modules": ["q_proj", "qproj"]})
    assert (
        f"model.lora.target_modules in {tmp_path / 'bad.yaml'}: 'qproj' matches no linear module of the LLM "
        "(LlamaForCausalLM); its linear modules are: down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, "
        "up_proj, v_proj"
    ) in str(e.value)
    with pytest.raises(ConfigError, match=r"model.lora in .*: LoRA adapts a frozen LLM, but model.freeze_llm is false"):
        model_cfg(tiny_stack, tmp_path, lora={}, freeze_llm=False)
    with pytest.raises(ConfigError) as e:
        model_cfg(tiny_stack, tmp_path, lora={"r": 0, "dropout": 1.5, "rank": 4})
    for text in (
        "model.lora.r in",
        "expected a value >= 1, got 0",
        "model.lora.dropout in",
        "expected a dropout probability in [0, 1), got 1.5",
        "model.lora.rank in",
        "Allowed keys: alpha, dropout, r, target_modules",
    ):
        assert text in str(e.value)


def test_fresh_adapters_leave_the_model_as_it_was_and_only_they_and_llama_proj_train(tiny_stack, tmp_path, caplog):
    caplog.set_level("INFO", logger="minigpt4")
    plain = minigpt4.build_model(model_cfg(tiny_stack, tmp_path))
    adapted = minigpt4.build_model(model_cfg(tiny_stack, tmp_path, lora=LORA))
    assert "trainable parameters: 6,208 (llama_proj 4,160 + LoRA adapters 2,048 (r 4 on q_proj, v_proj))" in caplog.text
    layers = range(2)
    assert adapter_names(adapted) == sorted(
        f"llama_model.base_model.model.model.layers.{i}.self_attn.{m}.lora_{ab}.default.weight"
        for i in layers
        for m in ("q_proj", "v_proj")
        for ab in "AB"
    )
    assert {n for n, p in adapted.named_parameters() if p.requires_grad} - set(adapter_names(adapted)) == {
        "llama_proj.weight",
        "llama_proj.bias",
    }
    batch = {"image": images(2), "instruction_input": [INSTRUCTION] * 2, "answer": ["a red circle", "a blue square"]}
    assert torch.equal(plain(batch)["loss"], adapted(batch)["loss"])  # lora_B starts at zero
    assert plain.generate(images(), [INSTRUCTION] * 3, 6) == adapted.generate(images(), [INSTRUCTION] * 3, 6)
    again = minigpt4.build_model(model_cfg(tiny_stack, tmp_path, lora=LORA))  # lora_A from a fixed seed
    assert all(torch.equal(a, b) for a, b in zip(adapted.trainable_state_dict().values(), again.trainable_state_dict().values()))


def test_llm_grad_checkpoint_recomputes_each_layer_and_gives_the_same_gradients(tiny_stack, tmp_path):
    batch = {"image": images(2), "instruction_input": [INSTRUCTION] * 2, "answer": ["a red circle", "a blue square"]}
    for lora in (None, {**LORA, "dropout": 0.0}):
        grads, calls = [], []
        for checkpointing in (False, True):
            model = minigpt4.build_model(model_cfg(tiny_stack, tmp_path, lora=lora, llm_grad_checkpoint=checkpointing))
            mlp = next(m for n, m in model.llama_model.named_modules() if n.endswith("layers.0.mlp"))
            count: list[int] = []  # a hook inside the layer: the recomputation calls the layer's forward, not the
            # layer itself; a pre-hook, as the recomputation stops inside the MLP once it has what it needs
            mlp.register_forward_pre_hook(lambda *_, c=count: c.append(1))
            model.train()
            model(batch)["loss"].backward()
            calls.append(len(count))
            grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
        assert calls == [1, 2], (lora, calls)  # with checkpointing the backward pass runs the layer again
        for k in grads[0]:
            torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-5, atol=1e-7)


def _train(cfg, run_dir):
    dist.seed_everything(cfg.run.seed)
    runner = build_runner(cfg, run_dir)
    return runner, runner.train()


def test_a_lora_checkpoint_holds_projection_and_adapters_and_resumes_bit_identical(tiny_stack, synthetic_flickr, tmp_path):
    """Training with the feature cache: the checkpoint is llama_proj + adapters only (kilobytes against
    the LLM's weights), the LLM's own weights do not move, and stopping after epoch 0 then resuming
    ends with exactly the weights of the uninterrupted run (the adapters' dropout RNG included)."""
    lora = [f"model.lora.{k}={v}" for k, v in LORA.items() if k != "target_modules"]
    common = options(tiny_stack, synthetic_flickr, tmp_path, iters_per_epoch=4, batch_size_train=2, max_epoch=2) + lora
    reference, records = _train(minigpt4.load_config(TINY_CFG, common), tmp_path / "reference")
    assert records[1]["feature_cache"]["hits"] > 0  # the frozen vision stack's outputs were cached and read
    model = reference.model_without_ddp
    ckpt = load_checkpoint(tmp_path / "reference" / "checkpoint_1.pth")
    assert sorted(ckpt["model"]) == sorted(["llama_proj.weight", "llama_proj.bias", *adapter_names(model)])
    assert all(ckpt["model"][n].abs().sum() > 0 for n in adapter_names(model) if ".lora_B." in n)  # they trained
    llm_bytes = sum(
        p.numel() * p.element_size() for n, p in model.named_parameters() if not p.requires_grad and n.startswith("llama_model.")
    )
    weights = sum(v.numel() * v.element_size() for v in ckpt["model"].values())
    assert weights == (4160 + 2048) * 4 and weights < llm_bytes / 10
    base = load_file(f"{tiny_stack['llama_model']}/model.safetensors")
    own = model.llama_model.get_base_model().state_dict()
    for k, v in base.items():  # the LLM's weights themselves did not move
        name = k.replace("q_proj.weight", "q_proj.base_layer.weight").replace("v_proj.weight", "v_proj.base_layer.weight")
        assert torch.equal(own[name], v), k

    _train(minigpt4.load_config(TINY_CFG, common + ["run.stop_after_epoch=0"]), tmp_path / "resumed")
    resume = f"run.resume_ckpt_path={tmp_path / 'resumed' / 'checkpoint_0.pth'}"
    _train(minigpt4.load_config(TINY_CFG, common + [resume]), tmp_path / "resumed")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoint_1.pth")["model"]
    assert sorted(resumed) == sorted(ckpt["model"])
    for k, v in ckpt["model"].items():
        assert torch.equal(resumed[k], v), k


def _adapted_checkpoint(stack, tmp_path):
    """A LoRA model with moved adapters and projection, its config file and its checkpoint file."""
    cfg_path, ckpt = tmp_path / "run.yaml", tmp_path / "checkpoint_3.pth"
    return adapted_lora_checkpoint(tiny_model_section(stack, lora=LORA), cfg_path, ckpt), cfg_path, ckpt


def test_export_merges_the_adapters_into_a_plain_llm_with_the_same_captions(tiny_stack, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    adapted, cfg_path, ckpt = _adapted_checkpoint(tiny_stack, tmp_path)
    out = tmp_path / "exported"
    assert minigpt4.cli.export(["--cfg-path", str(cfg_path), "--ckpt", str(ckpt), "--out", str(out)]) == 0
    assert f"model.llama_model={out / 'llm'} model.ckpt={out / 'llama_proj.pth'} model.lora=null" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".exported")) == []  # no partial folder
    saved = load_file(out / "llm" / "model.safetensors")
    assert not [k for k in saved if "lora" in k or "base_layer" in k]
    assert (out / "llm" / "tokenizer.json").is_file() or (out / "llm" / "tokenizer.model").is_file()
    plain_hf = AutoModelForCausalLM.from_pretrained(out / "llm", local_files_only=True)  # anyone with transformers
    assert type(plain_hf).__name__ == "LlamaForCausalLM"
    proj = torch.load(out / "llama_proj.pth", weights_only=True)
    assert sorted(proj) == ["model"] and sorted(proj["model"]) == ["llama_proj.bias", "llama_proj.weight"]

    exported_cfg = load_model_config(out / "model.yaml")
    assert exported_cfg.lora is None and exported_cfg.llama_model == str(out / "llm")
    assert exported_cfg.ckpt == str(out / "llama_proj.pth")
    rest = lambda c: {k: v for k, v in OmegaConf.to_container(c).items() if k not in ("llama_model", "ckpt", "lora")}  # noqa: E731
    assert rest(exported_cfg) == rest(load_model_config(cfg_path))  # the run's model otherwise
    merged = minigpt4.build_model(exported_cfg)
    fresh = minigpt4.build_model(load_model_config(cfg_path))  # the same projection, adapters at zero
    fresh.llama_proj.load_state_dict({k.split(".", 1)[1]: v for k, v in proj["model"].items()})
    batch = images(6, seed=3)
    captions = adapted.generate(batch, [INSTRUCTION] * 6, 8)
    assert merged.generate(batch, [INSTRUCTION] * 6, 8) == captions
    assert fresh.eval().generate(batch, [INSTRUCTION] * 6, 8) != captions  # the adapters do change the captions
    assert minigpt4.cli.export(["--cfg-path", str(cfg_path), "--ckpt", str(ckpt), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_a_checkpoint_with_adapters_on_a_model_without_them_says_what_to_do(tiny_stack, tmp_path):
    _, _, ckpt = _adapted_checkpoint(tiny_stack, tmp_path)
    plain = minigpt4.build_model(model_cfg(tiny_stack, tmp_path))
    with pytest.raises(
        WeightsError,
        match=r"holds LoRA adapters \(r=4 on q_proj, v_proj\) but this model has none: "
        r"set model.lora as in its training run",
    ):
        plain.load_checkpoint(ckpt)


def test_an_evaluation_takes_the_runs_lora_and_refuses_another(tiny_stack, tmp_path):
    run_cfg = write_yaml(tmp_path / "config.yaml", {"model": tiny_model_section(tiny_stack, ckpt=None, lora=LORA)})
    plain_run = write_yaml(tmp_path / "plain.yaml", {"model": tiny_model_section(tiny_stack, ckpt=None)})
    cfg = lambda **o: OmegaConf.create({"model": OmegaConf.to_container(model_cfg(tiny_stack, tmp_path, **o))})  # noqa: E731

    taken = cfg()
    adopt_training_lora(taken, run_cfg)
    assert OmegaConf.to_container(taken.model.lora) == LORA and training_mismatches(taken, run_cfg) == []
    assert training_mismatches(cfg(lora={**LORA, "dropout": 0.0}), run_cfg) == []  # dropout: training only
    other = cfg(lora={**LORA, "r": 8})
    adopt_training_lora(other, run_cfg)  # given: compared, not replaced
    assert [p.split(":")[0] for p in training_mismatches(other, run_cfg)] == ["model.lora"]
    assert [p.split(":")[0] for p in training_mismatches(cfg(lora=LORA), plain_run)] == ["model.lora"]
    old_run = yaml.safe_load(plain_run.read_text())
    old_run["model"].pop("lora", None)  # a run from before model.lora: projection only
    assert training_mismatches(cfg(), write_yaml(tmp_path / "old.yaml", old_run)) == []

    settings = lambda m: eval_settings(OmegaConf.to_container(m.model), "e", {}, "test", None, None, {}, "i", "p", "cpu")  # noqa: E731
    assert "lora" not in settings(cfg())["model"] and "llm_grad_checkpoint" not in settings(cfg())["model"]
    assert settings(taken)["model"]["lora"] == LORA  # a LoRA eval never shares results with a projection-only one


@pytest.mark.parametrize(
    "size, trainable",
    [("vicuna-7b", 3_149_824 + 33_554_432), ("vicuna-13b", 3_937_280 + 52_428_800), ("llama2-7b", 23_072_768 + 33_554_432)],
)
def test_memory_estimate_counts_the_official_sizes_with_minigpt_v2_adapters(size, trainable):
    """MiniGPT4 with r 64 adapters on q_proj and v_proj at each official size, on the meta device."""
    from minigpt4.benchmarks.memory import static_bytes

    st = static_bytes(size, True)
    assert st["trainable_params"] == trainable and st["trainable"] == 16 * trainable  # fp32 weight, grad, 2 moments
    assert st["llm"] == 2 * (6_738_415_616 if size != "vicuna-13b" else 13_015_864_320)  # bf16, adapters excluded


def test_activation_bytes_are_what_autograd_keeps(tiny_stack):
    """The memory benchmark's measurement on the tiny LLM: more layers and adapters keep more, a longer
    batch keeps proportionally more; the frozen weights themselves are not counted."""
    from transformers import LlamaForCausalLM

    from minigpt4.benchmarks.memory import saved_bytes
    from minigpt4.models.lora import add_adapters

    def llm(lora=False):
        m = LlamaForCausalLM.from_pretrained(tiny_stack["llama_model"]).to(torch.bfloat16).requires_grad_(False)
        return add_adapters(m, LORA) if lora else m

    plain, adapted = saved_bytes(llm(), 2, 16), saved_bytes(llm(True), 2, 16)
    weights = sum(p.numel() * p.element_size() for p in llm().parameters())
    assert 0 < plain < adapted and plain < weights
    assert saved_bytes(llm(), 4, 16) == pytest.approx(2 * plain, rel=0.05)


def test_export_of_a_projection_only_checkpoint_writes_the_projection_only(tiny_stack, tmp_path):
    cfg_path = write_yaml(
        tmp_path / "run.yaml", {"custom_imports": ["minigpt4.testing"], "model": tiny_model_section(tiny_stack, ckpt=None)}
    )
    written = export_job.export(cfg_path, tiny_stack["ckpt"], tmp_path / "out")
    assert sorted(written) == ["model_yaml", "projection"] and sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "llama_proj.pth",
        "model.yaml",
    ]
    exported = load_model_config(written["model_yaml"])
    assert exported.llama_model == tiny_stack["llama_model"] and exported.ckpt == str(written["projection"])
    original = torch.load(tiny_stack["ckpt"], weights_only=True)["model"]
    saved = torch.load(written["projection"], weights_only=True)["model"]
    assert all(torch.equal(saved[k], original[k]) for k in ("llama_proj.weight", "llama_proj.bias"))
