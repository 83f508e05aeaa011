"""The evaluation job: caption a split with one or more checkpoints, score the captions, and for a
run folder write the summary, all in one process (or one per rank under torchrun).

    minigpt4-eval RUN_DIR --cfg-path EVAL.yaml [--limit N] [--split S] [--options k=v ...]
        the baseline (``pretrained``) and every RUN_DIR/checkpoint_<epoch>.pth not yet scored, into
        RUN_DIR/eval/ (RUN_DIR/eval_limit<N>/ with --limit), then summary.{csv,md,png} there
    minigpt4-eval --cfg-path EVAL.yaml --save-path DIR [--ckpt PATH ...] [--limit N] [--split S]
        the given checkpoints (``pretrained`` = the config's own ``model.ckpt``; the default) into DIR

``evaluate.sh RUN_DIR`` runs the first form; ``eval_scripts/eval_flickr30k.py`` the second. The model
is built once and each checkpoint loaded into it; captions are generated on every rank and gathered
on rank 0, which scores them with one METEOR process for the whole job and writes
``<dir>/<name>/captions.json`` (caption and references per image) and ``metrics.json``.
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from minigpt4.config import load_config, read_yaml
from minigpt4.errors import EvalError
from minigpt4.evaluation.generation import select
from minigpt4.evaluation.scoring import CaptionScorer, check_java, check_writable
from minigpt4.evaluation.summary import write_summary
from minigpt4.models.weights import load_parameters
from minigpt4.registry import MODELS, TASKS
from minigpt4.run_dir import (
    CAPTIONS_JSON,
    CONFIG,
    METRICS_JSON,
    PRETRAINED,
    checkpoint_epoch,
    eval_dir,
    pending,
    result_name,
    run_checkpoints,
)
from minigpt4.utils import dist
from minigpt4.utils.io import atomic_write_json
from minigpt4.utils.logging import setup_logger

log = logging.getLogger("minigpt4")

# Model keys that decide what a checkpoint's projection means (or what the baseline is) and must
# match between training and evaluation; the rest (dtypes, max_txt_len, freezing) do not.
COMPARED_MODEL_KEYS = ("arch", "model_type", "llama_model", "vit_ckpt", "q_former_model", "ckpt", "image_size",
                       "num_query_token", "end_sym", "prompt_template", "vit_config", "qformer_config")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Caption a split with MiniGPT-4 checkpoints and score it (BLEU, "
                                             "METEOR, ROUGE-L, CIDEr).")
    ap.add_argument("run_dir", nargs="?", default=None,
                    help="training run folder: evaluate pretrained + every checkpoint not yet scored, then summarise")
    ap.add_argument("--cfg-path", required=True, help="evaluation config (model + evaluation_datasets + run)")
    ap.add_argument("--ckpt", action="append", default=None, metavar="PATH",
                    help="without RUN_DIR: checkpoint to evaluate; repeat for several (one METEOR start-up for "
                         "all). 'pretrained' (the default) = the config's model.ckpt")
    ap.add_argument("--save-path", default=None, help="without RUN_DIR: results go to <save-path>/<name>/")
    ap.add_argument("--split", default=None, help="split to score (default: the dataset entry's split)")
    ap.add_argument("--limit", type=_positive, default=None,
                    help="score only the first N images (CIDEr is then not comparable with the full split)")
    ap.add_argument("--train-config", default=None, metavar="RUN_DIR/config.yaml",
                    help="the training run's config: warn where its model section differs from the eval config's "
                         "(default with RUN_DIR: RUN_DIR/config.yaml)")
    ap.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    args = ap.parse_args(argv)
    if (args.run_dir is None) == (args.save_path is None):
        ap.error("give either RUN_DIR or --save-path DIR")
    if args.run_dir is not None and args.ckpt:
        ap.error("--ckpt is for --save-path; with RUN_DIR every checkpoint of the run is evaluated")
    return args


def resolve_checkpoints(specs: list[str], cfg: DictConfig) -> list[tuple[str, str, str | None]]:
    """``(name, spec, file)`` per checkpoint; every file must exist and names must be unique.
    ``pretrained``'s file is ``model.ckpt`` (None when null: the freshly initialised projection)."""
    out, seen = [], {}
    for spec in specs:
        if spec == PRETRAINED:
            file = cfg.model.get("ckpt")  # None: the fresh llama_proj (fixed seed) training starts from
        else:
            file = str(Path(spec).expanduser().resolve())
            if not Path(file).is_file():
                raise EvalError(f"--ckpt {spec}: checkpoint file not found")
        name = result_name(spec)
        if name in seen:
            raise EvalError(f"--ckpt {spec} and --ckpt {seen[name]} would both write to <save-path>/{name}/")
        seen[name] = spec
        out.append((name, spec if spec == PRETRAINED else file, file))
    return out


def training_mismatches(cfg: DictConfig, train_config: str | Path) -> list[str]:
    """Model settings where the eval config differs from a training run's ``config.yaml``
    (``ckpt`` included: the eval baseline should be the projection the run started from)."""
    model_t = read_yaml(train_config).get("model") or {}
    model_e = OmegaConf.to_container(cfg.model, resolve=True)
    return [f"model.{k}: training {model_t[k]!r}, evaluation {model_e.get(k)!r}"
            for k in COMPARED_MODEL_KEYS if k in model_t and model_t[k] != model_e.get(k)]


def limit_note(limit: int | None, scored: int, total: int) -> str | None:
    if limit is None:
        return None
    if scored >= total:
        return f"--limit {limit} covers the whole split ({total} images): scores are comparable with the full split"
    return (f"scored the first {scored} of {total} images (--limit {limit}): CIDEr's idf (and corpus-level BLEU) "
            "depend on the scored set, so these scores are not comparable with the full split")


def _plan(args: argparse.Namespace) -> tuple[list[str], Path, Path | None]:
    """(checkpoint specs to evaluate, results folder, training config or None)."""
    if args.run_dir is None:
        return list(args.ckpt or [PRETRAINED]), Path(args.save_path), args.train_config
    results = eval_dir(args.run_dir, args.limit)
    plan = None
    if dist.is_main_process():
        checkpoints = run_checkpoints(args.run_dir)
        plan = (len(checkpoints), pending(args.run_dir, args.limit, results, checkpoints))
    count, todo = dist.broadcast_object(plan)
    log.info("%s: %d checkpoint(s) + pretrained, %d to evaluate", args.run_dir, count, len(todo))
    train_config = args.train_config or Path(args.run_dir) / CONFIG
    return todo, results, (train_config if Path(train_config).is_file() else None)


def evaluate(cfg: DictConfig, ckpts: list[tuple[str, str, str | None]], save_path: Path, split: str | None,
             limit: int | None, info: dist.DistInfo) -> list[Path]:
    """Generate and score every checkpoint; returns the metrics.json paths written (rank 0) or ``[]``."""
    task = TASKS.build(cfg.run.task, cfg.run)
    full, entry_name, split = task.build_eval_split(cfg, split)
    dataset = select(full, limit)
    if len(dataset) == 0:
        raise EvalError(f"split {split!r} of evaluation_datasets.{entry_name} has no images")
    dist.seed_everything(cfg.run.seed)
    scorer = CaptionScorer() if info.is_main else None  # METEOR's JVM starts while the model loads
    written = []
    try:
        model = MODELS.build(cfg.model.arch, cfg.model, device=info.device)
        built = model.trainable_state_dict()  # "pretrained": model.ckpt, or the fresh projection
        instruction = task.instruction(model, cfg.run)
        prompt = model.template.wrap(instruction)
        log.info("evaluating %d checkpoint(s) on %d %s images, %d rank(s); prompt %r, stop at %r",
                 len(ckpts), len(dataset), split, info.world_size, prompt, model.end_sym)
        for name, spec, file in ckpts:
            if spec == PRETRAINED:
                load_parameters(model, built, "the built model")
            else:
                model.load_checkpoint(file)
            t0 = time.time()
            results = task.generate(model, dataset, cfg.run, desc=f"{name} [{split}]")
            t_gen = time.time() - t0
            if not info.is_main:
                continue
            t0 = time.time()
            scores = task.score(results, scorer)
            t_score = time.time() - t0
            out = save_path / name
            atomic_write_json(out / CAPTIONS_JSON, [{k: r[k] for k in ("image_id", "image", "caption", "references")}
                                               for r in results])
            record = _metrics_record(cfg, name, spec, file, split, entry_name, len(results), len(full), limit,
                                     scores, scorer, model, instruction, prompt, info.world_size, t_gen, t_score)
            atomic_write_json(out / METRICS_JSON, record)
            written.append(out / METRICS_JSON)
            log.info("%s: %s (generate %.1fs, score %.1fs) -> %s", name,
                     " ".join(f"{k} {v:.4f}" for k, v in scores.items()), t_gen, t_score, out)
    finally:
        if scorer is not None:
            scorer.close()
    return written


def _metrics_record(cfg: DictConfig, name: str, spec: str, file: str | None, split: str, entry_name: str,
                    scored: int, total: int, limit: int | None, scores: dict[str, float], scorer: CaptionScorer,
                    model: Any, instruction: str, prompt: str, world_size: int, t_gen: float,
                    t_score: float) -> dict[str, Any]:
    return {
        "name": name, "checkpoint": spec, "checkpoint_file": file,
        "checkpoint_note": None if file else (
            "model.ckpt is null: the fresh llama_proj (MiniGPT4.reset_projection's fixed seed), "
            "the projection a training run without model.ckpt starts from"),
        "epoch": checkpoint_epoch(spec),
        "split": split, "dataset": entry_name, "num_images": scored, "split_size": total,
        "limit": limit, "limit_note": limit_note(limit, scored, total),
        "scores": scores, "spice": scorer.spice_note,
        "prompt_template": model.prompt_template, "instruction": instruction, "prompt": prompt,
        "stop_string": model.end_sym,
        "generation": {"max_new_tokens": cfg.run.max_new_tokens, "num_beams": cfg.run.num_beams,
                       "do_sample": False, "batch_size_eval": cfg.run.batch_size_eval},
        "world_size": world_size, "seconds": {"generate": round(t_gen, 2), "score": round(t_score, 2)},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """The job; returns the metrics.json paths written (rank 0). Errors are ``UserError``s."""
    args = parse_args(argv)
    setup_logger(int(os.environ.get("RANK", 0)))
    check_java()  # before anything is built or generated
    check_writable()
    cfg = load_config(args.cfg_path, args.options)
    info = dist.init_distributed(cfg.run.device, cfg.run.dist_backend)
    specs, save_path, train_config = _plan(args)
    ckpts = resolve_checkpoints(specs, cfg)
    if train_config and info.is_main:
        for problem in training_mismatches(cfg, train_config):
            log.warning("eval config differs from %s: %s", train_config, problem)
    written = evaluate(cfg, ckpts, save_path, args.split, args.limit, info) if ckpts else []
    if args.run_dir is not None and info.is_main:
        out = write_summary(args.run_dir, save_path)
        print(out["md"].read_text())
        print("wrote " + ", ".join(str(p) for p in out.values()))
    dist.cleanup()
    return written
