"""Run folders (checkpoint names and order) and the summary table and plot."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from PIL import Image

from minigpt4.cli import summarise
from minigpt4.errors import EvalError
from minigpt4.evaluation import METRICS
from minigpt4.evaluation.plot import plot_metrics
from minigpt4.evaluation.summary import collect, to_markdown, write_summary
from minigpt4.quickstart.report import report
from minigpt4.run_dir import checkpoint_epoch, result_name, run_checkpoints
from tests.helpers.evaluation import make_run, scores_for, write_captions, write_metrics


def test_result_names_and_epochs():
    assert result_name("pretrained") == "pretrained" and checkpoint_epoch("pretrained") == -1
    assert result_name("/a/b/checkpoint_12.pth") == "checkpoint_12" and checkpoint_epoch("/a/checkpoint_12.pth") == 12
    assert result_name("my.model.pth") == "my.model" and checkpoint_epoch("my.model.pth") is None


def test_checkpoints_in_numeric_epoch_order(tmp_path):
    run = make_run(tmp_path)
    assert [p.name for p in run_checkpoints(run)] == [f"checkpoint_{e}.pth" for e in (0, 1, 2, 10)]
    with pytest.raises(EvalError, match="run folder not found"):
        run_checkpoints(tmp_path / "nope")


def test_summary_files(tmp_path):
    run = make_run(tmp_path)
    eval_dir = run / "eval"
    # written out of order on purpose; checkpoint_10 must come after checkpoint_2
    for i, (name, epoch) in enumerate(
        [("checkpoint_10", 10), ("pretrained", -1), ("checkpoint_2", 2), ("checkpoint_0", 0), ("checkpoint_1", 1)]
    ):
        write_metrics(eval_dir, name, epoch, scores_for(i))
    out = write_summary(run)
    assert set(out) == {"csv", "md", "png", "html"} and all(p.is_file() for p in out.values())

    csv = pd.read_csv(out["csv"])
    assert list(csv["name"]) == ["pretrained", "checkpoint_0", "checkpoint_1", "checkpoint_2", "checkpoint_10"]
    assert list(csv["epoch"]) == [-1, 0, 1, 2, 10]
    assert list(csv.columns) == ["name", "epoch", "dataset", "split", "num_images", "limit", *METRICS]
    assert csv.loc[csv["name"] == "checkpoint_2", "CIDEr"].item() == scores_for(2)["CIDEr"]

    md = out["md"].read_text()
    assert md.startswith("# flickr30k_eval test captioning: run")
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert table[0].split("|")[1:-1] == [f" {c} " for c in ["checkpoint", "epoch", "images", *METRICS]]
    assert len(table) == 2 + 5
    assert table[2].startswith("| pretrained | pretrained | 6 |")
    assert f"{scores_for(1)['METEOR']:.4f}" in table[2]
    assert "not comparable" not in md  # no subsets here

    with Image.open(out["png"]) as im:
        im.load()
        assert im.format == "PNG" and im.width >= 800 and im.height >= 400
        assert json.loads(im.text["Metrics"]) == list(METRICS)
        assert json.loads(im.text["Epochs"]) == [-1, 0, 1, 2, 10]
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20)) > 20  # lines in several colours, not a blank canvas


def test_results_of_different_settings_never_share_a_summary(tmp_path, capsys):
    """The job passes its settings: other rows are left out and named; the standalone command refuses
    to mix them. The title names the evaluated dataset."""
    run = make_run(tmp_path, epochs=(0, 1))
    write_metrics(run / "eval", "pretrained", -1, scores_for(0), dataset="my_coco")
    write_metrics(run / "eval", "checkpoint_0", 0, scores_for(1), dataset="my_coco")
    write_metrics(run / "eval", "checkpoint_1", 1, scores_for(2), settings="s2", dataset="my_coco")
    out = write_summary(run, settings_digest="s1")
    assert list(pd.read_csv(out["csv"])["name"]) == ["pretrained", "checkpoint_0"]
    md = out["md"].read_text()
    assert md.startswith("# my_coco test captioning") and "**Not shown:** checkpoint_1: evaluated with other settings" in md
    with Image.open(out["png"]) as im:
        assert im.text["Title"].startswith("my_coco test captioning")
    assert summarise([str(run)]) == 2
    err = capsys.readouterr().err
    assert "evaluated with different settings and cannot share one summary: ['pretrained', 'checkpoint_0'] vs ['checkpoint_1']" in err


def test_subset_rows_are_flagged(tmp_path):
    run = make_run(tmp_path, epochs=(0,))
    write_metrics(run / "eval", "pretrained", -1, scores_for(0), limit=3)
    write_metrics(run / "eval", "checkpoint_0", 0, scores_for(1), limit=3)
    md = write_summary(run)["md"].read_text()
    assert "not comparable with the full split" in md and "3 (limit)" in md


def test_plot_returns_one_line_per_metric(tmp_path):
    table = pd.DataFrame([{"epoch": e, **scores_for(e + 1)} for e in (-1, 0, 1)])
    labels = plot_metrics(table, list(METRICS), tmp_path / "p.png", "title")
    assert labels == list(METRICS)
    assert Image.open(tmp_path / "p.png").size[0] > 0
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temporary file


def test_collect_errors(tmp_path, capsys):
    with pytest.raises(EvalError, match="no \\*/metrics.json"):
        collect(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "metrics.json").write_text(json.dumps({"scores": {"Bleu_1": 0.1}}))
    with pytest.raises(EvalError, match="scores lack"):
        collect(tmp_path)
    assert summarise([str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("error: no */metrics.json under")


def test_markdown_of_unknown_epoch(tmp_path):
    write_metrics(tmp_path, "custom", None, scores_for(0))
    table, metrics = collect(tmp_path)
    assert "| custom |  | 6 |" in to_markdown(table, metrics)


def test_report(tmp_path):
    run = make_run(tmp_path, epochs=(0,))
    eval_dir = run / "eval_limit2"  # only a --limit evaluation exists: the report finds it
    for n, (name, epoch) in enumerate([("pretrained", -1), ("checkpoint_0", 0)]):
        write_metrics(eval_dir, name, epoch, scores_for(n), limit=2)
        write_captions(eval_dir, name, [f"{name} says {i}" for i in range(2)], [[f"true caption {i}", "other"] for i in range(2)])
    text = report(run, samples=1)
    assert "true caption 0" in text and "pretrained says 0" in text and "checkpoint_0 says 0" in text
    assert "says 1" not in text and str((eval_dir / "summary.png").resolve()) in text
    assert (eval_dir / "summary.md").is_file()
