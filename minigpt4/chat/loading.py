"""Load a model for chatting exactly as the evaluation loads it: the evaluation config (``--options``
applied), a checkpoint or a run folder's checkpoints, LoRA settings from the run's ``config.yaml``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from minigpt4.config import load_config
from minigpt4.errors import ChatError
from minigpt4.evaluation.caption_images import adopt_lora
from minigpt4.evaluation.plan import resolve_checkpoints
from minigpt4.models.preflight import raise_problems
from minigpt4.registry import MODELS
from minigpt4.run_dir import CONFIG, PRETRAINED, list_checkpoints, result_name
from minigpt4.utils import dist

from .engine import ChatEngine


def run_catalogue(run_dir: str | Path) -> dict[str, str | None]:
    """``pretrained`` and the run folder's ``checkpoint_<epoch>.pth`` files, by name, in epoch order."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ChatError(f"run folder not found: {run_dir}")
    found = {result_name(p): str(p.resolve()) for _, p in list_checkpoints(run_dir)}
    if not found:
        raise ChatError(f"{run_dir}: no checkpoint_<epoch>.pth in this run folder")
    return {PRETRAINED: None, **found}


def catalogue(ckpt: str = PRETRAINED, run_dir: str | None = None) -> tuple[dict[str, str | None], str]:
    """(checkpoints by name, the one chosen first): a run folder's (its latest first), or ``pretrained``
    and ``ckpt`` (a file, or a run folder meaning its latest checkpoint)."""
    if run_dir is None and ckpt != PRETRAINED and Path(ckpt).is_dir():
        run_dir = ckpt
    if run_dir is not None:
        found = run_catalogue(run_dir)
        return found, list(found)[-1]
    if ckpt == PRETRAINED:
        return {PRETRAINED: None}, PRETRAINED
    return {PRETRAINED: None, result_name(ckpt): str(Path(ckpt).expanduser().resolve())}, result_name(ckpt)


def load_engine(
    cfg_path: str,
    ckpt: str = PRETRAINED,
    options: Sequence[str] = (),
    run_dir: str | None = None,
    train_config: str | None = None,
    device: str | None = None,
    load_8bit: bool = False,
) -> ChatEngine:
    """The model of ``cfg_path`` with the chosen checkpoint loaded (``catalogue``); ``device`` overrides
    ``run.device``; ``load_8bit`` loads the LLM in 8-bit (``model.low_resource``, needs CUDA)."""
    extra = ([f"run.device={device}"] if device else []) + (["model.low_resource=true"] if load_8bit else [])
    cfg = load_config(cfg_path, [*options, *extra], evaluation=True)
    raise_problems(cfg.model, cfg_path)  # minigpt4-check: seconds, before any weight is read
    checkpoints, first = catalogue(ckpt, run_dir)
    spec = PRETRAINED if first == PRETRAINED else checkpoints[first]
    (chosen,) = resolve_checkpoints([spec], cfg)  # missing, unreadable, no llama_proj: an error now
    if run_dir is not None and train_config is None and (Path(run_dir) / CONFIG).is_file():
        train_config = str(Path(run_dir) / CONFIG)
    adopt_lora(cfg, chosen, train_config)
    info_device = dist.resolve_device(cfg.run.device)
    dist.seed_everything(cfg.run.seed)
    model = MODELS.build(cfg.model.arch, cfg.model, device=info_device)
    return ChatEngine(model, cfg, checkpoints, first)
