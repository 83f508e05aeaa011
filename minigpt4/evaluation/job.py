"""The evaluation job: caption a split with one or more checkpoints, score the captions, and for a
run folder write the summary, all in one process (or one per rank under torchrun).

    minigpt4-eval RUN_DIR --cfg-path EVAL.yaml [--limit N] [--split S] [--options k=v ...]
        the baseline (``pretrained``) and every RUN_DIR/checkpoint_<epoch>.pth not yet scored, into
        RUN_DIR/eval/ (RUN_DIR/eval_limit<N>/ with --limit), then summary.{csv,md,png} there
    minigpt4-eval --cfg-path EVAL.yaml --save-path DIR [--ckpt PATH ...] [--limit N] [--split S]
        the given checkpoints (``pretrained`` = the config's own ``model.ckpt``; the default) into DIR

``evaluate.sh RUN_DIR`` runs the first form; ``eval_scripts/eval_flickr30k.py`` the second.

Everything the user gave is checked before any work: the config and ``--options``, the annotations
(unique ids), the eval model against the run's ``config.yaml``, every checkpoint file. A result is
reused only when its fingerprint (``evaluation.fingerprint``) equals the current one; otherwise it is
set aside (``<name>/replaced-<time>/``) and recomputed, and the log says what changed. The model is
built once and each checkpoint loaded into it; captions are generated on every rank and gathered on
rank 0, which scores them with one METEOR process for the whole job and writes
``<dir>/<name>/captions.json`` (caption and references per image) and ``metrics.json``; it scores a
checkpoint in a background thread while the ranks generate the next one (``evaluation.background``).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from minigpt4.config import load_config
from minigpt4.errors import EvalError, UserError
from minigpt4.evaluation.background import BackgroundJobs
from minigpt4.evaluation.fingerprint import changes, checkpoint_identity, digest, eval_settings, fingerprint
from minigpt4.evaluation.summary import write_summary
from minigpt4.evaluation.train_match import adopt_training_lora, check_model_match
from minigpt4.models.weights import load_parameters
from minigpt4.registry import MODELS, TASKS
from minigpt4.run_dir import (
    CAPTIONS_JSON,
    CONFIG,
    FINGERPRINT,
    METRICS_JSON,
    PRETRAINED,
    REPLACED_PREFIX,
    RUN_NAME_FORMAT,
    checkpoint_epoch,
    eval_dir,
    read_metrics,
    result_name,
    run_checkpoints,
)
from minigpt4.tasks.captioning.generation import batch_size_eval, select
from minigpt4.tasks.captioning.scoring import CaptionScorer, check_java, check_writable
from minigpt4.utils import dist, signals
from minigpt4.utils.io import atomic_write_json
from minigpt4.utils.logging import setup_logger
from minigpt4.utils.prompt import PromptTemplate

log = logging.getLogger("minigpt4")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Caption a split with MiniGPT-4 checkpoints and score it (BLEU, METEOR, ROUGE-L, CIDEr).")
    ap.add_argument(
        "run_dir",
        nargs="?",
        default=None,
        help="training run folder: evaluate pretrained + every checkpoint not yet scored with these settings, then summarise",
    )
    ap.add_argument("--cfg-path", required=True, help="evaluation config (model + evaluation_datasets + run)")
    ap.add_argument(
        "--ckpt",
        action="append",
        default=None,
        metavar="PATH",
        help="without RUN_DIR: checkpoint to evaluate; repeat for several (one METEOR start-up for "
        "all). 'pretrained' (the default) = the config's model.ckpt",
    )
    ap.add_argument("--save-path", default=None, help="without RUN_DIR: results go to <save-path>/<name>/")
    ap.add_argument("--split", default=None, help="split to score (default: the dataset entry's split)")
    ap.add_argument(
        "--limit", type=_positive, default=None, help="score only the first N images (CIDEr is then not comparable with the full split)"
    )
    ap.add_argument(
        "--train-config",
        default=None,
        metavar="RUN_DIR/config.yaml",
        help="the training run's config, whose model the eval config must match (default with RUN_DIR: RUN_DIR/config.yaml)",
    )
    ap.add_argument(
        "--allow-model-mismatch",
        action="store_true",
        help="evaluate although the eval config's model differs from the training run's (recorded in metrics.json)",
    )
    ap.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    args = ap.parse_args(argv)
    if (args.run_dir is None) == (args.save_path is None):
        ap.error("give either RUN_DIR or --save-path DIR")
    if args.run_dir is not None and args.ckpt:
        ap.error("--ckpt is for --save-path; with RUN_DIR every checkpoint of the run is evaluated")
    return args


@dataclass
class Checkpoint:
    """One thing to evaluate: ``spec`` is ``pretrained`` or a path; ``file`` the weights (None: the
    fresh projection); ``fingerprint`` what its result depends on; ``why`` why it is (re)evaluated."""

    name: str
    spec: str
    file: str | None
    fingerprint: dict[str, Any] = field(default_factory=dict)
    why: str = "not evaluated yet"
    up_to_date: bool = False  # its results folder holds a result with the same fingerprint
    vision: bool = False  # it holds vision-stack weights: its images cannot share one encoding pass


def resolve_checkpoints(specs: list[str], cfg: DictConfig) -> list[Checkpoint]:
    """Every file must exist and be a readable checkpoint with ``llama_proj``; names must be unique.
    ``pretrained``'s file is ``model.ckpt`` (None when null: the freshly initialised projection)."""
    out, seen = [], {}
    read = MODELS.get(cfg.model.arch).read_checkpoint
    for spec in specs:
        if spec == PRETRAINED:
            file = cfg.model.get("ckpt")  # None: the fresh llama_proj (fixed seed) training starts from
        else:
            file = str(Path(spec).expanduser().resolve())
            if not Path(file).is_file():
                raise EvalError(f"--ckpt {spec}: checkpoint file not found")
        keys = read(file) if file is not None else {}  # a text file, a truncated download, no llama_proj:
        name = result_name(spec)  # an error now, not after hours
        if name in seen:
            raise EvalError(f"--ckpt {spec} and --ckpt {seen[name]} would both write to <save-path>/{name}/")
        seen[name] = spec
        out.append(Checkpoint(name, spec if spec == PRETRAINED else file, file, vision=any(k.startswith(VISION_PREFIXES) for k in keys)))
    return out


VISION_PREFIXES = ("visual_encoder.", "qformer.", "query_tokens")


def limit_note(limit: int | None, scored: int, total: int) -> str | None:
    if limit is None:
        return None
    return (
        f"scored the first {scored} of {total} images (--limit {limit}): CIDEr's idf (and corpus-level BLEU) "
        "depend on the scored set, so these scores are not comparable with the full split"
    )


def on_main(fn: Any) -> Any:
    """``fn()`` on rank 0, its result (or its ``UserError``) on every rank."""
    result, error = None, None
    if dist.is_main_process():
        try:
            result = fn()
        except UserError as e:
            error = e
    result, error = dist.broadcast_object((result, error))
    if error is not None:
        raise error
    return result


@dataclass
class Plan:
    """What the job does: the split, the checkpoints to evaluate, where results go."""

    args: argparse.Namespace
    dataset: Any
    split_size: int
    entry_name: str
    split: str
    limit: int | None
    instruction: str
    prompt: str
    save_path: Path
    checkpoints: list[Checkpoint]
    todo: list[Checkpoint]
    settings_digest: str
    model_mismatch: dict[str, Any] | None


def make_plan(args: argparse.Namespace, cfg: DictConfig, info: dist.DistInfo) -> Plan:
    """Check every input, then decide what is pending (nothing is built or generated here)."""
    task = TASKS.build(cfg.run.task, cfg.run)
    full, entry_name, split = task.build_eval_split(cfg, args.split)  # annotation checks, before any model
    if len(full) == 0:
        raise EvalError(f"split {split!r} of evaluation_datasets.{entry_name} has no images")
    limit = args.limit
    if limit is not None and limit >= len(full):
        log.info("--limit %d covers the whole %s split (%d images): evaluating the full split", limit, split, len(full))
        limit = None
    instruction = task.instruction(cfg)
    prompt = PromptTemplate(cfg.model.prompt_template).wrap(instruction)
    train_config = args.train_config
    if train_config is None and args.run_dir is not None and (Path(args.run_dir) / CONFIG).is_file():
        train_config = Path(args.run_dir) / CONFIG
    adopt_training_lora(cfg, train_config)
    mismatch = check_model_match(cfg, train_config, args.allow_model_mismatch)
    if args.run_dir is not None:
        save_path = eval_dir(args.run_dir, limit)
        specs = on_main(lambda: [PRETRAINED] + [str(p.resolve()) for p in run_checkpoints(args.run_dir)])
    else:
        save_path, specs = Path(args.save_path), list(args.ckpt or [PRETRAINED])

    def fingerprints() -> tuple[list[Checkpoint], str]:
        ckpts = resolve_checkpoints(specs, cfg)
        entry = OmegaConf.to_container(cfg.evaluation_datasets[entry_name], resolve=True)
        settings = eval_settings(
            OmegaConf.to_container(cfg.model, resolve=True),
            entry_name,
            entry,
            split,
            getattr(full, "source", None),
            limit,
            {
                "max_new_tokens": cfg.run.max_new_tokens,
                "num_beams": cfg.run.num_beams,
                "batch_size_eval": batch_size_eval(cfg.run, info.device),
                "features": cfg.run.feature_cache_dtype if cfg.run.feature_cache else "fp32",
            },
            instruction,
            prompt,
            info.device.type,
        )
        for c in ckpts:
            c.fingerprint = fingerprint(settings, checkpoint_identity(c.spec, c.file))
            old = read_metrics(save_path / c.name)
            if old is not None:
                c.up_to_date = (old.get(FINGERPRINT) or {}).get("digest") == c.fingerprint["digest"]
                c.why = ("settings changed: " if old.get(FINGERPRINT) else "fingerprint: ") + "; ".join(
                    changes(old.get(FINGERPRINT), c.fingerprint)
                )
        return ckpts, digest(settings)

    ckpts, settings_digest = on_main(fingerprints)
    todo = [c for c in ckpts if args.run_dir is None or not c.up_to_date]  # --save-path: always evaluate
    return Plan(
        args,
        select(full, limit),
        len(full),
        entry_name,
        split,
        limit,
        instruction,
        prompt,
        save_path,
        ckpts,
        todo,
        settings_digest,
        mismatch,
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
    scorer = CaptionScorer() if info.is_main else None  # METEOR's JVM starts while the model loads
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
    finally:
        if background is not None:
            background.close()  # on an error or a signal: pending scoring dropped, the running one finished
        if scorer is not None:
            scorer.close()
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


def _log_plan(plan: Plan) -> None:
    todo = {c.name for c in plan.todo}
    where = plan.args.run_dir or plan.save_path
    log.info(
        "%s: %d checkpoint(s) + pretrained, %d to evaluate",
        where,
        len(plan.checkpoints) - 1 if plan.args.run_dir else len(plan.checkpoints),
        len(plan.todo),
    )
    for c in plan.checkpoints:
        log.info("  %s: %s", c.name, c.why if c.name in todo else "up to date (same fingerprint)")


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """The job; returns the metrics.json paths written (rank 0). Errors are ``UserError``s;
    SIGINT/SIGTERM exit 130/143 keeping every finished result."""
    args = parse_args(argv)
    setup_logger(dist.read_launch_env().rank)  # torchrun's or SLURM's rank, before the group exists
    check_java()  # before anything is built or generated
    check_writable()
    cfg = load_config(args.cfg_path, args.options, evaluation=True)
    written: list[Path] = []
    with signals.stop_signals():
        try:
            info = dist.init_distributed(cfg.run.device, cfg.run.dist_backend)
            plan = make_plan(args, cfg, info)
            if info.is_main:
                _log_plan(plan)
            if plan.todo:
                evaluate(cfg, plan, info, written)
            if args.run_dir is not None and info.is_main:
                out = write_summary(args.run_dir, plan.save_path, settings_digest=plan.settings_digest)
                print(out["md"].read_text())
                print("wrote " + ", ".join(str(p) for p in out.values()))
        except signals.Interrupted as e:
            if dist.is_main_process():  # the rank that writes results says which are kept
                kept = ", ".join(p.parent.name for p in written) or "none"
                log.error("Interrupted by %s; finished results are kept (%s); rerun the same command to evaluate the rest", e.name, kept)
            dist.exit_interrupted(e.exit_code)
    dist.cleanup()
    return written
