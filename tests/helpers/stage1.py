"""Stage 1 on the tiny stack: shard sets made by ``minigpt4-shards`` (good and deliberately bad ones)
and the options that run the official stage-1 config on them."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from PIL import Image
from webdataset import TarWriter

from minigpt4.commands import shards
from tests.helpers.configs import OFFICIAL

STAGE1_CFG = OFFICIAL / "minigpt4_stage1_pretrain.yaml"
ENTRIES = ("laion", "cc_sbu")


def make_shard_sets(data: Path, out: Path) -> dict[str, str]:
    """``laion``: the synthetic sample's 160 train pairs in 4 shards of 40; ``cc_sbu``: its 20 val pairs
    in 4 shards of 5. Returns entry -> brace pattern."""
    csv = data / "flickr_annotations_30k.csv"
    patterns = {}
    for name, split, per in (("laion", "train", 40), ("cc_sbu", "val", 5)):
        folder = out / f"{name}_{split}"
        assert (
            shards.main(["--ann", str(csv), "--split", split, "--out", str(folder), "--per-shard", str(per), "--image-size", "56"]) is None
        )
    patterns["laion"] = f"{out}/laion_train/{{00000..00003}}.tar"
    patterns["cc_sbu"] = f"{out}/cc_sbu_val/{{00000..00003}}.tar"
    return patterns


def stage1_options(stack: dict, patterns: dict[str, str], out: Path, workers: int = 0, **run) -> list[str]:
    """The official stage-1 config's paths edited to the tiny stack and ``patterns``, batch 4, 56 px."""
    opts = [
        "custom_imports=[minigpt4.testing]",
        "model.model_type=tiny",
        f"model.llama_model={stack['llama_model']}",
        f"model.vit_ckpt={stack['vit_ckpt']}",
        f"model.q_former_model={stack['q_former_model']}",
        f"run.output_dir={out}",
        "run.device=cpu",
        "run.wandb_log=false",
        f"run.num_workers={workers}",
    ]
    for name in ENTRIES:
        opts += [
            f"datasets.{name}.build_info.storage={patterns[name]}",
            f"datasets.{name}.batch_size=4",
            f"datasets.{name}.vis_processor.train.image_size=56",
            f"datasets.{name}.shuffle_buffer=20",
            f"datasets.{name}.shuffle_initial=5",
        ]
    return opts + [f"run.{k}={v}" for k, v in run.items()]


def _jpeg(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (56, 56), color).save(buf, format="JPEG")
    return buf.getvalue()


def make_bad_shards(good: str, out: Path) -> str:
    """Copies of the first two good ``laion`` shards, plus: a truncated copy of the third, and a fourth
    holding 12 good samples, one without a caption and one whose JPEG is garbage. Returns the pattern."""
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(good.split("{")[0])
    for i in range(2):
        shutil.copy(folder / f"{i:05d}.tar", out / f"{i:05d}.tar")
    data = (folder / "00002.tar").read_bytes()
    (out / "00002.tar").write_bytes(data[: len(data) // 2 + 1000])  # cut inside a member
    with TarWriter(str(out / "00003.tar")) as sink:
        for i in range(12):
            sink.write({"__key__": f"good{i:03d}", "jpg": _jpeg((20 * i, 100, 50)), "json": json.dumps({"caption": f"a square {i}"})})
        sink.write({"__key__": "nocaption", "jpg": _jpeg((1, 2, 3)), "json": json.dumps({"url": "x"})})
        sink.write({"__key__": "badjpeg", "jpg": b"\xff\xd8 this is not a jpeg", "json": json.dumps({"caption": "a broken image"})})
    return f"{out}/{{00000..00003}}.tar"


def make_all_bad_shards(out: Path) -> str:
    """Two shards whose every sample has an undecodable image."""
    out.mkdir(parents=True, exist_ok=True)
    for s in range(2):
        with TarWriter(str(out / f"{s:05d}.tar")) as sink:
            for i in range(60):
                sink.write({"__key__": f"s{s}_{i:03d}", "jpg": b"not an image", "json": json.dumps({"caption": "never seen"})})
    return f"{out}/{{00000..00001}}.tar"
