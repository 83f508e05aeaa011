"""Synthetic Flickr30k sample: exact CSV layout, real JPEGs, true captions, byte-identical reruns."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from minigpt4.quickstart.synthetic import (
    COLORS,
    POSITIONS,
    SHAPES,
    make_scenes,
    make_synthetic_flickr30k,
    scene_captions,
    shape_boxes,
    split_labels,
)
from tests.helpers.paths import REPO

N, SIZE = 30, 64


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    make_synthetic_flickr30k(out, N, seed=3, image_size=SIZE)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_csv_layout(sample):
    text = (sample / "flickr_annotations_30k.csv").read_text()
    assert text.splitlines()[0] == "raw,sentids,split,filename,img_id"
    df = pd.read_csv(sample / "flickr_annotations_30k.csv", dtype=str, keep_default_na=False)
    assert list(df.columns) == ["raw", "sentids", "split", "filename", "img_id"] and len(df) == N
    for i, row in df.iterrows():
        caps = json.loads(row["raw"])
        assert isinstance(caps, list) and len(caps) == 5 and len(set(caps)) == 5
        assert all(isinstance(c, str) and c[0].isupper() and c.endswith(".") for c in caps)
        assert json.loads(row["sentids"]) == list(range(5 * i, 5 * i + 5))
        assert row["img_id"] == str(i)
        with Image.open(sample / "flickr30k-images" / row["filename"]) as im:
            assert im.format == "JPEG" and im.size == (SIZE, SIZE) and im.mode == "RGB"
    counts = df["split"].value_counts().to_dict()
    assert counts == {"train": 24, "val": 3, "test": 3}
    # interleaved like the real CSV, not three blocks
    assert df["split"].tolist() != sorted(df["split"].tolist(), key=["train", "val", "test"].index)


@pytest.mark.parametrize("n,want", [(3, (1, 1, 1)), (10, (8, 1, 1)), (100, (80, 10, 10))])
def test_split_sizes(n, want):
    labels = split_labels(n, seed=0)
    assert (labels.count("train"), labels.count("val"), labels.count("test")) == want


def test_too_few_images():
    with pytest.raises(ValueError, match="at least 3 images"):
        split_labels(2)


def _colour_close(pixel, name, tol=40):
    return all(abs(a - b) <= tol for a, b in zip(pixel, COLORS[name]))


def test_captions_are_true_to_the_pixels(sample):
    df = pd.read_csv(sample / "flickr_annotations_30k.csv", dtype=str, keep_default_na=False)
    place_words = {"left", "right", "top", "bottom", "center", "middle", "row", "column", "side", "above"}
    for scene, (_, row) in zip(make_scenes(N, seed=3), df.iterrows()):
        img = Image.open(sample / "flickr30k-images" / row["filename"]).convert("RGB")
        assert _colour_close(img.getpixel((1, 1)), scene.background)
        for x0, y0, x1, y1 in shape_boxes(scene, SIZE):
            assert _colour_close(img.getpixel((int((x0 + x1) / 2), int((y0 + y1) / 2))), scene.color)
        allowed_places = {
            "left": {"left"},
            "right": {"right"},
            "top": {"top"},
            "bottom": {"bottom"},
            "center": {"center", "middle"},
            "row": {"row", "side"},
            "column": {"column", "above"},
        }[scene.place]
        for cap in json.loads(row["raw"]):
            words = set(cap.lower().rstrip(".").replace(",", "").split())
            assert scene.color in words and ({scene.shape, scene.shape + "s"} & words)
            assert not (set(COLORS) - {scene.color, scene.background}) & words, cap
            assert not (set(SHAPES) - {scene.shape}) & {w.rstrip("s") for w in words}, cap
            assert (words & place_words) <= allowed_places, cap
            if scene.background in words:
                assert "background" in words
            numbers = set(cap.lower().replace("one above the other", "").split()) & {"a", "one", "single", "two", "three"}
            assert numbers <= ({"a", "one", "single"} if scene.count == 1 else {"a", ["", "one", "two", "three"][scene.count]}), cap


def test_every_kind_of_scene_is_generated():
    scenes = make_scenes(300, seed=0)
    assert {s.shape for s in scenes} == set(SHAPES)
    assert {s.color for s in scenes} == set(COLORS) == {s.background for s in scenes}
    assert {s.count for s in scenes} == {1, 2, 3}
    assert {s.place for s in scenes if s.count == 1} == set(POSITIONS)
    assert all(s.color != s.background for s in scenes)
    for s in scenes[:50]:
        caps = scene_captions(s, random.Random(0))
        assert len(set(caps)) == 5


def test_deterministic_bytes(tmp_path, sample):
    make_synthetic_flickr30k(tmp_path / "a", N, seed=3, image_size=SIZE)
    assert _files(tmp_path / "a") == _files(sample)
    make_synthetic_flickr30k(tmp_path / "b", N, seed=4, image_size=SIZE)
    other = _files(tmp_path / "b")
    assert other["flickr_annotations_30k.csv"] != _files(sample)["flickr_annotations_30k.csv"]


@pytest.mark.slow  # starts a Python process
def test_cli(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "minigpt4.quickstart.synthetic",
            "--out",
            str(tmp_path),
            "--images",
            "5",
            "--seed",
            "1",
            "--image-size",
            "56",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "train 3, val 1, test 1" in r.stdout
    assert len(list((tmp_path / "flickr30k-images").glob("*.jpg"))) == 5
    bad = subprocess.run(
        [sys.executable, "-m", "minigpt4.quickstart.synthetic", "--out", str(tmp_path / "x"), "--images", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "at least 3 images" in bad.stderr
