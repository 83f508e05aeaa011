"""Smoke test of ``python -m minigpt4.benchmarks`` at a minimal size, so that it cannot rot: the CPU
benchmark end to end through the real ``train.py`` and ``python -m minigpt4.cli eval`` (one training
run of 2 one-step epochs, one 2-checkpoint evaluation job) on stand-ins built here in a few steps, and
the full-size subcommand's commands checked against the real configs with ``--dry-run``."""

from __future__ import annotations

import json

import pytest

from minigpt4.benchmarks.__main__ import main, parser
from minigpt4.benchmarks.common import BenchmarkError


@pytest.fixture(scope="module")
def quick_standins(tmp_path_factory):
    from minigpt4.datasets import flickr30k_prepare
    from minigpt4.quickstart import synthetic
    from minigpt4.quickstart.standins import train_standins

    root = tmp_path_factory.mktemp("bench")
    data = root / "data"
    synthetic.make_synthetic_flickr30k(data, 40, seed=0, image_size=112)
    flickr30k_prepare.prepare_flickr30k(data)
    train_standins(data / "flickr30k_train.json", data / "flickr30k-images", root / "standins", steps=1, vision_steps=0)
    return root, data, root / "standins"


def test_cpu_benchmark_minimal(quick_standins):
    root, data, standins = quick_standins
    out = root / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nintro kept\n")
    main(
        [
            "cpu",
            "--standins",
            str(standins),
            "--data",
            str(data),
            "--work",
            str(root / "work"),
            "--keep",
            "--images",
            "12",
            "--epochs",
            "2",
            "--train-cells",
            "cache-grouped",
            "--eval-k",
            "2",
            "--eval-cache",
            "cold",
            "--eval-limit",
            "2",
            "--max-new-tokens",
            "2",
            "--out",
            str(out),
        ]
    )
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nintro kept\n") and "<!-- benchmarks:cpu:begin -->" in text
    assert "| cold (empty folder) | grouped | first |" in text and "| warm | grouped | 1 |" in text
    assert "- machine: " in text and "- command: `python -m minigpt4.benchmarks cpu " in text
    results = json.loads((root / "work" / "results.json").read_text())
    records = results["train"]["cache-grouped"]["records"]
    assert [r["feature_cache"]["hits"] + r["feature_cache"]["encoded"] for r in records] == [12, 12]
    assert records[1]["feature_cache"]["encoded"] == 0  # the second pass is warm
    job = results["eval"]["k2-cold"]["results"]
    assert [r["feature_cache"]["shared_by"] for r in job] == [2, 2] and job[0]["num_images"] == 2
    assert "### Targets" in text and "length-grouped batches" in text


def test_full_benchmark_sizes_are_the_random_stacks_names(capsys):
    from minigpt4.benchmarks.full import VARIANTS
    from minigpt4.models.sizes import OFFICIAL_SIZES

    assert sorted(VARIANTS) == sorted(OFFICIAL_SIZES)  # one name per size
    assert parser().parse_args(["full", "--size", "vicuna0"]).size == "vicuna-7b"  # the earlier name, with a note
    assert capsys.readouterr().err.strip() == "note: --size vicuna0 is now called vicuna-7b"
    assert parser().parse_args(["memory", "--sizes", "vicuna-7b", "llama2-7b"]).sizes == ["vicuna-7b", "llama2-7b"]


def test_full_benchmark_commands_check(quick_standins, tmp_path, capsys):
    _, data, standins = quick_standins  # any stack in the official layout passes the config checks
    main(
        [
            "full",
            "--size",
            "vicuna0",
            "--device",
            "cuda",
            "--dry-run",
            "--stack",
            str(standins),
            "--data",
            str(data),
            "--work",
            str(tmp_path / "w"),
            "--images",
            "24",
            "--batch-sizes",
            "12",
            "24",
            "--eval-images",
            "4",
        ]
    )
    printed = capsys.readouterr().out
    for name in ("cache-fill", "train-b12-cache-off", "train-b24-cache-warm", "eval"):
        assert f"{name}: " in printed
    assert "run.batch_size_train=24" in printed and "run.max_new_tokens=30" in printed
    main(
        [
            "full",
            "--size",
            "llama2-7b",
            "--device",
            "cuda",
            "--dry-run",
            "--stack",
            str(standins),
            "--data",
            str(data),
            "--work",
            str(tmp_path / "w2"),
            "--images",
            "24",
            "--batch-sizes",
            "12",
            "--eval-images",
            "4",
        ]
    )
    printed = capsys.readouterr().out
    assert "minigpt4_llama2_flickr_finetune.yaml" in printed and "minigpt4_llama2_flickr_eval.yaml" in printed
    assert "q_former_model" not in printed
    with pytest.raises(BenchmarkError, match="multiple of every --batch-sizes"):
        main(["full", "--dry-run", "--images", "100", "--batch-sizes", "12", "64"])


def test_stream_benchmark_minimal(tmp_path):
    """The stage-1 loader benchmark at a minimal size writes its section with both tables' rows."""
    out = tmp_path / "B.md"
    out.write_text("# Benchmarks\n\nkept\n")
    main(["stream", "--samples", "200", "--workers", "1", "--batches", "2", "--out", str(out)])
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nkept\n") and "<!-- benchmarks:stream:begin -->" in text
    assert "| 1 | " in text and "Workers a GPU at 150 samples/s needs on this CPU: **" in text and "Step checkpoint (Vicuna-7B" in text
