"""``python -m minigpt4.benchmarks stream``: the stage-1 streaming loader on this machine, and what a step
checkpoint costs.

- Shards: img2dataset's layout written by ``minigpt4.datasets.shard_writer`` from the two real Flickr30k
  photos in ``tests/data`` (a random crop of one per sample, border-resized to 224 px, JPEG quality 95:
  real-photo JPEGs as img2dataset writes them), ``--samples`` in shards of 1000.
- Loader: ``StreamLoader`` over one ``laion``-like ``ShardStream`` (``blip2_image_train`` at 224,
  ``blip_caption``), batch 64, with 1 .. ``--workers`` DataLoader workers; after one warm-up batch per
  worker, images/s over the rest (tar read + JPEG decode + 224-px processing + collation).
- Step checkpoint: ``save_step_checkpoint`` of Vicuna-7B's ``llama_proj`` (4096 x 768 + bias) with its
  AdamW moments, the rank state and a config, to the work folder's disk (median of 5).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from minigpt4.datasets.shard_writer import Pair, write_shards
from minigpt4.datasets.stream import ShardStream
from minigpt4.processors.base import create_processor
from minigpt4.training.checkpoint import save_step_checkpoint
from minigpt4.training.stream_loader import StreamLoader

from .common import REPO, load_average, machine, machine_lines, publish, table

PHOTOS = sorted((REPO / "tests" / "data").glob("flickr_*.jpg"))
GPU_SAMPLES_PER_S = 150  # what one GPU takes in stage 1 (the target: one worker feeds it)
TARGET_PER_WORKER = 200


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--samples", type=int, default=6000, help="samples in the shard set (default 6000)")
    ap.add_argument("--workers", type=int, default=2, help="measure 1 .. N DataLoader workers (default 2)")
    ap.add_argument("--batches", type=int, default=40, help="batches of 64 timed per worker count (default 40)")
    ap.add_argument("--out", type=Path, default=None, help="write the 'stream' section of this Markdown file")


def make_shards(folder: Path, samples: int) -> list[str]:
    """``samples`` crops of the real photos as img2dataset-layout shards of 1000."""
    rng = random.Random(0)
    crops = folder / "crops"
    crops.mkdir(parents=True)
    rows = []
    photos = [Image.open(p).convert("RGB") for p in PHOTOS]
    for i in range(min(samples, 500)):  # 500 distinct crops, cycled
        im = photos[i % len(photos)]
        w, h = rng.randint(im.width // 2, im.width), rng.randint(im.height // 2, im.height)
        x, y = rng.randint(0, im.width - w), rng.randint(0, im.height - h)
        path = crops / f"{i}.jpg"
        im.crop((x, y, x + w, y + h)).save(path, quality=95)
        rows.append(path)
    pairs = [Pair(rows[i % len(rows)], f"a photo of people and a dog, number {i}") for i in range(samples)]
    write_shards(pairs, folder / "shards", per_shard=1000, image_size=224, report=lambda _: None)
    return [str(p) for p in sorted((folder / "shards").glob("*.tar"))]


def loader_rate(urls: list[str], workers: int, batches: int) -> float:
    """Images/s of the stream loader with ``workers`` workers, after one warm-up batch per worker."""
    vis = create_processor({"name": "blip2_image_train", "image_size": 224})
    stream = ShardStream("laion", urls, vis, create_processor({"name": "blip_caption"}))
    loader = StreamLoader({"laion": stream}, None, batch_size=64, seed=0, num_workers=workers)
    loader.begin_epoch(0)
    for _ in range(max(1, workers)):
        next(loader)
    t0 = time.perf_counter()
    n = sum(len(next(loader)["image"]) for _ in range(batches))
    seconds = time.perf_counter() - t0
    loader.close()
    return n / seconds


def checkpoint_seconds(folder: Path) -> tuple[float, int]:
    """Median seconds of a Vicuna-7B step checkpoint, and its size in bytes."""
    w, b = torch.randn(4096, 768), torch.randn(4096)
    moments = {
        i: {"step": torch.tensor(1.0), "exp_avg": torch.randn_like(p), "exp_avg_sq": torch.rand_like(p)} for i, p in enumerate((w, b))
    }
    state = {
        "model": {"llama_proj.weight": w, "llama_proj.bias": b},
        "optimizer": {"state": moments, "param_groups": [{"params": [0, 1], "lr": 1e-4}]},
        "epoch": 0,
        "rank_states": [{"rng": {"torch": torch.get_rng_state()}, "data": {"kind": "stream"}}],
        "config": {"model": {"arch": "minigpt4"}},
        "meter": {"losses": [2.0] * 5000},
    }
    times = []
    for k in range(5):
        t0 = time.perf_counter()
        path = save_step_checkpoint(folder, 0, k + 1, state, keep=2)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), path.stat().st_size


def main(args: argparse.Namespace, command: str) -> None:
    start, load_start = time.perf_counter(), load_average()
    with tempfile.TemporaryDirectory(prefix="stream-bench-", dir=REPO / "cache" if (REPO / "cache").is_dir() else None) as tmp:
        folder = Path(tmp)
        urls = make_shards(folder, args.samples)
        rates = {w: loader_rate(urls, w, args.batches) for w in range(0 if args.workers == 0 else 1, args.workers + 1)}
        ckpt_s, ckpt_bytes = checkpoint_seconds(folder / "run")
    info = {**machine(), "load_start": load_start}
    one = rates.get(1) or rates[min(rates)]
    need = math.ceil(GPU_SAMPLES_PER_S / one)
    rows = [(w, f"{r:,.0f}", f"{r / max(1, w):,.0f}") for w, r in rates.items()]
    text = "\n".join(
        [
            "## Stage-1 streaming loader (CPU)",
            "",
            machine_lines(info, command, time.perf_counter() - start),
            f"{args.samples:,} img2dataset-layout samples (real-photo crops, 224 px, JPEG q95) in shards of 1000; "
            "batch 64; tar read + JPEG decode + `blip2_image_train` 224 + collation (`minigpt4/benchmarks/stream.py`).",
            "",
            table(["DataLoader workers", "images/s", "images/s per worker"], rows),
            "",
            f"- Target: at least {TARGET_PER_WORKER} images/s per worker, so that one worker feeds a GPU at {GPU_SAMPLES_PER_S} "
            f"samples/s: **{'met' if one >= TARGET_PER_WORKER else 'not met'}** ({one:,.0f} with one worker).",
            f"- Workers a GPU at {GPU_SAMPLES_PER_S} samples/s needs on this CPU: **{need}** per rank "
            "(`run.num_workers`; each needs a core).",
            f"- Step checkpoint (Vicuna-7B `llama_proj` + AdamW moments + state, {ckpt_bytes / 2**20:.1f} MiB, atomic write + fsync): "
            f"**{ckpt_s:.3f} s** (median of 5); at `run.save_every_steps: 500` and 1.8 s/step that is "
            f"{100 * ckpt_s / (500 * 1.8):.3f}% of the time.",
        ]
    )
    publish(args.out, "stream", text, "")
