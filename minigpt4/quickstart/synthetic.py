"""A synthetic Flickr30k sample: rendered scenes with 5 true captions each, written in the exact
layout of the real data (``flickr_annotations_30k.csv`` + ``flickr30k-images/*.jpg``).

Each image shows 1-3 large shapes (circle, square, triangle) of one colour on a plain background of
another colour, drawn from a small palette of strongly distinct colours so that a tiny model can
learn colour words from 56-112 px images. One shape sits at a position (left, right, top, bottom,
center); two or three shapes stand in a row or a column. Splits: 10 % val and 10 % test (at least 1
each), the rest train, interleaved in a seeded order as in the real CSV. Same seed -> byte-identical files.

CLI: ``python -m minigpt4.quickstart.synthetic --out DIR --images N [--seed S] [--image-size PX]``
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from minigpt4.datasets.records import CSV_NAME, IMAGE_DIR, SPLITS
from minigpt4.errors import run_command
from minigpt4.utils.io import atomic_write
from minigpt4.utils.progress import progress

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (245, 215, 30),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle")
POSITIONS = ("left", "right", "top", "bottom", "center")
LAYOUTS = ("row", "column")
NUMBERS = {1: "one", 2: "two", 3: "three"}
_AT = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom", "center": "in the middle"}
_OF = {"left": "in the left", "right": "in the right", "top": "at the top", "bottom": "at the bottom", "center": "in the center"}
_ARRANGED = {"row": "in a row", "column": "in a column"}
_ARRANGED2 = {"row": "side by side", "column": "one above the other"}


@dataclass(frozen=True)
class Scene:
    """What an image shows. ``place`` is a position (count 1) or a layout, row/column (count 2-3)."""

    shape: str
    color: str
    background: str
    count: int
    place: str


def make_scenes(n_images: int, seed: int = 0) -> list[Scene]:
    """``n_images`` random scenes (shape colour always differs from the background)."""
    rng = random.Random(f"scenes/{seed}")
    scenes = []
    for _ in range(n_images):
        color, background = rng.sample(sorted(COLORS), 2)
        count = rng.choice((1, 1, 2, 3))
        place = rng.choice(POSITIONS if count == 1 else LAYOUTS)
        scenes.append(Scene(rng.choice(SHAPES), color, background, count, place))
    return scenes


def scene_captions(scene: Scene, rng: random.Random) -> list[str]:
    """5 different true captions of ``scene`` in Flickr style (capitalised, final period)."""
    c, bg, s, p = scene.color, scene.background, scene.shape, scene.place
    if scene.count == 1:
        options = [
            f"a {c} {s} on a {bg} background",
            f"one {c} {s} {_OF[p]} of the picture",
            f"a {bg} background with a {c} {s} {_AT[p]}",
            f"a simple drawing of a {c} {s}",
            f"the {s} is {c} and the background is {bg}",
            f"a single {c} {s} {_AT[p]}",
            f"there is a {c} {s} {_OF[p]} of the image",
        ]
    else:
        n = NUMBERS[scene.count]
        options = [
            f"{n} {c} {s}s on a {bg} background",
            f"{n} {c} {s}s {_ARRANGED[p]}",
            f"a {bg} background with {n} {c} {s}s",
            f"a simple drawing of {n} {c} {s}s",
            f"the {s}s are {c} and the background is {bg}",
            f"{n} identical {c} {s}s {_ARRANGED2[p]}",
            f"there are {n} {s}s, all {c}, on a {bg} background",
        ]
    return [t[0].upper() + t[1:] + "." for t in rng.sample(options, 5)]


def shape_boxes(scene: Scene, size: int) -> list[tuple[float, float, float, float]]:
    """Bounding boxes (x0, y0, x1, y1) of the scene's shapes in a ``size`` x ``size`` image."""
    if scene.count == 1:
        d = 0.44 * size
        cx, cy = {"left": (0.25, 0.5), "right": (0.75, 0.5), "top": (0.5, 0.25), "bottom": (0.5, 0.75), "center": (0.5, 0.5)}[scene.place]
        centers = [(cx * size, cy * size)]
    else:
        d = (0.85 / scene.count) * size
        steps = [(i + 0.5) / scene.count * size for i in range(scene.count)]
        centers = [(x, size / 2) for x in steps] if scene.place == "row" else [(size / 2, y) for y in steps]
    return [(x - d / 2, y - d / 2, x + d / 2, y + d / 2) for x, y in centers]


def render_scene(scene: Scene, size: int) -> Image.Image:
    """The scene as an RGB image: plain background, large flat shapes."""
    image = Image.new("RGB", (size, size), COLORS[scene.background])
    draw = ImageDraw.Draw(image)
    fill = COLORS[scene.color]
    for x0, y0, x1, y1 in shape_boxes(scene, size):
        if scene.shape == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif scene.shape == "square":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
    return image


def split_labels(n_images: int, seed: int = 0) -> list[str]:
    """10 % val and 10 % test (at least one each), the rest train, in a seeded interleaved order."""
    if n_images < 3:
        raise ValueError(f"need at least 3 images (one per split), got {n_images}")
    n_val = n_test = max(1, round(0.1 * n_images))
    labels = ["train"] * (n_images - n_val - n_test) + ["val"] * n_val + ["test"] * n_test
    random.Random(f"splits/{seed}").shuffle(labels)
    return labels


def make_synthetic_flickr30k(out_dir: str | Path, n_images: int, seed: int = 0, image_size: int = 112) -> Path:
    """Write ``out_dir/flickr_annotations_30k.csv`` (columns raw,sentids,split,filename,img_id; ``raw``
    a JSON list of 5 captions, ``sentids`` a JSON list of 5 ints) and ``out_dir/flickr30k-images/*.jpg``.
    Returns the CSV path."""
    out_dir = Path(out_dir)
    image_dir = out_dir / IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    scenes = make_scenes(n_images, seed)
    splits = split_labels(n_images, seed)
    caption_rng = random.Random(f"captions/{seed}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["raw", "sentids", "split", "filename", "img_id"])
    for i, (scene, split) in enumerate(progress(list(zip(scenes, splits)), desc="synthetic images", unit="img")):
        filename = f"synth_{i:05d}.jpg"
        jpeg = io.BytesIO()
        render_scene(scene, image_size).save(jpeg, format="JPEG", quality=95)
        data = jpeg.getvalue()
        atomic_write(image_dir / filename, lambda tmp, data=data: tmp.write_bytes(data))
        caps = scene_captions(scene, caption_rng)
        writer.writerow([json.dumps(caps), json.dumps(list(range(5 * i, 5 * i + 5))), split, filename, str(i)])
    csv_path = out_dir / CSV_NAME
    atomic_write(csv_path, lambda tmp: tmp.write_bytes(buf.getvalue().encode("utf-8")))
    return csv_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write a synthetic Flickr30k sample (CSV + JPEG images).")
    ap.add_argument("--out", required=True, help="output folder (the --root of prepare_flickr30k.py)")
    ap.add_argument("--images", type=int, required=True, help="number of images (>= 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=112, help="side of the square images in pixels")
    args = ap.parse_args(argv)
    try:
        path = make_synthetic_flickr30k(args.out, args.images, args.seed, args.image_size)
    except ValueError as e:
        ap.error(str(e))
    counts = {s: 0 for s in SPLITS}
    for s in split_labels(args.images, args.seed):
        counts[s] += 1
    print(
        f"wrote {path} and {args.images} images in {path.parent / IMAGE_DIR} "
        f"(train {counts['train']}, val {counts['val']}, test {counts['test']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(main))
