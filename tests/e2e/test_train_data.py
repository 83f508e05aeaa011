"""Training data in end-to-end runs: a corrupt image skipped and counted (or, with strict_data, taking
the job down), two datasets mixed by sample_ratio, two ranks with the feature cache."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.training import TRAINABLE, epoch_records, final_weights, options, run_dirs, run_train

pytestmark = pytest.mark.slow


@pytest.fixture()
def corrupt_flickr(synthetic_flickr, tmp_path) -> tuple[Path, str]:
    """A copy of the synthetic data whose first training image is not a JPEG any more."""
    import shutil

    data = tmp_path / "corrupt_data"
    shutil.copytree(synthetic_flickr, data)
    name = json.loads((data / "flickr30k_train.json").read_text())[0]["image"]
    (data / "flickr30k-images" / name).write_bytes(b"not a jpeg")
    return data, name


def test_corrupt_image_is_skipped_and_counted(tiny_stack, corrupt_flickr, tmp_path):
    data, name = corrupt_flickr
    # one full data pass: 32 images x 5 captions = 160 samples = 40 batches of 4
    proc = run_train(options(tiny_stack, data, tmp_path / "out", max_epoch=1, iters_per_epoch=40, batch_size_train=4))
    (record,) = epoch_records(run_dirs(tmp_path / "out")[0])
    assert record["skipped"] == 5 and record["samples"] == 155  # the 5 captions of the bad image
    assert "Epoch 0: skipped 5 missing/corrupt samples" in proc.stdout + proc.stderr


def test_failing_rank_takes_the_job_down(tiny_stack, corrupt_flickr, tmp_path):
    """strict_data: the rank that meets the bad image raises; torchrun ends the job (no hang)."""
    data, name = corrupt_flickr
    start = time.time()
    proc = run_train(
        options(tiny_stack, data, tmp_path / "out", max_epoch=1, iters_per_epoch=20, batch_size_train=4, strict_data="true"),
        nproc=2,
        check=False,
        timeout=150,
    )
    assert proc.returncode != 0 and time.time() - start < 120
    assert "error: cannot load image" in proc.stderr and name in proc.stderr
    assert not list(run_dirs(tmp_path / "out")[0].glob("checkpoint_*"))


def test_two_datasets_mixed_by_sample_ratio_are_counted(tiny_stack, synthetic_flickr, tmp_path):
    """Two entries with sample_ratio 1:3: the start-up log gives each dataset's size and share, and
    log.txt counts the samples each one gave in the epoch."""
    extra = [
        "datasets.flickr30k_caption.sample_ratio=1",
        "datasets.mine.builder=caption_json",
        f"datasets.mine.build_info.ann_path={synthetic_flickr / 'flickr30k_train.json'}",
        f"datasets.mine.build_info.image_path={synthetic_flickr / 'flickr30k-images'}",
        "datasets.mine.vis_processor.train.image_size=56",
        "datasets.mine.sample_ratio=3",
    ]
    proc = run_train(options(tiny_stack, synthetic_flickr, tmp_path, max_epoch=1, iters_per_epoch=20, batch_size_train=4) + extra)
    assert (
        "Training data (mixed by sample_ratio; batches grouped by length; 320 samples per pass): flickr30k_caption: "
        "160 samples (25.0% of each pass); mine: 160 samples (75.0% of each pass)"
    ) in proc.stdout
    (record,) = epoch_records(run_dirs(tmp_path)[0])
    counts = record["samples_per_dataset"]
    assert set(counts) == {"flickr30k_caption", "mine"} and sum(counts.values()) == record["samples"] == 80
    assert counts["mine"] > 2 * counts["flickr30k_caption"]


def test_two_ranks_with_the_cache_equal_one_rank_at_the_same_global_batch(tiny_stack, synthetic_flickr, tmp_path):
    """2 gloo ranks x batch 4 and 1 process x batch 8 see the same samples per step (the feature cache on,
    length-grouped batches): the same training up to the loss's token weighting (a token mean per rank,
    averaged over ranks, vs one token mean over the 8 samples), which Adam's steps carry on. The log
    lines report samples/s, tokens/s, padding, MFU (given a peak) and cache hits."""
    run = {"max_epoch": 2, "iters_per_epoch": 10, "log_freq": 5, "warmup_steps": 2, "peak_tflops": 0.01}
    one = run_train(options(tiny_stack, synthetic_flickr, tmp_path / "one", batch_size_train=8, **run))
    run_train(options(tiny_stack, synthetic_flickr, tmp_path / "two", batch_size_train=4, **run), nproc=2)
    (a,), (b,) = run_dirs(tmp_path / "one"), run_dirs(tmp_path / "two")
    wa, wb = final_weights(a, 1), final_weights(b, 1)
    for k in TRAINABLE:
        assert torch.allclose(wa[k], wb[k], rtol=0, atol=5e-3), f"{k}: {(wa[k] - wb[k]).abs().max().item():.3g}"
    ra, rb = epoch_records(a), epoch_records(b)
    assert [r["loss"] for r in ra] == pytest.approx([r["loss"] for r in rb], rel=1e-3)
    assert ra[0]["feature_cache"]["encoded"] > 0 and ra[1]["feature_cache"]["encoded"] == 0  # warm in epoch 1
    assert ra[1]["feature_cache"]["hits"] == 80 and 0 <= ra[1]["padding"] < 0.2 and ra[1]["mfu"] > 0
    assert re.search(r"samples/s [\d.]+ tokens/s [\d,]+ pad [\d.]+% mfu [\d.]+% cache hits \d+%", one.stdout)
    assert "feature cache: " in one.stdout and "KiB per image" in one.stdout
