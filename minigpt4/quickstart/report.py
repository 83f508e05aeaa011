"""Print a run's evaluation: the summary table, a few generated captions next to their references,
and where the plot and the caption gallery (``report.html``) are.

``python -m minigpt4.quickstart.report RUN_DIR [--samples 3] [--eval-dir DIR] [--check]`` (reads
``RUN_DIR/eval/`` or DIR; writes ``summary.*`` first if they are missing; ``--check`` adds the synthetic
sample's shape and colour check, ``minigpt4.quickstart.check``). The references are the ones each
``captions.json`` holds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from minigpt4.errors import run_command
from minigpt4.evaluation.report import REPORT_HTML
from minigpt4.evaluation.summary import collect, write_summary
from minigpt4.run_dir import CAPTIONS_JSON, METRICS_JSON, latest_eval_dir


def report(run_dir: str | Path, samples: int = 3, eval_dir: str | Path | None = None) -> str:
    """The report text (summary table, sample captions, plot and gallery paths) of ``eval_dir`` (default: see
    ``run_dir.latest_eval_dir``)."""
    eval_dir = Path(eval_dir) if eval_dir is not None else latest_eval_dir(run_dir)
    if not (eval_dir / "summary.md").is_file():
        write_summary(run_dir, eval_dir)
    table, _ = collect(eval_dir)
    lines = [(eval_dir / "summary.md").read_text().rstrip(), ""]
    names = list(table["name"])
    captions = {n: {c["image_id"]: c for c in json.loads((eval_dir / n / CAPTIONS_JSON).read_text())} for n in names}
    first = json.loads((eval_dir / names[0] / METRICS_JSON).read_text())
    lines.append(f"## Sample captions (first {samples} images of the {first['split']} split)")
    width = max(len(n) for n in names + ["reference"])
    for item in list(captions[names[0]].values())[:samples]:
        lines += ["", f"{item['image']} ({item['image_id']}):"]
        for ref in item["references"][:2]:
            lines.append(f"  {'reference':<{width}}  {ref}")
        for n in names:
            caption = captions[n].get(item["image_id"], {}).get("caption", "(not evaluated)")
            lines.append(f"  {n:<{width}}  {caption}")
    lines += ["", f"Plot: {(eval_dir / 'summary.png').resolve()}"]
    if (eval_dir / REPORT_HTML).is_file():
        lines.append(f"Gallery: {(eval_dir / REPORT_HTML).resolve().as_uri()} (every image's captions; open in a browser)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--samples", type=int, default=3, help="number of images whose captions are shown")
    ap.add_argument("--eval-dir", default=None, help="folder of <name>/ results (default: RUN_DIR/eval)")
    ap.add_argument(
        "--check",
        action="store_true",
        help="also print how often the captions name the right shape and colours (the synthetic "
        "sample's check, as python -m minigpt4.quickstart.check)",
    )
    args = ap.parse_args(argv)
    eval_dir = Path(args.eval_dir) if args.eval_dir else latest_eval_dir(args.run_dir)
    print(report(args.run_dir, args.samples, eval_dir))
    if args.check:
        from .check import check_text

        print("\n" + check_text(eval_dir))


if __name__ == "__main__":
    raise SystemExit(run_command(main))
