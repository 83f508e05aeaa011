"""Reading shape and colours back from synthetic captions, and scoring a run's captions by them."""

import math
import random

import pytest

from minigpt4.errors import run_command
from minigpt4.quickstart.check import attribute_scores, caption_attributes, main, true_attributes
from minigpt4.quickstart.synthetic import make_scenes, scene_captions
from tests.helpers.evaluation import make_run, scores_for, write_captions, write_metrics


def test_every_template_reads_back_the_scene():
    rng = random.Random(0)
    for scene in make_scenes(300, seed=3):
        captions = scene_captions(scene, rng)
        for caption in captions:
            got = caption_attributes(caption)
            assert (got["shape"], got["color"]) == (scene.shape, scene.color), caption
            assert got["background"] in (None, scene.background), caption
        # 5 of the 7 templates always include one naming the background
        assert true_attributes(captions) == {"shape": scene.shape, "color": scene.color, "background": scene.background}


@pytest.mark.parametrize(
    "caption, want",
    [
        ("A black background with a white square at the top.", ("square", "white", "black")),
        ("There are three circles, all yellow, on a red background.", ("circle", "yellow", "red")),
        ("The triangles are green and the background is blue.", ("triangle", "green", "blue")),
        ("A square.", ("square", None, None)),
        ("Nothing to see.", (None, None, None)),
    ],
)
def test_caption_attributes(caption, want):
    got = caption_attributes(caption)
    assert (got["shape"], got["color"], got["background"]) == want


def test_attribute_scores():
    refs = {"a": ["A red circle on a blue background."] * 5, "b": ["Two green squares in a row."] * 5}
    s = attribute_scores({"a": "A red square on a blue background.", "b": "Two green squares."}, refs)
    assert (s["shape"], s["color"], s["background"], s["images"]) == (0.5, 1.0, 1.0, 2)
    assert math.isnan(attribute_scores({"b": "Two green squares."}, refs)["background"])
    with pytest.raises(ValueError, match="no references"):
        attribute_scores({"zz": "A red circle."}, refs)


def test_cli_prints_a_row_per_checkpoint(tmp_path, capsys):
    run = make_run(tmp_path, epochs=(0,))
    refs = [["A red circle on a blue background."] * 5, ["One white triangle at the top."] * 5]
    said = {"pretrained": ["A blue square.", "A white square."], "checkpoint_0": ["A red circle.", "A white triangle."]}
    for n, (name, epoch) in enumerate([("pretrained", -1), ("checkpoint_0", 0)]):
        write_metrics(run / "eval", name, epoch, scores_for(n))
        write_captions(run / "eval", name, said[name], refs)
    assert run_command(main, [str(run)]) == 0
    out = capsys.readouterr().out
    assert "| pretrained | 0% | 50% | - |" in out and "| checkpoint_0 | 100% | 100% | - |" in out
    assert run_command(main, [str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error: no */metrics.json under")
