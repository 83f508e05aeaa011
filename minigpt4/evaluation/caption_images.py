"""Caption your own image files as the evaluation would (``minigpt4-caption``).

    minigpt4-caption --cfg-path EVAL.yaml [--ckpt PATH] [--json FILE] IMAGE_OR_DIR ... [--options k=v ...]

Each image gets the caption ``minigpt4-eval`` gives it with the same config and checkpoint: the task's
instruction and prompt, the image processor of the ``evaluation_datasets`` entry (its builder's
``eval_dataset``), the task's ``encode`` (``run.feature_cache`` too) and ``generate`` (``run.max_new_tokens``,
``run.num_beams``, batches of ``batch_size_eval``), in the order given. A directory stands for the image
files directly in it (sorted by name; sub-folders are not searched). stdout gets one ``path<TAB>caption``
line per image (tabs and line breaks in a caption become spaces), stderr everything else. An unreadable
image is reported (``warning: cannot read IMAGE: reason``) and skipped; the others are still captioned and
the exit status is then 1.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from PIL import Image
from torch.utils.data import Dataset

from minigpt4.config import load_config
from minigpt4.datasets.caption_datasets import open_image
from minigpt4.datasets.records import CaptionRecord
from minigpt4.errors import EvalError
from minigpt4.evaluation.plan import Checkpoint, resolve_checkpoints
from minigpt4.evaluation.train_match import adopt_training_lora
from minigpt4.models.lora import ADAPTER_MARK, describe_adapters
from minigpt4.models.preflight import raise_problems
from minigpt4.registry import DATASETS, MODELS, TASKS
from minigpt4.run_dir import CONFIG, PRETRAINED
from minigpt4.tasks.captioning.generation import batch_size_eval
from minigpt4.utils import dist
from minigpt4.utils.prompt import PromptTemplate

log = logging.getLogger("minigpt4")
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")  # of a directory's files


def expand(paths: Sequence[str]) -> list[tuple[str, str | None]]:
    """Every image in order as (path, why it cannot be read or None); a folder gives its image files, sorted."""
    out: list[tuple[str, str | None]] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            found = sorted(c for c in p.iterdir() if c.is_file() and c.suffix.lower() in IMAGE_SUFFIXES)
            out += [(str(c), unreadable(c)) for c in found] or [(given, f"a folder without image files ({' '.join(IMAGE_SUFFIXES)})")]
        else:
            out.append((given, unreadable(p) if p.exists() else "no such file or directory"))
    return out


def unreadable(path: Path) -> str | None:
    """Why the image cannot be decoded (as the datasets open it), or None."""
    try:
        open_image(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def adopt_lora(cfg: DictConfig, ckpt: Checkpoint, train_config: str | None) -> None:
    """A checkpoint with LoRA adapters and no ``model.lora``: the run's settings, as the evaluation takes them."""
    if ckpt.file is None or cfg.model.get("lora") is not None:
        return
    state = MODELS.get(cfg.model.arch).read_checkpoint(ckpt.file)
    if not any(ADAPTER_MARK in k for k in state):
        return
    found = Path(ckpt.file).parent / CONFIG
    train_config = train_config or (str(found) if found.is_file() else None)
    if train_config is None:
        raise EvalError(
            f"{ckpt.file}: the checkpoint holds {describe_adapters(state)}, the config has no model.lora "
            f"and there is no {CONFIG} next to it: pass --train-config RUN_DIR/{CONFIG}, or set "
            "model.lora as in the training run with --options"
        )
    adopt_training_lora(cfg, train_config)


def image_dataset(cfg: DictConfig, files: list[str]) -> tuple[str, Dataset]:
    """(entry name, ``files`` as an eval dataset of the one ``evaluation_datasets`` entry's builder)."""
    entries = cfg.get("evaluation_datasets") or {}
    if len(entries) != 1:
        raise EvalError(
            f"the config needs exactly one evaluation_datasets entry (its vis_processor.eval prepares "
            f"the images), found {list(entries) or 'none'}"
        )
    name, entry = next(iter(entries.items()))
    builder = DATASETS.build(entry.builder, entry, strict=True)
    if not hasattr(builder, "eval_dataset"):
        raise EvalError(f"evaluation_datasets.{name}: builder {entry.builder!r} has no eval_dataset(records, source)")
    # absolute paths: the dataset's image root (the entry's image_path) does not apply to them
    records = [CaptionRecord(str(Path(f).absolute()), str(i), ()) for i, f in enumerate(files)]
    return name, builder.eval_dataset(records, "the command line")


def tsv_field(text: str) -> str:
    """``text`` on one TSV field: every whitespace character but the space becomes a space."""
    return re.sub(r"[^\S ]", " ", text)


def caption(
    cfg_path: str,
    images: Sequence[str],
    ckpt: str = PRETRAINED,
    options: Sequence[str] = (),
    train_config: str | None = None,
    json_path: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """([{"image", "caption"}] of the readable ``images`` in order, the number of paths skipped); warnings
    about unreadable images go to stderr. ``json_path`` is only checked here (its folder must exist)."""
    cfg = load_config(cfg_path, options, evaluation=True)
    raise_problems(cfg.model, cfg_path)  # minigpt4-check: seconds, before any weight is read
    if json_path is not None and not Path(json_path).absolute().parent.is_dir():
        raise EvalError(f"--json {json_path}: its folder does not exist")
    (checkpoint,) = resolve_checkpoints([ckpt], cfg)  # missing, unreadable, no llama_proj: an error now
    adopt_lora(cfg, checkpoint, train_config)
    task = TASKS.build(cfg.run.task, cfg.run)
    instruction = task.instruction(cfg)
    found = expand(images)
    readable = [path for path, why in found if why is None]
    for path, why in found:
        if why is not None:
            print(f"warning: cannot read {path}: {why}", file=sys.stderr)
    skipped = len(found) - len(readable)
    if not readable:
        return [], skipped
    name, dataset = image_dataset(cfg, readable)
    task.features.check({name: dataset}, "eval")
    info = dist.init_distributed(cfg.run.device, cfg.run.dist_backend)
    dist.seed_everything(cfg.run.seed)
    model = MODELS.build(cfg.model.arch, cfg.model, device=info.device)
    if checkpoint.spec != PRETRAINED:
        model.load_checkpoint(checkpoint.file)
    if checkpoint.file is None:
        log.info(
            "checkpoint: none (model.ckpt is null): the fresh llama_proj (MiniGPT4.reset_projection's fixed "
            "seed) that training starts from, i.e. an untrained projection"
        )
    else:
        log.info("checkpoint: %s%s", checkpoint.file, " (the config's model.ckpt)" if checkpoint.spec == PRETRAINED else "")
    log.info(
        "captioning %d image(s) on %s in batches of %d; prompt %r, stop at %r",
        len(readable),
        info.device,
        batch_size_eval(cfg.run, info.device),
        PromptTemplate(cfg.model.prompt_template).wrap(instruction),
        model.end_sym,
    )
    encoded = task.encode(model, dataset, cfg.run, use_cache=not checkpoint.vision, desc="encoding")
    results = task.generate(model, encoded, instruction, cfg.run, desc="captioning")
    dist.cleanup()
    return [{"image": readable[r["index"]], "caption": r["caption"]} for r in results], skipped
