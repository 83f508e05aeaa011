"""What an evaluation job will do and why, decided before any model is built.

The job evaluates ``pretrained`` (the config's ``model.ckpt``, or the fresh projection when it is null)
and, for a run folder, every ``checkpoint_<epoch>.pth`` of it; with ``--save-path`` the checkpoints given.
A result in ``<save path>/<name>/metrics.json`` is reused only when its fingerprint
(``evaluation.fingerprint``) equals the current one; otherwise the checkpoint is (re)evaluated and
``Checkpoint.why`` says what changed. ``judge`` and ``pending`` are pure functions of the settings and
the results folder; ``make_plan`` checks every input (config, annotations, model match, checkpoint files)
and puts it together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from minigpt4.errors import EvalError, UserError
from minigpt4.evaluation.fingerprint import changes, checkpoint_identity, digest, eval_settings, fingerprint
from minigpt4.evaluation.train_match import adopt_training_lora, check_model_match
from minigpt4.registry import MODELS, TASKS
from minigpt4.run_dir import CONFIG, FINGERPRINT, PRETRAINED, eval_dir, read_metrics, result_name, run_checkpoints
from minigpt4.tasks.captioning.generation import batch_size_eval, select
from minigpt4.utils import dist
from minigpt4.utils.prompt import PromptTemplate

log = logging.getLogger("minigpt4")
VISION_PREFIXES = ("visual_encoder.", "qformer.", "query_tokens")
UP_TO_DATE = "up to date (same fingerprint)"
T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    """What the user asked for: a run folder (``run_dir``: pretrained + its checkpoints, results into
    ``RUN_DIR/eval``) or ``save_path`` with the checkpoints ``ckpts`` (default: pretrained)."""

    run_dir: str | None = None
    save_path: str | None = None
    ckpts: list[str] | None = None
    split: str | None = None
    limit: int | None = None
    train_config: str | None = None
    allow_model_mismatch: bool = False


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


@dataclass
class Plan:
    """What the job does: the split, the checkpoints to evaluate, where results go."""

    request: Request
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


def judge(checkpoints: list[Checkpoint], settings: dict[str, Any], save_path: Path) -> None:
    """Set each checkpoint's fingerprint and, from ``save_path/<name>/metrics.json``, whether its result
    is up to date and why it would be (re)evaluated."""
    for c in checkpoints:
        c.fingerprint = fingerprint(settings, checkpoint_identity(c.spec, c.file))
        old = read_metrics(save_path / c.name)
        if old is not None:
            c.up_to_date = (old.get(FINGERPRINT) or {}).get("digest") == c.fingerprint["digest"]
            prefix = "settings changed: " if old.get(FINGERPRINT) else "fingerprint: "
            c.why = prefix + "; ".join(changes(old.get(FINGERPRINT), c.fingerprint))


def pending(checkpoints: list[Checkpoint], request: Request) -> list[Checkpoint]:
    """The checkpoints to evaluate: for a run folder those not up to date; with ``--save-path`` all."""
    return [c for c in checkpoints if request.run_dir is None or not c.up_to_date]


def describe(plan: Plan) -> list[str]:
    """The plan in lines for the log: how many checkpoints, how many to evaluate, and each one's reason."""
    todo = {c.name for c in plan.todo}
    where = plan.request.run_dir or plan.save_path
    count = len(plan.checkpoints) - 1 if plan.request.run_dir else len(plan.checkpoints)
    lines = [f"{where}: {count} checkpoint(s) + pretrained, {len(plan.todo)} to evaluate"]
    return lines + [f"  {c.name}: {c.why if c.name in todo else UP_TO_DATE}" for c in plan.checkpoints]


def on_main(fn: Callable[[], T]) -> T:
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


def make_plan(request: Request, cfg: DictConfig, info: dist.DistInfo) -> Plan:
    """Check every input, then decide what is pending (nothing is built or generated here)."""
    task = TASKS.build(cfg.run.task, cfg.run)
    full, entry_name, split = task.build_eval_split(cfg, request.split)  # annotation checks, before any model
    if len(full) == 0:
        raise EvalError(f"split {split!r} of evaluation_datasets.{entry_name} has no images")
    limit = request.limit
    if limit is not None and limit >= len(full):
        log.info("--limit %d covers the whole %s split (%d images): evaluating the full split", limit, split, len(full))
        limit = None
    instruction = task.instruction(cfg)
    prompt = PromptTemplate(cfg.model.prompt_template).wrap(instruction)
    train_config = request.train_config
    if train_config is None and request.run_dir is not None and (Path(request.run_dir) / CONFIG).is_file():
        train_config = Path(request.run_dir) / CONFIG
    adopt_training_lora(cfg, train_config)
    mismatch = check_model_match(cfg, train_config, request.allow_model_mismatch)
    if request.run_dir is not None:
        run_dir = request.run_dir
        save_path = eval_dir(run_dir, limit)
        specs = on_main(lambda: [PRETRAINED] + [str(p.resolve()) for p in run_checkpoints(run_dir)])
    else:
        save_path, specs = Path(request.save_path), list(request.ckpts or [PRETRAINED])

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
        judge(ckpts, settings, save_path)
        return ckpts, digest(settings)

    ckpts, settings_digest = on_main(fingerprints)
    return Plan(
        request,
        select(full, limit),
        len(full),
        entry_name,
        split,
        limit,
        instruction,
        prompt,
        save_path,
        ckpts,
        pending(ckpts, request),
        settings_digest,
        mismatch,
    )
