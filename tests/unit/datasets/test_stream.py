"""Streamed shards: shard lists (patterns, missing and partial tars), the shard writer's img2dataset
layout, and ShardStream's seeded, disjoint, resumable streams and its bad-data handling."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from PIL import Image

from minigpt4.datasets.shard_writer import Pair, border_resize, write_shards
from minigpt4.datasets.shards import STATS_SUFFIX, read_stats, resolve_shards, storage_problems
from minigpt4.datasets.stream import ShardStream
from minigpt4.processors.base import create_processor


def _images(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (40 + i, 30), (7 * i % 255, 80, 160)).save(folder / f"{i}.jpg")
    return [Pair(folder / f"{i}.jpg", f"A picture, number {i}!") for i in range(n)]


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    """48 samples in 8 shards of 6 (img2dataset's layout, 28 px)."""
    root = tmp_path_factory.mktemp("stream")
    write_shards(_images(root / "img", 48), root / "shards", per_shard=6, image_size=28, report=lambda _: None)
    return root / "shards"


def _stream(shard_dir, **kw):
    vis = create_processor({"name": "blip2_image_train", "image_size": 28})
    text = create_processor({"name": "blip_caption"})
    urls = [str(p) for p in sorted(shard_dir.glob("*.tar"))]
    return ShardStream("laion", urls, vis, text, shuffle_buffer=10, shuffle_initial=3, **kw)


def _keys(stream, n, seed=1, rank=0, world=1, epoch=0, skip=0):
    stream.configure(seed, rank, world, epoch, skips={0: skip})
    out = []
    for s in stream:
        out.append(s["image_id"])
        if len(out) == n:
            return out
    return out


def test_writer_layout_keys_metadata_stats_and_white_border(tmp_path):
    rows = _images(tmp_path / "img", 5)
    rows.append(Pair(tmp_path / "img" / "missing.jpg", "gone"))
    summary = write_shards(rows, tmp_path / "out", per_shard=4, image_size=28, report=lambda _: None)
    assert (summary.shards, summary.successes, summary.failed) == (2, 5, 1)
    with tarfile.open(tmp_path / "out" / "00000.tar") as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile("000000.json").read())
        jpg = Image.open(io.BytesIO(tar.extractfile("000000.jpg").read()))
    assert set(names[:3]) == {"000000.jpg", "000000.txt", "000000.json"} and len(names) == 12  # key: shard * 10 + row, 6 digits
    assert meta["caption"] == "A picture, number 0!" and meta["status"] == "success" and meta["key"] == "000000"
    assert (meta["width"], meta["original_width"], meta["original_height"]) == (28, 40, 30) and len(meta["sha256"]) == 64
    assert jpg.size == (28, 28) and min(jpg.getpixel((14, 0))) > 240  # 40x30 fit into 28x28: white bands top and bottom
    stats = json.loads((tmp_path / "out" / f"00001{STATS_SUFFIX}").read_text())
    assert (stats["count"], stats["successes"], stats["failed_to_resize"]) == (2, 1, 1) and stats["status_dict"]
    assert read_stats([str(tmp_path / "out" / "00000.tar"), str(tmp_path / "out" / "00001.tar")])["successes"] == 5
    assert border_resize(Image.new("RGB", (10, 20)), 8).size == (8, 8)


def test_shard_lists_skip_missing_and_partial_tars_and_empty_patterns_are_config_problems(shard_dir, tmp_path):
    found = resolve_shards(f"{shard_dir}/{{00000..00009}}.tar")
    assert len(found.urls) == 8 and found.missing == 2
    partial = tmp_path / "p"
    partial.mkdir()
    for name in ("00000.tar", f"00000{STATS_SUFFIX}", "00001.tar"):  # 00001 has no stats file: still being written
        (partial / name).write_bytes((shard_dir / name).read_bytes())
    listed = resolve_shards([f"{partial}/{{00000..00001}}.tar", "https://example.org/x.tar"])
    assert listed.urls == [str(partial / "00000.tar"), "https://example.org/x.tar"] and listed.partial == [str(partial / "00001.tar")]
    assert "partial" in listed.describe()
    (problem,) = storage_problems("/nowhere/{00000..00003}.tar")
    assert "'/nowhere/{00000..00003}.tar' (4 name(s): /nowhere/00000.tar ... /nowhere/00003.tar) matches no usable shard" in problem
    assert storage_problems(f"{shard_dir}/00000.tar") == []


def test_streams_are_seeded_repeatable_and_disjoint_across_ranks_and_workers(shard_dir):
    stream = _stream(shard_dir)
    first = _keys(stream, 24)
    assert first == _keys(stream, 24)  # a pure function of (seed, entry, epoch, rank, worker)
    assert first != _keys(stream, 24, seed=2) and first != _keys(stream, 24, epoch=1)
    # 4 ranks (2 nodes of 2): in every pass each stream reads 2 of the 8 shards, none shared
    for data_pass in range(3):
        orders = [stream.shard_order(s, 4, data_pass) for s in range(4)]
        assert all(len(o) == 2 for o in orders) and len({u for o in orders for u in o}) == 8
    assert stream.shard_order(0, 4, 0) != stream.shard_order(0, 4, 1)  # each pass a new permutation
    per_rank = [_keys(stream, 6, rank=r, world=4) for r in range(4)]
    assert len({tuple(k) for k in per_rank}) == 4 and not set(per_rank[0]) & set(per_rank[1])


def test_a_resumed_stream_continues_exactly_without_decoding_what_it_passes(shard_dir, monkeypatch):
    stream = _stream(shard_dir)
    whole = _keys(stream, 30)
    decoded = []
    original = ShardStream.decode
    monkeypatch.setattr(ShardStream, "decode", lambda self, record: decoded.append(record["__key__"]) or original(self, record))
    assert _keys(stream, 10, skip=20) == whole[20:30]
    assert decoded == whole[20:30]  # the 20 passed over were never decoded
    resampled = _stream(shard_dir, shard_sampling="resampled")
    assert _keys(resampled, 12) == _keys(resampled, 12) != _keys(resampled, 12, rank=1, world=2)


def test_samples_are_stage1_pairs_and_batches_carry_positions(shard_dir):
    stream = _stream(shard_dir)
    stream.configure(0, 0, 1, 0)
    samples = [s for s, _ in zip(stream, range(4))]
    s = samples[0]
    assert s["instruction_input"] == "<ImageHere>" and s["answer"].startswith("a picture, number") and "!" not in s["answer"]
    assert tuple(s["image"].shape) == (3, 28, 28) and s["dataset"] == "laion" and s["data_errors"] == [] and s["skipped"] == 0
    batch = stream.collater(samples)
    assert tuple(batch["image"].shape) == (4, 3, 28, 28) and batch["stream_pos"] == 4 and batch["stream_worker"] == 0


def test_missing_fields_and_empty_shards(tmp_path):
    import webdataset as wds

    with wds.TarWriter(str(tmp_path / "00000.tar")) as sink:
        sink.write({"__key__": "a", "txt": "no image here"})
    stream = _stream(tmp_path, caption_key="txt")
    stream.configure(0, 0, 1, 0)
    stream.max_drop_share = 0.5
    (fatal,) = list(stream)  # every record lacks its image: judged once 100 records were read
    said = "datasets.laion: 100 of 100 samples were unusable (more than max_drop_share 0.5); the worst shards: "
    assert fatal["fatal"] == said + f"{tmp_path / '00000.tar'} (100 bad)"
    empty = tmp_path / "empty"
    empty.mkdir()
    with wds.TarWriter(str(empty / "00000.tar")):
        pass
    stream = _stream(empty)
    stream.configure(0, 0, 1, 0)
    (fatal,) = list(stream)
    assert fatal["fatal"] == f"datasets.laion: no readable sample in 1 shard(s) of pass 0: {empty / '00000.tar'}"


def test_http_and_pipe_urls_stream_like_local_files(shard_dir):
    """What webdataset opens works: shards over HTTP from a server on 127.0.0.1, and ``pipe:`` commands."""
    import functools
    import http.server
    import os
    import shutil
    import threading
    from unittest import mock

    if shutil.which("curl") is None:
        pytest.skip("webdataset opens http:// URLs with curl, which is not installed")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(shard_dir))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        local = _stream(shard_dir)
        remote = _stream(shard_dir)
        remote.urls = [f"http://127.0.0.1:{server.server_port}/{os.path.basename(u)}" for u in local.urls]
        piped = _stream(shard_dir)
        piped.urls = [f"pipe:cat {u}" for u in local.urls]
        with mock.patch.dict(os.environ, {"no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}):
            assert _keys(remote, 12) == _keys(local, 12) == _keys(piped, 12)
    finally:
        server.shutdown()
        server.server_close()


def test_a_stream_that_yields_nothing_for_stall_seconds_stops_the_loader(shard_dir):
    from minigpt4.errors import DataError
    from minigpt4.training.stream_loader import StreamLoader

    stream = _stream(shard_dir, stall_seconds=1)
    stream.urls = [f"pipe:sleep 3; cat {shard_dir / '00000.tar'}"]  # a stalled network read
    loader = StreamLoader({"laion": stream}, None, batch_size=2, seed=0, num_workers=1)
    loader.begin_epoch(0)
    with pytest.raises(
        DataError, match=r"^datasets\.laion: no batch for 1 s \(stall_seconds\) from its 1 shard\(s\) \(first: pipe:sleep 3;"
    ):
        next(loader)
    loader.close()


def test_strict_data_makes_the_first_bad_sample_an_error(tmp_path):
    import webdataset as wds

    with wds.TarWriter(str(tmp_path / "00000.tar")) as sink:
        sink.write({"__key__": "broken", "jpg": b"not a jpeg", "json": json.dumps({"caption": "x"})})
    stream = _stream(tmp_path, strict=True)
    stream.configure(0, 0, 1, 0)
    (fatal,) = list(stream)
    assert fatal["fatal"].startswith(f"datasets.laion: {tmp_path / '00000.tar'}: sample broken: undecodable .jpg: ")
    assert fatal["fatal"].endswith("[run.strict_data: set it to false to skip and count such samples]")
