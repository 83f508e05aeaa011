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

import argparse
import contextlib
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
from minigpt4.evaluation.job import Checkpoint, resolve_checkpoints
from minigpt4.evaluation.train_match import adopt_training_lora
from minigpt4.models.lora import ADAPTER_MARK, describe_adapters
from minigpt4.registry import DATASETS, MODELS, TASKS
from minigpt4.run_dir import CONFIG, PRETRAINED
from minigpt4.tasks.captioning.generation import batch_size_eval
from minigpt4.utils import dist, signals
from minigpt4.utils.io import atomic_write_json
from minigpt4.utils.logging import setup_logger
from minigpt4.utils.prompt import PromptTemplate

log = logging.getLogger("minigpt4")
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")  # of a directory's files
EXIT_SKIPPED = 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Caption image files with an evaluation config and a checkpoint, "
        "exactly as minigpt4-eval would; prints path<TAB>caption lines."
    )
    ap.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE_OR_DIR",
        help=f"image files, or folders: their {'/'.join(IMAGE_SUFFIXES)} files (not sub-folders)",
    )
    ap.add_argument("--cfg-path", required=True, help="evaluation config (model + evaluation_datasets + run)")
    ap.add_argument(
        "--ckpt",
        default=PRETRAINED,
        metavar="PATH",
        help="checkpoint to caption with (default: the config's model.ckpt; null = the fresh projection)",
    )
    ap.add_argument(
        "--train-config",
        default=None,
        metavar="RUN_DIR/config.yaml",
        help="the run's config, for the LoRA settings of a checkpoint with adapters (default: the config.yaml next to the checkpoint)",
    )
    ap.add_argument("--json", default=None, metavar="FILE", help='also write the captions to FILE: [{"image": path, "caption": text}, ...]')
    ap.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides (after the images)")
    return ap.parse_args(argv)


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


def caption(args: argparse.Namespace) -> tuple[list[dict[str, Any]], int]:
    """([{"image", "caption"}] of the readable images in order, the number of paths skipped)."""
    cfg = load_config(args.cfg_path, args.options, evaluation=True)
    if args.json is not None and not Path(args.json).absolute().parent.is_dir():
        raise EvalError(f"--json {args.json}: its folder does not exist")
    (ckpt,) = resolve_checkpoints([args.ckpt], cfg)  # missing, unreadable, no llama_proj: an error now
    adopt_lora(cfg, ckpt, args.train_config)
    task = TASKS.build(cfg.run.task, cfg.run)
    instruction = task.instruction(cfg)
    found = expand(args.images)
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
    if ckpt.spec != PRETRAINED:
        model.load_checkpoint(ckpt.file)
    if ckpt.file is None:
        log.info(
            "checkpoint: none (model.ckpt is null): the fresh llama_proj (MiniGPT4.reset_projection's fixed "
            "seed) that training starts from, i.e. an untrained projection"
        )
    else:
        log.info("checkpoint: %s%s", ckpt.file, " (the config's model.ckpt)" if ckpt.spec == PRETRAINED else "")
    log.info(
        "captioning %d image(s) on %s in batches of %d; prompt %r, stop at %r",
        len(readable),
        info.device,
        batch_size_eval(cfg.run, info.device),
        PromptTemplate(cfg.model.prompt_template).wrap(instruction),
        model.end_sym,
    )
    encoded = task.encode(model, dataset, cfg.run, use_cache=not ckpt.vision, desc="encoding")
    results = task.generate(model, encoded, instruction, cfg.run, desc="captioning")
    dist.cleanup()
    return [{"image": readable[r["index"]], "caption": r["caption"]} for r in results], skipped


def main(argv: Sequence[str] | None = None) -> int:
    """The command: exit status 0, or 1 when an image was skipped (``UserError``s are raised)."""
    args = parse_args(argv)
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr), signals.stop_signals():  # logs and progress: stderr
        setup_logger(dist.read_launch_env().rank)
        try:
            captions, skipped = caption(args)
        except signals.Interrupted as e:
            log.error("Interrupted by %s: no captions printed", e.name)
            return e.exit_code
        if args.json is not None:
            atomic_write_json(args.json, captions)
            log.info("wrote %d caption(s) to %s", len(captions), args.json)
        if skipped:
            log.warning("%d image path(s) skipped (see the warnings above)", skipped)
    for c in captions:
        print(f"{c['image']}\t{tsv_field(c['caption'])}", file=stdout)
    return EXIT_SKIPPED if skipped else 0
