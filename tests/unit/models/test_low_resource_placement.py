"""low_resource: each rank's 8-bit LLM goes on the rank's own GPU (not every copy on GPU 0); an explicit
model.device_8bit is honoured for a single process only. Checked on the CPU: the placement rule is a
pure function, and load_llm's wiring is checked with from_pretrained and bitsandbytes stubbed."""

from __future__ import annotations

import logging
import types

import pytest
import torch

from minigpt4.models import llm as llm_module
from minigpt4.models.llm import gpu_for_8bit, load_llm


def test_a_single_process_uses_its_device_or_the_given_gpu():
    assert gpu_for_8bit(torch.device("cuda", 0), None, 1) == (0, None)
    assert gpu_for_8bit(torch.device("cuda"), None, 1) == (0, None)
    assert gpu_for_8bit(torch.device("cuda", 0), 1, 1) == (1, None)  # official: the demo's --gpu-id


@pytest.mark.parametrize("nproc", [2, 4])
def test_torchrun_ranks_each_load_on_their_own_gpu(nproc):
    assert [gpu_for_8bit(torch.device("cuda", r), None, nproc) for r in range(nproc)] == [(r, None) for r in range(nproc)]


@pytest.mark.parametrize("nproc", [2, 4])
def test_an_explicit_gpu_with_several_processes_is_reported_and_not_used(nproc):
    for rank in range(nproc):
        gpu, warning = gpu_for_8bit(torch.device("cuda", rank), 0, nproc)
        assert gpu == rank
        assert warning == (
            f"model.device_8bit: 0 applies to a single-process run only; with {nproc} processes each loads its "
            f"8-bit LLM on its own GPU (this one: cuda:{rank}); set it to null"
        )


def test_an_8bit_llm_needs_a_cuda_device():
    with pytest.raises(ValueError, match="needs a CUDA device, got cpu"):
        gpu_for_8bit(torch.device("cpu"), None, 1)


@pytest.fixture()
def stubbed_8bit(monkeypatch, tmp_path):
    """load_llm as on a GPU machine with bitsandbytes: returns the from_pretrained kwargs it would use."""
    import transformers

    calls: list[dict] = []

    def from_pretrained(path, **kwargs):
        calls.append(kwargs)
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(llm_module.importlib.util, "find_spec", lambda name: types.SimpleNamespace())
    monkeypatch.setattr(transformers, "BitsAndBytesConfig", lambda **kw: kw)
    monkeypatch.setattr(llm_module.LlamaForCausalLM, "from_pretrained", from_pretrained)
    (tmp_path / "config.json").write_text("{}")
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MINIGPT4_IGNORE_SLURM", "1")

    def load(device, device_8bit=None, env=None):
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        load_llm(tmp_path, torch.float16, device, low_resource=True, device_8bit=device_8bit)
        return calls[-1]["device_map"]

    return load


def test_load_llm_puts_each_torchrun_rank_on_its_own_gpu(stubbed_8bit, caplog):
    assert stubbed_8bit(torch.device("cuda", 0)) == {"": 0}
    assert stubbed_8bit(torch.device("cuda", 0), device_8bit=1) == {"": 1}
    for rank in range(4):
        env = {"RANK": str(rank), "WORLD_SIZE": "4", "LOCAL_RANK": str(rank)}
        assert stubbed_8bit(torch.device("cuda", rank), env=env) == {"": rank}
    with caplog.at_level(logging.WARNING, logger="minigpt4"):
        assert stubbed_8bit(torch.device("cuda", 3), device_8bit=0, env={"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "3"}) == {"": 3}
    assert "model.device_8bit: 0 applies to a single-process run only; with 4 processes" in caplog.text
