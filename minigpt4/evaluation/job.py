"""The evaluation job's work: generate and score every pending checkpoint of a ``Plan``
(``evaluation.plan`` decides what is pending; ``minigpt4.commands.evaluate`` is the command).

The model is built once and each checkpoint loaded into it; captions are generated on every rank and
gathered on rank 0, which scores them with one METEOR process for the whole job and writes
``<dir>/<name>/captions.json`` (caption and references per image) and ``metrics.json``; it scores a
checkpoint in a background thread while the ranks generate the next one (``evaluation.background``).
A result of other settings is first set aside (``<name>/replaced-<time>/``).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from minigpt4.evaluation.background import BackgroundJobs
from minigpt4.evaluation.plan import Checkpoint, Plan
from minigpt4.models.weights import load_parameters
from minigpt4.registry import MODELS, TASKS
from minigpt4.run_dir import (
    CAPTIONS_JSON,
    FINGERPRINT,
    METRICS_JSON,
    PRETRAINED,
    REPLACED_PREFIX,
    RUN_NAME_FORMAT,
    checkpoint_epoch,
    read_metrics,
)
from minigpt4.tasks.captioning.generation import batch_size_eval
from minigpt4.tasks.captioning.scoring import CaptionScorer, shared_scorer
from minigpt4.utils import dist
from minigpt4.utils.io import atomic_write_json

log = logging.getLogger("minigpt4")


def limit_note(limit: int | None, scored: int, total: int) -> str | None:
    if limit is None:
        return None
    return (
        f"scored the first {scored} of {total} images (--limit {limit}): CIDEr's idf (and corpus-level BLEU) "
        "depend on the scored set, so these scores are not comparable with the full split"
    )


def _set_aside(out: Path, digest: str) -> Path | None:
    """Move an earlier result of other settings into ``out/replaced-<time>/``; returns that folder."""
    old = read_metrics(out)
    if old is None or (old.get(FINGERPRINT) or {}).get("digest") == digest:
        return None
    dest = out / f"{REPLACED_PREFIX}{datetime.now().strftime(RUN_NAME_FORMAT)}"
    dest.mkdir(exist_ok=True)
    for name in (METRICS_JSON, CAPTIONS_JSON):
        if (out / name).exists():
            (out / name).replace(dest / name)
    return dest


def evaluate(cfg: DictConfig, plan: Plan, info: dist.DistInfo, written: list[Path]) -> list[Path]:
    """Generate and score every pending checkpoint; appends the metrics.json paths written (rank 0)."""
    task = TASKS.build(cfg.run.task, cfg.run)
    dist.seed_everything(cfg.run.seed)
    scorer = shared_scorer() if info.is_main else None  # a new METEOR JVM starts while the model loads
    finished = False
    background = BackgroundJobs() if info.is_main else None  # scores a checkpoint while the next generates
    try:
        model = MODELS.build(cfg.model.arch, cfg.model, device=info.device)
        for c in plan.todo:  # every shape checked before anything is generated
            if c.spec != PRETRAINED:
                model.load_checkpoint(c.file, check_only=True)
        built = model.trainable_state_dict()  # "pretrained": model.ckpt, or the fresh projection
        log.info(
            "evaluating %d checkpoint(s) on %d %s images, %d rank(s); prompt %r, stop at %r",
            len(plan.todo),
            len(plan.dataset),
            plan.split,
            info.world_size,
            plan.prompt,
            model.end_sym,
        )
        shared = not any(c.vision for c in plan.todo)  # one encoding pass serves every checkpoint
        encoded = None
        for c in plan.todo:
            load_parameters(model, built, "the built model")  # a checkpoint without adapters gets fresh ones
            if c.spec != PRETRAINED:
                model.load_checkpoint(c.file)
            if encoded is None or not shared:
                encoded = task.encode(model, plan.dataset, cfg.run, use_cache=shared, desc=f"encoding [{plan.split}]")
                counts = dist.all_reduce_sum(
                    torch.tensor([encoded.encoded, encoded.hits], dtype=torch.float64, device=info.device)
                ).tolist()
                cache = {
                    "encoded": int(counts[0]),
                    "hits": int(counts[1]),
                    "shared_by": len(plan.todo) if shared else 1,
                    "folder": str(cfg.run.feature_cache) if cfg.run.feature_cache and shared else None,
                    "seconds": round(encoded.seconds, 2),
                }
                if info.is_main:
                    log.info(
                        "encoded %d images through the frozen vision stack, %d read from the feature cache (%.1fs)%s",
                        cache["encoded"],
                        cache["hits"],
                        encoded.seconds,
                        f"; shared by {len(plan.todo)} checkpoint(s)" if shared else "",
                    )
            t0 = time.time()
            results = task.generate(model, encoded, plan.instruction, cfg.run, desc=f"{c.name} [{plan.split}]")
            t_gen = time.time() - t0
            if info.is_main:
                background.submit(
                    partial(
                        _score_and_write,
                        cfg,
                        plan,
                        c,
                        results,
                        task,
                        scorer,
                        model,
                        info.world_size,
                        {"encode": cache["seconds"], "generate": round(t_gen, 2)},
                        cache,
                        written,
                    )
                )
        if background is not None:
            background.wait()
        finished = True
    finally:
        if background is not None:
            background.close()  # on an error or a signal: pending scoring dropped, the running one finished
        if scorer is not None and not finished:
            scorer.close()  # METEOR may be left mid-answer: the next job in this process starts a fresh one
    return written


def _score_and_write(
    cfg: DictConfig,
    plan: Plan,
    c: Checkpoint,
    results: list[dict[str, Any]],
    task: Any,
    scorer: CaptionScorer,
    model: Any,
    world_size: int,
    seconds: dict[str, float],
    feature_cache: dict[str, Any],
    written: list[Path],
) -> None:
    """Score one checkpoint's captions and write its captions.json and metrics.json (rank 0, in the
    background thread; it reads only the model's fixed settings while the next checkpoint loads)."""
    t0 = time.time()
    scores = task.score(results, scorer)
    seconds = {**seconds, "score": round(time.time() - t0, 2)}
    out = plan.save_path / c.name
    aside = _set_aside(out, c.fingerprint["digest"])
    if aside is not None:
        log.info("%s: the earlier result (other settings) is kept in %s", c.name, aside)
    atomic_write_json(out / CAPTIONS_JSON, [{k: r[k] for k in ("image_id", "image", "caption", "references")} for r in results])
    atomic_write_json(
        out / METRICS_JSON, _metrics_record(cfg, plan, c, len(results), scores, scorer, model, world_size, seconds, feature_cache)
    )
    written.append(out / METRICS_JSON)
    log.info(
        "%s: %s (generate %.1fs, score %.1fs) -> %s",
        c.name,
        " ".join(f"{k} {v:.4f}" for k, v in scores.items()),
        seconds["generate"],
        seconds["score"],
        out,
    )


def _metrics_record(
    cfg: DictConfig,
    plan: Plan,
    c: Checkpoint,
    scored: int,
    scores: dict[str, float],
    scorer: CaptionScorer,
    model: Any,
    world_size: int,
    seconds: dict[str, float],
    feature_cache: dict[str, Any],
) -> dict[str, Any]:
    return {
        "name": c.name,
        "checkpoint": c.spec,
        "checkpoint_file": c.file,
        "checkpoint_note": None
        if c.file
        else (
            "model.ckpt is null: the fresh llama_proj (MiniGPT4.reset_projection's fixed seed), "
            "the projection a training run without model.ckpt starts from"
        ),
        "epoch": checkpoint_epoch(c.spec),
        "split": plan.split,
        "dataset": plan.entry_name,
        "num_images": scored,
        "split_size": plan.split_size,
        "limit": plan.limit,
        "limit_note": limit_note(plan.limit, scored, plan.split_size),
        "scores": scores,
        "spice": scorer.spice_note,
        "prompt_template": model.prompt_template,
        "instruction": plan.instruction,
        "prompt": plan.prompt,
        "stop_string": model.end_sym,
        "generation": {
            "max_new_tokens": cfg.run.max_new_tokens,
            "num_beams": cfg.run.num_beams,
            "do_sample": False,
            "batch_size_eval": batch_size_eval(cfg.run, model.device),
        },
        "model_mismatch": plan.model_mismatch,
        "world_size": world_size,
        "seconds": seconds,
        "feature_cache": feature_cache,
        FINGERPRINT: c.fingerprint,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
