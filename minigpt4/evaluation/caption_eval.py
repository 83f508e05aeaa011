"""Caption a Flickr30k split with one or more checkpoints and score the captions.

``python eval_scripts/eval_flickr30k.py --cfg-path eval_configs/minigpt4_flickr_eval.yaml
--ckpt pretrained --ckpt RUN/checkpoint_0.pth --save-path RUN/eval [--split test] [--limit N]
[--options run.batch_size_eval=16 ...]`` (or the same under ``torchrun --nproc-per-node N``).

The model is built once; each ``--ckpt`` (``pretrained`` = the config's own ``model.ckpt``) is loaded
into it with ``model.load_checkpoint``, captions are generated on every rank and gathered on rank 0,
which scores them with one METEOR process for the whole job and writes
``<save-path>/<name>/captions.json`` and ``metrics.json`` (``<name>`` = ``pretrained`` or the
checkpoint's file stem).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from minigpt4.common.config import ConfigError, load_config
from minigpt4.evaluation.captioning import EvalDataError, generate_captions, references_of, select
from minigpt4.evaluation.rundir import PRETRAINED, checkpoint_epoch, checkpoint_name
from minigpt4.evaluation.scoring import ScoringSetupError, check_java, check_writable

log = logging.getLogger("minigpt4")


class EvalSetupError(ValueError):
    """A bad command line or config for evaluation (missing checkpoint, empty split, ...)."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Caption a Flickr30k split with MiniGPT-4 checkpoints and score it.")
    ap.add_argument("--cfg-path", required=True, help="evaluation config (model + evaluation_datasets + run)")
    ap.add_argument("--ckpt", action="append", default=None, metavar="PATH",
                    help="checkpoint to evaluate; repeat for several (one METEOR start-up for all). "
                         "'pretrained' (the default) = the config's model.ckpt")
    ap.add_argument("--save-path", required=True, help="output folder; results go to <save-path>/<name>/")
    ap.add_argument("--split", default=None, help="split to score (default: the dataset entry's split)")
    ap.add_argument("--limit", type=_positive, default=None,
                    help="score only the first N images (CIDEr is then not comparable with the full split)")
    ap.add_argument("--train-config", default=None, metavar="RUN_DIR/config.yaml",
                    help="the training run's config: warn where its model section differs from the eval config's")
    ap.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    return ap.parse_args(argv)


def resolve_checkpoints(specs: list[str], cfg: DictConfig) -> list[tuple[str, str, str | None]]:
    """``(name, spec, file)`` per ``--ckpt``; every file must exist and names must be unique.
    ``pretrained``'s file is ``model.ckpt`` (None when null: the freshly initialised projection)."""
    out, seen = [], {}
    for spec in specs:
        if spec == PRETRAINED:
            file = cfg.model.get("ckpt")  # None: the fresh llama_proj (fixed seed) training starts from
        else:
            file = str(Path(spec).expanduser().resolve())
            if not Path(file).is_file():
                raise EvalSetupError(f"--ckpt {spec}: checkpoint file not found")
        name = checkpoint_name(spec)
        if name in seen:
            raise EvalSetupError(f"--ckpt {spec} and --ckpt {seen[name]} would both write to <save-path>/{name}/")
        seen[name] = spec
        out.append((name, spec if spec == PRETRAINED else file, file))
    return out


def build_split(cfg: DictConfig, split: str | None) -> tuple[Any, str, str]:
    """The evaluation dataset of ``cfg.evaluation_datasets`` (exactly one entry): (dataset, entry, split)."""
    from minigpt4.common.registry import DATASETS

    entries = cfg.get("evaluation_datasets") or {}
    if len(entries) != 1:
        raise EvalSetupError(f"the config needs exactly one evaluation_datasets entry (e.g. flickr30k_eval), "
                             f"found {list(entries) or 'none'}")
    name, entry = next(iter(entries.items()))
    entry = OmegaConf.to_container(entry, resolve=True)
    if split is None:
        split = entry.get("split", "test")
    if "split" in entry:
        entry["split"] = split
    builder = DATASETS.get(entry["builder"]).from_config(entry, strict=True)
    datasets = builder.build_datasets()
    if split not in datasets:
        raise EvalSetupError(f"evaluation_datasets.{name} has no split {split!r} (has {sorted(datasets)})")
    return datasets[split], name, split


# Model keys that decide what a checkpoint's projection means (or what the baseline is) and must
# match between training and evaluation; the rest (dtypes, max_txt_len, freezing) do not.
COMPARED_MODEL_KEYS = ("arch", "model_type", "llama_model", "vit_ckpt", "q_former_model", "ckpt", "image_size",
                       "num_query_token", "end_sym", "prompt_template", "vit_config", "qformer_config")


def training_mismatches(cfg: DictConfig, train_config: str | Path) -> list[str]:
    """Model settings where the eval config differs from a training run's ``config.yaml``
    (``ckpt`` included: the eval baseline should be the projection the run started from)."""
    from minigpt4.common.config import read_yaml

    model_t = read_yaml(train_config).get("model") or {}
    model_e = OmegaConf.to_container(cfg.model, resolve=True)
    return [f"model.{k}: training {model_t[k]!r}, evaluation {model_e.get(k)!r}"
            for k in COMPARED_MODEL_KEYS if k in model_t and model_t[k] != model_e.get(k)]


def load_trainable(model: Any, state: dict[str, Any]) -> None:
    """Copy a ``trainable_state_dict()`` snapshot back into ``model``."""
    import torch

    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in state.items():
            params[k].copy_(v)


def limit_note(limit: int | None, scored: int, total: int) -> str | None:
    if limit is None:
        return None
    if scored >= total:
        return f"--limit {limit} covers the whole split ({total} images): scores are comparable with the full split"
    return (f"scored the first {scored} of {total} images (--limit {limit}): CIDEr's idf (and corpus-level BLEU) "
            "depend on the scored set, so these scores are not comparable with the full split")


def run(args: argparse.Namespace) -> list[Path]:
    """The evaluation job; returns the metrics.json paths written (rank 0) or ``[]``."""
    import minigpt4
    from minigpt4.common import dist
    from minigpt4.common.io import atomic_write_json
    from minigpt4.common.logging import setup_logger
    from minigpt4.evaluation.scoring import CaptionScorer

    setup_logger(int(os.environ.get("RANK", 0)))
    check_java()  # before anything is built or generated
    check_writable()
    cfg = load_config(args.cfg_path, args.options)
    ckpts = resolve_checkpoints(args.ckpt or [PRETRAINED], cfg)
    if args.train_config and int(os.environ.get("RANK", 0)) == 0:
        for problem in training_mismatches(cfg, args.train_config):
            log.warning("eval config differs from %s: %s", args.train_config, problem)
    full, entry_name, split = build_split(cfg, args.split)
    dataset = select(full, args.limit)
    if len(dataset) == 0:
        raise EvalSetupError(f"split {split!r} of evaluation_datasets.{entry_name} has no images")
    info = dist.init_distributed(cfg.run.device, cfg.run.dist_backend)
    dist.seed_everything(cfg.run.seed)
    scorer = CaptionScorer() if info.is_main else None  # METEOR's JVM starts while the model loads
    written = []
    try:
        model = minigpt4.build_model(cfg.model, device=info.device)
        built = model.trainable_state_dict()  # "pretrained": model.ckpt, or the fresh projection
        instruction = cfg.run.get("eval_instruction") or model.instructions[0]
        try:
            prompt = model.template.wrap(instruction)
            model.template.split(instruction)
        except ValueError as e:
            raise EvalSetupError(f"run.eval_instruction: {e}") from None
        log.info("evaluating %d checkpoint(s) on %d %s images, %d rank(s); prompt %r, stop at %r",
                 len(ckpts), len(dataset), split, info.world_size, prompt, model.end_sym)
        for name, spec, file in ckpts:
            if spec == PRETRAINED:
                load_trainable(model, built)
            else:
                model.load_checkpoint(file)
            t0 = time.time()
            results = generate_captions(model, dataset, instruction, cfg.run.batch_size_eval, cfg.run.max_new_tokens,
                                        cfg.run.num_beams, cfg.run.num_workers, desc=f"{name} [{split}]")
            t_gen = time.time() - t0
            if not info.is_main:
                continue
            preds, refs = references_of(results)
            t0 = time.time()
            scores = scorer.score(preds, refs)
            t_score = time.time() - t0
            out = Path(args.save_path) / name
            atomic_write_json(out / "captions.json",
                              [{"image_id": r["image_id"], "image": r["image"], "caption": r["caption"]} for r in results])
            record = {
                "name": name, "checkpoint": spec, "checkpoint_file": file,
                "checkpoint_note": None if file else (
                    "model.ckpt is null: the fresh llama_proj (MiniGPT4.reset_projection's fixed seed), "
                    "the projection a training run without model.ckpt starts from"),
                "epoch": checkpoint_epoch(spec),
                "split": split, "dataset": entry_name, "num_images": len(results), "split_size": len(full),
                "limit": args.limit, "limit_note": limit_note(args.limit, len(results), len(full)),
                "scores": scores, "spice": scorer.spice_note,
                "prompt_template": model.prompt_template, "instruction": instruction, "prompt": prompt,
                "stop_string": model.end_sym,
                "generation": {"max_new_tokens": cfg.run.max_new_tokens, "num_beams": cfg.run.num_beams,
                               "do_sample": False, "batch_size_eval": cfg.run.batch_size_eval},
                "world_size": info.world_size, "seconds": {"generate": round(t_gen, 2), "score": round(t_score, 2)},
                "config": OmegaConf.to_container(cfg, resolve=True),
            }
            atomic_write_json(out / "metrics.json", record)
            written.append(out / "metrics.json")
            log.info("%s: %s (generate %.1fs, score %.1fs) -> %s", name,
                     " ".join(f"{k} {v:.4f}" for k, v in scores.items()), t_gen, t_score, out)
    finally:
        if scorer is not None:
            scorer.close()
    dist.cleanup()
    return written


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from minigpt4.datasets import DataError

    try:
        run(args)
    except (ConfigError, ScoringSetupError, EvalSetupError, EvalDataError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
