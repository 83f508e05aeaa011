"""StreamLoader: per-batch mixing by sample_ratio from a seeded generator, exact continuation from its
state (workers rotated and positions skipped), and the run folder's choice of checkpoint to resume."""

from __future__ import annotations

import torch

from minigpt4.datasets.shard_writer import Pair, write_shards
from minigpt4.datasets.stream import ShardStream
from minigpt4.processors.base import create_processor
from minigpt4.run_dir import find_resume_checkpoint
from minigpt4.training.stream_loader import StreamLoader


def _streams(tmp_path):
    from PIL import Image

    (tmp_path / "img").mkdir()
    rows = []
    for i in range(30):
        Image.new("RGB", (16, 16), (8 * i, 0, 0)).save(tmp_path / "img" / f"{i}.jpg")
        rows.append(Pair(tmp_path / "img" / f"{i}.jpg", f"picture {i}"))
    out = {}
    for name in ("big", "small"):
        write_shards(rows, tmp_path / name, per_shard=5, image_size=16, report=lambda _: None)
        urls = [str(p) for p in sorted((tmp_path / name).glob("*.tar"))]
        vis = create_processor({"name": "blip2_image_train", "image_size": 16})
        out[name] = ShardStream(name, urls, vis, create_processor({"name": "blip_caption"}), shuffle_buffer=8, shuffle_initial=2)
    return out


def test_mixing_is_per_batch_seeded_and_near_the_ratios(tmp_path):
    loader = StreamLoader(_streams(tmp_path), [115, 14], batch_size=2, seed=42)
    picks = [loader.choose(t) for t in range(2000)]
    assert picks == [loader.choose(t) for t in range(2000)]  # a function of (seed, rank, epoch, t)
    assert 0.87 < picks.count("big") / 2000 < 0.91  # 115/129 = 0.891
    other_rank = StreamLoader(loader.streams, [115, 14], batch_size=2, seed=42, rank=1)
    assert [other_rank.choose(t) for t in range(200)] != picks[:200]


def test_a_loader_restored_from_its_state_gives_the_same_next_batches(tmp_path):
    streams = _streams(tmp_path)
    first = StreamLoader(streams, [3, 1], batch_size=2, seed=7, num_workers=2)
    first.begin_epoch(0)
    batches = [next(first) for _ in range(9)]
    assert {b["dataset"][0] for b in batches} == {"big", "small"} and all(len(set(b["dataset"])) == 1 for b in batches)
    state = StreamLoader(streams, [3, 1], batch_size=2, seed=7, num_workers=2)
    state.begin_epoch(0)
    for _ in range(5):
        next(state)
    saved = state.state_dict()
    state.close()
    resumed = StreamLoader(streams, [3, 1], batch_size=2, seed=7, num_workers=2)
    resumed.load_state_dict(saved)
    resumed.begin_epoch(0)  # the epoch the state stopped in: continued, not restarted
    for want in batches[5:]:
        got = next(resumed)
        assert got["image_id"] == want["image_id"] and torch.equal(got["image"], want["image"])
    resumed.begin_epoch(1)  # a new epoch: new streams
    assert resumed.state_dict()["drawn"] == 0 and resumed.state_dict()["epoch"] == 1
    first.close()
    resumed.close()


def test_resume_auto_takes_the_furthest_checkpoint_of_the_newest_run(tmp_path):
    old, new = tmp_path / "20260101000000", tmp_path / "20260102000000"
    for d, names in ((old, ["checkpoint_3.pth"]), (new, ["checkpoint_0.pth", "checkpoint_1_step_40.pth", "checkpoint_1_step_8.pth"])):
        d.mkdir()
        for n in names:
            (d / n).write_bytes(b"x")
    assert find_resume_checkpoint(tmp_path) == new / "checkpoint_1_step_40.pth"
    (new / "checkpoint_1.pth").write_bytes(b"x")  # an epoch checkpoint is past its epoch's step checkpoints
    assert find_resume_checkpoint(tmp_path) == new / "checkpoint_1.pth"
