"""How often generated captions of the synthetic sample name the right shape and colours.

CIDEr says captions got closer to the references; this says what they got right. The true shape,
shape colour and background colour of each test image are read from its 5 reference captions (every
template of ``minigpt4.quickstart.synthetic`` names shape and colour; most name the background), and
each generated caption is parsed the same way.

``python -m minigpt4.quickstart.check RUN_DIR [--eval-dir DIR]`` prints one row per evaluated
checkpoint: shape right, colour right (both over all images) and background right (over the captions
that name a background). The references are the ones each ``captions.json`` holds.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections import Counter
from pathlib import Path

from minigpt4.errors import run_command
from minigpt4.evaluation.summary import collect
from minigpt4.run_dir import CAPTIONS_JSON, latest_eval_dir

from .synthetic import COLORS, SHAPES

_COLOR = "|".join(COLORS)
_SHAPE = "|".join(SHAPES)
_SHAPE_COLOR = [
    re.compile(rf"\b({_COLOR}) ({_SHAPE})s?\b"),  # "a red circle", "two red circles"
    re.compile(rf"\bthe ({_SHAPE})s? (?:is|are) ({_COLOR})\b"),  # "the circle is red"
    re.compile(rf"\b({_SHAPE})s?, all ({_COLOR})\b"),
]  # "three circles, all red"
_BACKGROUND = [re.compile(rf"\b({_COLOR}) background\b"), re.compile(rf"\bbackground is ({_COLOR})\b")]
ATTRIBUTES = ("shape", "color", "background")


def caption_attributes(caption: str) -> dict[str, str | None]:
    """``{"shape", "color", "background"}`` named by one caption (None where it names none)."""
    text = caption.lower()
    found: dict[str, str | None] = dict.fromkeys(ATTRIBUTES)
    for pattern in _SHAPE_COLOR:
        if m := pattern.search(text):
            a, b = m.groups()
            found["color"], found["shape"] = (a, b) if a in COLORS else (b, a)
            break
    else:
        if m := re.search(rf"\b({_SHAPE})s?\b", text):
            found["shape"] = m.group(1)
    for pattern in _BACKGROUND:
        if m := pattern.search(text):
            found["background"] = m.group(1)
            break
    return found


def true_attributes(references: list[str]) -> dict[str, str | None]:
    """The attributes most of an image's reference captions name."""
    parsed = [caption_attributes(r) for r in references]
    truth = {}
    for key in ATTRIBUTES:
        votes = Counter(p[key] for p in parsed if p[key] is not None)
        truth[key] = votes.most_common(1)[0][0] if votes else None
    return truth


def attribute_scores(captions: dict[str, str], references: dict[str, list[str]]) -> dict[str, float]:
    """Share of images whose caption names the true shape / colour, and share of background-naming
    captions that name the true background. ``captions`` and ``references`` are keyed by image id."""
    missing = sorted(set(captions) - set(references))
    if missing:
        raise ValueError(f"{len(missing)} captioned images have no references, e.g. {missing[:3]}")
    right = Counter()
    background_named = 0
    for image_id, caption in captions.items():
        got, truth = caption_attributes(caption), true_attributes(references[image_id])
        right["shape"] += got["shape"] == truth["shape"]
        right["color"] += got["color"] == truth["color"]
        if got["background"] is not None:
            background_named += 1
            right["background"] += got["background"] == truth["background"]
    n = max(len(captions), 1)
    return {
        "shape": right["shape"] / n,
        "color": right["color"] / n,
        "background": right["background"] / background_named if background_named else float("nan"),
        "images": len(captions),
    }


def check_run(eval_dir: str | Path) -> list[tuple[str, dict[str, float]]]:
    """``[(checkpoint name, attribute_scores)]`` for each ``<name>/captions.json`` in ``eval_dir``, in the
    summary's order (baseline first, then epochs), against the references stored with the captions."""
    eval_dir = Path(eval_dir)
    rows = []
    for name in collect(eval_dir)[0]["name"]:
        items = json.loads((eval_dir / name / CAPTIONS_JSON).read_text())
        rows.append((name, attribute_scores({c["image_id"]: c["caption"] for c in items}, {c["image_id"]: c["references"] for c in items})))
    return rows


def to_markdown(rows: list[tuple[str, dict[str, float]]]) -> str:
    """The rows as a markdown table of percentages."""
    lines = ["| checkpoint | shape right | colour right | background right (when named) |", "|---|---:|---:|---:|"]
    for name, s in rows:
        background = "-" if math.isnan(s["background"]) else f"{s['background']:.0%}"
        lines.append(f"| {name} | {s['shape']:.0%} | {s['color']:.0%} | {background} |")
    return "\n".join(lines)


def check_text(eval_dir: str | Path) -> str:
    """The check of ``eval_dir`` as printed: a heading and ``to_markdown``'s table."""
    rows = check_run(eval_dir)
    return f"## What the captions name ({rows[0][1]['images'] if rows else 0} images)\n\n{to_markdown(rows)}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--eval-dir", default=None, help="folder of <name>/captions.json (default: RUN_DIR/eval)")
    args = ap.parse_args(argv)
    print(check_text(Path(args.eval_dir) if args.eval_dir else latest_eval_dir(args.run_dir)))


if __name__ == "__main__":
    raise SystemExit(run_command(main))
