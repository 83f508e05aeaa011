"""``minigpt4-summary``: rewrite a run's eval/summary.{csv,md,png} (and report.html) from its metrics.json files."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from minigpt4.errors import run_command
from minigpt4.evaluation import summary
from minigpt4.evaluation.summary import write_summary


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    """Write the summary; prints the Markdown table and the files written; returns their paths."""
    ap = argparse.ArgumentParser(description=summary.__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="run folder whose eval/ holds <name>/metrics.json")
    ap.add_argument("--eval-dir", default=None, help="folder of <name>/metrics.json (default: RUN_DIR/eval)")
    args = ap.parse_args(argv)
    out = write_summary(args.run_dir, args.eval_dir)
    print(out["md"].read_text())
    print("wrote " + ", ".join(str(p) for p in out.values()))
    return out


def run(argv: Sequence[str] | None = None) -> int:
    """The exit status of ``main(argv)``."""
    return run_command(main, argv)
