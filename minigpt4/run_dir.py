"""The run-folder contract, defined once for its writers (training) and readers (evaluation, resume):

output_dir/<job_name>/<YYYYmmddHHMMSS>/      one run (a new folder per fresh start)
    config.yaml                              the resolved config of the run's first invocation
    config.resumed-<YYYYmmddHHMMSS>.yaml     the config of each later ``--resume auto`` invocation
    log.txt                                  one JSON record per finished epoch
    checkpoint_<epoch>.pth                   after every epoch (complete or absent)
    checkpoint_latest.pth                    the newest of them (hard link or copy)
    checkpoint_<epoch>_step_<k>.pth          k steps into an epoch (run.save_every_steps, a stop signal);
                                             the last run.keep_step_checkpoints are kept
    eval/<name>/{captions,metrics}.json      evaluation of ``pretrained`` and ``checkpoint_<epoch>``
    eval/<name>/replaced-<time>/...          an earlier result of other settings, set aside
    eval/summary.{csv,md,png}
    eval_limit<N>/...                        the same for ``--limit N`` (never mixed with eval/)
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from minigpt4.errors import EvalError
from minigpt4.utils.io import atomic_write_text

RUN_NAME_FORMAT = "%Y%m%d%H%M%S"
CONFIG = "config.yaml"
LATEST = "checkpoint_latest.pth"
PRETRAINED = "pretrained"
METRICS_JSON = "metrics.json"
CAPTIONS_JSON = "captions.json"
FINGERPRINT = "fingerprint"  # metrics.json key: what the result depends on (evaluation.fingerprint)
REPLACED_PREFIX = "replaced-"  # <name>/replaced-<time>/: results set aside when re-evaluated with other settings
_CHECKPOINT_RE = re.compile(r"^checkpoint_(\d+)\.pth$")
_STEP_CHECKPOINT_RE = re.compile(r"^checkpoint_(\d+)_step_(\d+)\.pth$")


# ---- run folders -------------------------------------------------------------------------
def job_dir(run_cfg: Any) -> Path:
    """``output_dir/job_name`` (absolute)."""
    return (Path(run_cfg.output_dir).expanduser() / run_cfg.job_name).resolve()


def _create_unique(parent: Path, max_tries: int = 120) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(max_tries):
        path = parent / datetime.now().strftime(RUN_NAME_FORMAT)
        try:
            path.mkdir()  # atomic: fails if another run took this second
            return path
        except FileExistsError:
            time.sleep(1.0 - (time.time() % 1.0) + 0.01)  # the next second
    raise RuntimeError(f"could not create a new run folder under {parent} in {max_tries} tries")


def create_run_dir(run_cfg: Any) -> Path:
    """A new, never reused run folder, created by rank 0 (it waits for the next second when the
    current one is taken) and broadcast so every rank uses the same path."""
    from minigpt4.utils.dist import broadcast_object, is_main_process  # torch: only where a run folder is made

    path = str(_create_unique(job_dir(run_cfg))) if is_main_process() else None
    return Path(broadcast_object(path))


def write_config(run_dir: str | Path, cfg: Any) -> Path:
    """The resolved config as ``config.yaml``, or, when the run folder has one already (a resumed
    run), as ``config.resumed-<time>.yaml`` beside it: the original is never rewritten."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if path.exists():
        path = run_dir / f"config.resumed-{datetime.now().strftime(RUN_NAME_FORMAT)}.yaml"
    return atomic_write_text(path, OmegaConf.to_yaml(cfg, resolve=True))


# ---- checkpoints -------------------------------------------------------------------------
def checkpoint_path(run_dir: str | Path, epoch: int) -> Path:
    return Path(run_dir) / f"checkpoint_{epoch}.pth"


def step_checkpoint_path(run_dir: str | Path, epoch: int, step: int) -> Path:
    """The checkpoint written ``step`` optimizer steps into ``epoch``."""
    return Path(run_dir) / f"checkpoint_{epoch}_step_{step}.pth"


def list_step_checkpoints(run_dir: str | Path) -> list[tuple[tuple[int, int], Path]]:
    """``[((epoch, step), path), ...]`` of the step checkpoints of ``run_dir``, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(_STEP_CHECKPOINT_RE.match(p.name), p) for p in run_dir.iterdir() if p.is_file()]
    return sorted(((int(m.group(1)), int(m.group(2))), p) for m, p in found if m)


def checkpoint_epoch(spec: str | Path) -> int | None:
    """-1 for ``pretrained``, the epoch of a ``checkpoint_<epoch>.pth`` path, else None."""
    if str(spec) == PRETRAINED:
        return -1
    m = _CHECKPOINT_RE.match(Path(spec).name)
    return int(m.group(1)) if m else None


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``[(epoch, path), ...]`` of the complete ``checkpoint_<epoch>.pth`` files, by epoch."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(checkpoint_epoch(p), p) for p in run_dir.iterdir() if p.is_file()]
    return sorted((e, p) for e, p in found if e is not None and e >= 0)


def find_resume_checkpoint(job: str | Path) -> Path | None:
    """The checkpoint ``--resume auto`` continues from: in the newest run folder of ``job`` (folder
    names are timestamps, so newest = greatest name) that holds a complete checkpoint, the furthest
    one (an epoch checkpoint is past every step checkpoint of its epoch). None when no run has one."""
    job = Path(job)
    if not job.is_dir():
        return None
    for run_dir in sorted((p for p in job.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True):
        ckpts = [((e, math.inf), p) for e, p in list_checkpoints(run_dir)] + list_step_checkpoints(run_dir)
        if ckpts:
            return max(ckpts, key=lambda c: c[0])[1]
    return None


# ---- evaluation results ------------------------------------------------------------------
def result_name(spec: str | Path) -> str:
    """The results folder name of a checkpoint: ``pretrained`` or the file name without ``.pth``."""
    if str(spec) == PRETRAINED:
        return PRETRAINED
    name = Path(spec).name
    return name[: -len(".pth")] if name.endswith(".pth") else Path(name).stem


def eval_dir(run_dir: str | Path, limit: int | None = None) -> Path:
    """``run_dir/eval``, or ``run_dir/eval_limit<N>`` for results on the first N images."""
    return Path(run_dir) / ("eval" if limit is None else f"eval_limit{limit}")


def latest_eval_dir(run_dir: str | Path) -> Path:
    """``run_dir/eval``, or when it holds no results the newest ``eval_limit<N>`` that does."""
    full = eval_dir(run_dir)
    if any(full.glob(f"*/{METRICS_JSON}")):
        return full
    limited = [d for d in Path(run_dir).glob("eval_limit*") if any(d.glob(f"*/{METRICS_JSON}"))]
    return max(limited, key=lambda d: d.stat().st_mtime) if limited else full


def read_metrics(out_dir: str | Path) -> dict[str, Any] | None:
    """The ``metrics.json`` record in ``out_dir``, or None when there is none (or it is unreadable)."""
    path = Path(out_dir) / METRICS_JSON
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def run_checkpoints(run_dir: str | Path) -> list[Path]:
    """The ``checkpoint_<epoch>.pth`` files of ``run_dir`` in epoch order (the folder must exist)."""
    if not Path(run_dir).is_dir():
        raise EvalError(f"run folder not found: {run_dir}")
    return [p for _, p in list_checkpoints(run_dir)]
