"""Checkpoints of a run folder and which of them still need evaluating.

A run folder holds ``checkpoint_{epoch}.pth`` files (written by the runner); evaluation results go to
``RUN_DIR/eval/<name>/`` (``RUN_DIR/eval_limit<N>/<name>/`` for ``evaluate.sh --limit N``) with ``<name>`` = ``pretrained`` (the config's own ``model.ckpt``) or the
checkpoint's file stem. ``python -m minigpt4.evaluation.rundir RUN_DIR [--limit N]`` prints the pending
ones (``pretrained`` first, then checkpoint paths in epoch order), one per line, for ``evaluate.sh``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

PRETRAINED = "pretrained"
CKPT_RE = re.compile(r"^checkpoint_(\d+)\.pth$")


def checkpoint_name(spec: str) -> str:
    """Output folder name of a ``--ckpt`` value: ``pretrained`` or the file name without ``.pth``."""
    if spec == PRETRAINED:
        return PRETRAINED
    name = Path(spec).name
    return name[: -len(".pth")] if name.endswith(".pth") else Path(name).stem


def checkpoint_epoch(spec: str) -> int | None:
    """-1 for ``pretrained``, the epoch of ``checkpoint_{epoch}.pth``, else None."""
    if spec == PRETRAINED:
        return -1
    m = CKPT_RE.match(Path(spec).name)
    return int(m.group(1)) if m else None


def run_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The ``checkpoint_{epoch}.pth`` files of ``run_dir`` in numeric epoch order."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    found = [p for p in run_dir.iterdir() if p.is_file() and CKPT_RE.match(p.name)]
    return sorted(found, key=lambda p: int(CKPT_RE.match(p.name).group(1)))


def is_done(out_dir: str | os.PathLike, limit: int | None) -> bool:
    """True when ``out_dir/metrics.json`` exists and was computed with the same ``limit``."""
    path = Path(out_dir) / "metrics.json"
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("limit") == limit
    except (OSError, ValueError):
        return False


def pending(run_dir: str | os.PathLike, limit: int | None = None, eval_dir: str | os.PathLike | None = None) -> list[str]:
    """``--ckpt`` values still to evaluate: ``pretrained`` and every checkpoint, minus finished ones."""
    eval_dir = Path(eval_dir) if eval_dir is not None else Path(run_dir) / "eval"
    specs = [PRETRAINED] + [str(p.resolve()) for p in run_checkpoints(run_dir)]
    return [s for s in specs if not is_done(eval_dir / checkpoint_name(s), limit)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--limit", type=int, default=None, help="only count results computed with this --limit")
    ap.add_argument("--eval-dir", default=None, help="where results are (default: RUN_DIR/eval)")
    args = ap.parse_args(argv)
    try:
        todo = pending(args.run_dir, args.limit, args.eval_dir)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for spec in todo:
        print(spec)
    n = len(run_checkpoints(args.run_dir))
    print(f"{args.run_dir}: {n} checkpoint(s) + pretrained, {len(todo)} to evaluate", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
