"""Print a run's evaluation: the summary table, a few generated captions next to the true ones,
and where the plot is.

``python -m minigpt4.evaluation.report RUN_DIR [--annotations SPLIT.json] [--samples 3] [--eval-dir DIR]``
(reads ``RUN_DIR/eval/`` or DIR; writes ``summary.*`` first if they are missing). The references come from
``--annotations`` or, by default, from the annotation file named in the evaluation's config.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from minigpt4.evaluation.summary import collect, write_summary


def annotation_file(metrics: dict) -> Path | None:
    """The split's annotation file recorded in a metrics.json's config (None when not found)."""
    try:
        entry = metrics["config"]["evaluation_datasets"][metrics["dataset"]]
        ann = Path(entry["build_info"]["ann_path"])
    except (KeyError, TypeError):
        return None
    return ann / f"flickr30k_{metrics['split']}.json" if ann.is_dir() else ann


def references(ann_path: str | Path) -> dict[str, list[str]]:
    """``{image_id: captions}`` of an annotation file (``[{"image", "image_id", "captions"}]``)."""
    from minigpt4.datasets import read_caption_json

    return {r.image_id: list(r.captions) for r in read_caption_json(ann_path, image_id_key="image_id")}


def default_eval_dir(run_dir: str | Path) -> Path:
    """``run_dir/eval``, or when it holds no results the newest ``run_dir/eval_limit<N>`` that does
    (what ``evaluate.sh --limit N`` writes)."""
    full = Path(run_dir) / "eval"
    if any(full.glob("*/metrics.json")):
        return full
    limited = [d for d in Path(run_dir).glob("eval_limit*") if any(d.glob("*/metrics.json"))]
    return max(limited, key=lambda d: d.stat().st_mtime) if limited else full


def report(run_dir: str | Path, annotations: str | Path | None = None, samples: int = 3,
           eval_dir: str | Path | None = None) -> str:
    """The report text (summary table, sample captions, plot path) of ``eval_dir`` (default: see
    ``default_eval_dir``)."""
    eval_dir = Path(eval_dir) if eval_dir is not None else default_eval_dir(run_dir)
    if not (eval_dir / "summary.md").is_file():
        write_summary(run_dir, eval_dir)
    table, _ = collect(eval_dir)
    lines = [(eval_dir / "summary.md").read_text().rstrip(), ""]
    names = list(table["name"])
    captions = {n: json.loads((eval_dir / n / "captions.json").read_text()) for n in names}
    first = json.loads((eval_dir / names[0] / "metrics.json").read_text())
    ann = annotations or annotation_file(first)
    refs = references(ann) if ann and Path(ann).is_file() else {}
    lines.append(f"## Sample captions (first {samples} images of the {first['split']} split)")
    width = max(len(n) for n in names + ["reference"])
    for item in captions[names[0]][:samples]:
        lines += ["", f"{item['image']} ({item['image_id']}):"]
        for ref in refs.get(item["image_id"], [])[:2]:
            lines.append(f"  {'reference':<{width}}  {ref}")
        for n in names:
            caption = next((c["caption"] for c in captions[n] if c["image_id"] == item["image_id"]), "(not evaluated)")
            lines.append(f"  {n:<{width}}  {caption}")
    lines += ["", f"Plot: {(eval_dir / 'summary.png').resolve()}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--annotations", default=None, help="the split's annotation file (references)")
    ap.add_argument("--samples", type=int, default=3, help="number of images whose captions are shown")
    ap.add_argument("--eval-dir", default=None, help="folder of <name>/ results (default: RUN_DIR/eval)")
    args = ap.parse_args(argv)
    try:
        print(report(args.run_dir, args.annotations, args.samples, args.eval_dir))
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
