"""Check a model config's files in seconds, without reading a weight tensor: every problem at once,
each naming the file and the fix (``minigpt4-check``). Read are: safetensors headers, ``torch.load``
with ``mmap=True`` (shapes only), index files, ``config.json``, ``generation_config.json`` and the
tokenizer files."""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from minigpt4.errors import WeightsError

from .llm import load_tokenizer
from .minigpt4 import PATCHES_PER_TOKEN
from .qformer import PREFIX as QFORMER_PREFIX
from .qformer import qformer_config
from .variants import projection_mismatch_hint
from .vision import vision_config
from .weights import describe_unreadable

EVA_KEYS = ("cls_token", "pos_embed", "patch_embed.proj.weight")  # every official eva_vit_g.pth has these
BLIP2_KEYS = ("query_tokens", "ln_vision.weight")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
EMBED_KEY = "model.embed_tokens.weight"


@dataclass(frozen=True)
class Problem:
    file: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: {self.what}; {self.fix}"


@dataclass
class Report:
    problems: list[Problem]
    found: list[str]  # one line per file that is fine: what it holds


def shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a weights file (``{"model": ...}`` unwrapped), from its header or an mmap."""
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    return {k: tuple(v.shape) for k, v in obj.items() if isinstance(v, torch.Tensor)}


def complete(path: Path) -> str | None:
    """Why the file is truncated or unreadable (header against size), or None."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if path.suffix == ".safetensors":
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"truncated: {size} bytes"
            n = int.from_bytes(head, "little")
            try:
                header = json.loads(f.read(n))
            except ValueError:
                return "not a safetensors file (unreadable header)"
        end = 8 + n + max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return None if size >= end else f"truncated: {size:,} of {end:,} bytes"
    if not zipfile.is_zipfile(path):
        return "truncated or not a torch.save file: " + describe_unreadable(path, ValueError("no zip directory"))
    return None


def _shapes_or_problem(path: Path, key: str, problems: list[Problem]) -> dict[str, tuple[int, ...]] | None:
    why = complete(path)
    if why is None:
        try:
            return shapes(path)
        except Exception as e:  # noqa: BLE001 (any unreadable file is a problem to report)
            why = f"unreadable ({type(e).__name__}: {e})"
    problems.append(Problem(str(path), why, f"download it again ({key})"))
    return None


def check_llm(folder: Path, prompt_template: str, end_sym: str, problems: list[Problem], found: list[str]) -> dict[str, Any]:
    """The LLM folder: config, weight shards, tokenizer, generation config, family against template."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        problems.append(
            Problem(str(folder), "no config.json: not a Hugging Face model folder", "point model.llama_model at the merged LLM folder")
        )
        return {}
    config = json.loads(config_file.read_text())
    embed = _llm_weights(folder, problems)
    info = {"hidden_size": config.get("hidden_size"), "vocab_size": config.get("vocab_size")}
    try:
        tok = load_tokenizer(folder)
    except Exception as e:  # noqa: BLE001
        problems.append(
            Problem(
                str(folder),
                f"the tokenizer does not load ({type(e).__name__}: {e})",
                "copy tokenizer.model and its json files from the source repo",
            )
        )
        return info
    rows = embed[0] if embed else config.get("vocab_size")
    # more rows than tokens is legal (padded matrices), except Vicuna v0's 32001 under a 32000-token tokenizer
    if rows is not None and (len(tok) > rows or (rows - len(tok) == 1)):
        problems.append(
            Problem(
                str(folder),
                f"the tokenizer has {len(tok)} tokens but the embedding matrix {rows} rows",
                "use the tokenizer files of the same model (Vicuna v0: 32001 tokens with [PAD]; LLaMA and Vicuna v1: 32000)",
            )
        )
    gen_file = folder / "generation_config.json"
    if gen_file.is_file():
        gen = json.loads(gen_file.read_text())
        if "eos_token_id" in gen and gen["eos_token_id"] != tok.eos_token_id:
            problems.append(
                Problem(
                    str(gen_file),
                    f"eos_token_id {gen['eos_token_id']} differs from the tokenizer's {tok.eos_token_id} ({tok.eos_token!r})",
                    f'set "eos_token_id": {tok.eos_token_id} (and bos_token_id {tok.bos_token_id}) or delete the file',
                )
            )
    family = llm_family(config, folder)
    hashes = "###" in prompt_template or end_sym == "###"
    if hashes and family in ("llama2", "vicuna_v1"):
        problems.append(
            Problem(
                str(folder),
                f"a {family.replace('_', ' ')} LLM under the Vicuna v0 template ('###'): its answers come out garbled",
                "use Vicuna v0 (MiniGPT-4's LLM) or the Llama-2 variant's config (model_type llama2, template '[INST] {} [/INST] ')",
            )
        )
    if "[INST]" in prompt_template and family in ("vicuna_v0", "vicuna_v1"):
        problems.append(
            Problem(
                str(folder), f"a {family.replace('_', ' ')} LLM under the Llama-2 template", "use Llama-2-7b-chat-hf, or the Vicuna config"
            )
        )
    found.append(
        f"LLM {folder}: hidden {info['hidden_size']}, vocab {rows}, tokenizer {len(tok)} (EOS {tok.eos_token_id}), family {family}"
    )
    return info


def llm_family(config: dict, folder: Path) -> str:
    """``llama2``, ``vicuna_v1``, ``vicuna_v0`` or ``llama`` from the config's name and sizes."""
    name = str(config.get("_name_or_path", "")) + " " + folder.name
    tok_cfg = folder / "tokenizer_config.json"
    template = json.loads(tok_cfg.read_text()).get("chat_template") or "" if tok_cfg.is_file() else ""
    if re.search(r"vicuna.*v1\.\d", name, re.I) or "USER:" in str(template):
        return "vicuna_v1"
    if re.search(r"llama-?2", name, re.I) or "[INST]" in str(template) or config.get("max_position_embeddings") == 4096:
        return "llama2"
    if config.get("vocab_size") == 32001 or re.search(r"vicuna", name, re.I):
        return "vicuna_v0"
    return "llama"


def _llm_weights(folder: Path, problems: list[Problem]) -> tuple[int, ...] | None:
    """Check every weight file of the folder; the embedding matrix's shape when found."""
    index = next((folder / n for n in INDEX_FILES if (folder / n).is_file()), None)
    if index is not None:
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        files = sorted(set(weight_map.values()))
    else:
        files = [n for n in SINGLE_FILES if (folder / n).is_file()]
        if not files:
            problems.append(
                Problem(str(folder), "no weights (model.safetensors, pytorch_model.bin or an index)", "download the LLM's weight files")
            )
            return None
    embed = None
    for name in files:
        path = folder / name
        why = complete(path)
        if why is not None:
            problems.append(Problem(str(path), why, f"download it again{f' (listed in {index.name})' if index else ''}"))
            continue
        if path.suffix == ".safetensors":
            embed = shapes(path).get(EMBED_KEY, embed)
    return embed


def check_model(cfg: Any) -> Report:
    """Every problem of a validated ``model`` config section's files, and what each good file holds."""
    problems: list[Problem] = []
    found: list[str] = []
    llm = check_llm(Path(cfg.llama_model), cfg.prompt_template, cfg.end_sym, problems, found) if cfg.get("llama_model") else {}
    vit = vision_config(cfg.image_size, cfg.get("vit_config") or {})
    has_qformer = cfg.get("has_qformer", True)
    if cfg.get("vit_ckpt"):
        keys = _shapes_or_problem(Path(cfg.vit_ckpt), "model.vit_ckpt", problems)
        if keys is not None:
            _layout(cfg.vit_ckpt, keys, EVA_KEYS, "EVA-ViT-G (LAVIS eva_vit_g.pth)", "model.vit_ckpt", problems, found)
    if has_qformer and cfg.get("q_former_model"):
        keys = _shapes_or_problem(Path(cfg.q_former_model), "model.q_former_model", problems)
        if keys is not None and not any(k.startswith(QFORMER_PREFIX) for k in keys):
            problems.append(_not_layout(cfg.q_former_model, keys, "BLIP-2 (LAVIS blip2_pretrained_flant5xxl.pth)", "model.q_former_model"))
        elif keys is not None:
            _layout(
                cfg.q_former_model,
                keys,
                BLIP2_KEYS,
                "BLIP-2 (LAVIS blip2_pretrained_flant5xxl.pth)",
                "model.q_former_model",
                problems,
                found,
            )
    if cfg.get("ckpt"):
        keys = _shapes_or_problem(Path(cfg.ckpt), "model.ckpt", problems)
        proj = keys.get("llama_proj.weight") if keys is not None else None
        if keys is not None and proj is None:
            problems.append(
                Problem(cfg.ckpt, "no llama_proj.weight: not a MiniGPT-4 checkpoint", "use a MiniGPT-4 checkpoint for model.ckpt")
            )
        elif proj is not None:
            width = (
                qformer_config(vit.hidden_size, cfg.get("qformer_config") or {}).hidden_size
                if has_qformer
                else PATCHES_PER_TOKEN * vit.hidden_size
            )
            own = (llm.get("hidden_size") or proj[0], width)
            hint = projection_mismatch_hint(proj, own, "Q-Former" if has_qformer else f"{PATCHES_PER_TOKEN} ViT patches")
            if hint:
                problems.append(Problem(cfg.ckpt, hint, "pick the checkpoint of your LLM and model_type (README's checkpoint table)"))
            else:
                found.append(f"checkpoint {cfg.ckpt}: llama_proj {proj[1]} -> {proj[0]}")
    return Report(problems, found)


def _layout(path: str, keys: dict, required: tuple[str, ...], what: str, key: str, problems: list[Problem], found: list[str]) -> None:
    if all(k in keys for k in required):
        found.append(f"{what} {path}: {len(keys)} tensors")
    else:
        problems.append(_not_layout(path, keys, what, key))


def _not_layout(path: str, keys: dict, what: str, key: str) -> Problem:
    sample = sorted(keys)[:4]
    return Problem(path, f"not the official {what} layout (keys like {sample})", f"give {key} the official file, not a converted one")


def against_manifest(cfg: Any, artefacts: list, with_hash: bool = False) -> list[Problem]:
    """The model's files that a manifest artefact names (same file name): their size, and with
    ``with_hash`` their sha256, against the manifest's."""
    from minigpt4.download.fetch import sha256_of

    by_name = {Path(a.file).name: a for a in artefacts if a.hf is None}
    problems = []
    for key in ("vit_ckpt", "q_former_model", "ckpt"):
        path = Path(cfg.get(key) or "")
        a = by_name.get(path.name)
        if a is None or not path.is_file():
            continue
        size = path.stat().st_size
        if a.size is not None and size != a.size:
            problems.append(
                Problem(
                    str(path), f"{size:,} bytes, the manifest says {a.size:,}", f"download it again (minigpt4-download --only {a.name})"
                )
            )
        elif with_hash and a.sha256 and sha256_of(path) != a.sha256:
            problems.append(
                Problem(str(path), f"sha256 is not the manifest's {a.sha256}", f"download it again (minigpt4-download --only {a.name})")
            )
    return problems


def problems_error(problems: list[Problem], source: str) -> WeightsError:
    lines = "\n  - ".join(str(p) for p in problems)
    return WeightsError(f"{len(problems)} problem(s) with the files of {source} (minigpt4-check lists them too):\n  - {lines}")


def raise_problems(cfg: Any, source: str = "the model config") -> None:
    """``minigpt4-check``'s check, which train, eval, caption and chat also run first: a
    ``WeightsError`` listing every problem."""
    if problems := check_model(cfg).problems:
        raise problems_error(problems, source)
