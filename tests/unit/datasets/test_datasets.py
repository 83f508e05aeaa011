"""Dataset builders: documented item keys/types, caption_sampling sizes, seeded draws, DDP sharding,
skip-and-count of bad images, split selection, caption_json, and loading through load_config."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

import minigpt4
from minigpt4.config import PACKAGE_DIR, ConfigError, read_yaml
from minigpt4.config.schema import defaults
from minigpt4.datasets import CaptionEvalDataset, CaptionTrainDataset, DataError, ImageLoadError
from minigpt4.datasets.flickr30k_prepare import prepare_flickr30k
from minigpt4.processors import clean_caption
from minigpt4.quickstart.synthetic import make_synthetic_flickr30k
from minigpt4.registry import DATASETS

S = 56
N_TRAIN, N_VAL, N_TEST = 24, 3, 3
INSTRUCTIONS = [line for line in (PACKAGE_DIR / "prompts/alignment.txt").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flickr")
    make_synthetic_flickr30k(root, 30, seed=2, image_size=64)
    prepare_flickr30k(root)
    return root


def _vis(size=S):
    return {"train": {"image_size": size}, "eval": {"image_size": size}}


def _train_entry(root: Path, **kw) -> dict:
    return {"build_info": {"ann_path": str(root), "image_path": str(root / "flickr30k-images")}, "vis_processor": _vis(), **kw}


def _build(name: str, entry: dict, strict: bool = False):
    return DATASETS.get(name).from_config(entry, strict=strict).build_datasets()


def _records(root: Path, split: str) -> list[dict]:
    return json.loads((root / f"flickr30k_{split}.json").read_text())


def test_train_item_keys_and_types(root):
    ds = _build("flickr30k_caption", _train_entry(root))["train"]
    assert isinstance(ds, CaptionTrainDataset) and len(ds) == 5 * N_TRAIN
    recs = _records(root, "train")
    for index in (0, 6, len(ds) - 1):
        item = ds[index]
        assert set(item) == {"image", "instruction_input", "answer", "image_id"}
        assert item["image"].dtype == torch.float32 and item["image"].shape == (3, S, S)
        assert item["instruction_input"] in INSTRUCTIONS and "<ImageHere>" in item["instruction_input"]
        rec = recs[index // 5]  # "all": image-major, then caption
        assert item["image_id"] == rec["image_id"] and isinstance(item["image_id"], str)
        assert item["answer"] == clean_caption(rec["captions"][index % 5])


def test_caption_sampling_sizes_and_answers(root):
    recs = _records(root, "train")
    rnd = _build("flickr30k_caption", _train_entry(root, caption_sampling="random"))["train"]
    cat = _build("flickr30k_caption", _train_entry(root, caption_sampling="concat", text_processor={"train": {"max_words": 200}}))["train"]
    assert len(rnd) == len(cat) == N_TRAIN
    for i in range(N_TRAIN):
        assert rnd[i]["answer"] in [clean_caption(c) for c in recs[i]["captions"]]
        assert cat[i]["answer"] == clean_caption(" ".join(recs[i]["captions"]), 200)
        assert len(cat[i]["answer"].split()) > 20


def test_random_draws_depend_on_seed_epoch_index_only(root):
    entry = _train_entry(root, caption_sampling="random", seed=11)
    a, b = _build("flickr30k_caption", entry)["train"], _build("flickr30k_caption", entry)["train"]

    def draws(ds, epoch):
        ds.set_epoch(epoch)
        return [(ds[i]["answer"], ds[i]["instruction_input"]) for i in range(len(ds))]

    e0 = draws(a, 0)
    assert draws(b, 0) == e0  # another rank / a resumed run
    assert [a[(0, i)]["answer"] for i in range(len(a))] == [x for x, _ in e0]  # (epoch, index) indexing
    e1 = draws(a, 1)
    assert e1 != e0 and draws(a, 0) == e0
    assert len({ins for _, ins in e0 + e1}) == len(INSTRUCTIONS)  # every instruction gets drawn
    other = _build("flickr30k_caption", {**entry, "seed": 12})["train"]
    assert draws(other, 0) != e0


def test_random_crop_seeded_per_item(root):
    entry = _train_entry(root, vis_processor={"train": {"image_size": S, "min_scale": 0.5}})
    ds = _build("flickr30k_caption", entry)["train"]
    assert torch.equal(ds[3]["image"], ds[3]["image"])
    ds.set_epoch(1)
    e1 = ds[3]["image"]
    ds.set_epoch(0)
    assert not torch.equal(ds[3]["image"], e1)


@pytest.mark.parametrize("sampling,drop", [("all", False), ("random", False), ("random", True)])
def test_distributed_sampler_covers_every_sample_once(root, sampling, drop):
    ds = _build("flickr30k_caption", _train_entry(root, caption_sampling=sampling))["train"]
    if drop:  # odd length: DistributedSampler pads with repeats, which must be the only duplicates
        ds.index = ds.index[:-1]
    shards = [list(DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=3, drop_last=False)) for r in (0, 1)]
    seen = shards[0] + shards[1]
    assert set(seen) == set(range(len(ds)))
    assert len(seen) - len(set(seen)) == len(ds) % 2
    assert len(shards[0]) == len(shards[1])


def test_dataloader_batches_with_collater(root):
    ds = _build("flickr30k_caption", _train_entry(root))["train"]
    sampler = DistributedSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=0)
    batch = next(iter(DataLoader(ds, batch_size=4, sampler=sampler, collate_fn=ds.collater)))
    assert batch["image"].shape == (4, 3, S, S) and batch["skipped"] == 0
    assert all(isinstance(batch[k], list) and len(batch[k]) == 4 for k in ("instruction_input", "answer", "image_id"))


@pytest.fixture()
def broken_root(root, tmp_path) -> tuple[Path, list[str]]:
    dst = tmp_path / "broken"
    shutil.copytree(root, dst)
    names = [r["image"] for r in _records(root, "train")[:2]]
    (dst / "flickr30k-images" / names[0]).unlink()
    (dst / "flickr30k-images" / names[1]).write_bytes(b"\xff\xd8\xff garbage")
    return dst, names


def test_bad_images_skipped_and_counted(broken_root):
    dst, names = broken_root
    ds = _build("flickr30k_caption", _train_entry(dst, caption_sampling="random"))["train"]
    assert ds[0] is None and ds[1] is None and ds[2] is not None
    batch = ds.collater([ds[i] for i in range(4)])
    assert batch["skipped"] == 2 and batch["image"].shape == (2, 3, S, S) and len(batch["answer"]) == 2
    assert ds.collater([ds[0], ds[1]]) == {"skipped": 2}


def test_bad_images_strict_errors_name_the_file(broken_root):
    dst, names = broken_root
    ds = _build("flickr30k_caption", _train_entry(dst), strict=True)["train"]
    with pytest.raises(ImageLoadError, match=rf"cannot load image .*{names[0]}.*run.strict_data"):
        ds[0]
    with pytest.raises(ImageLoadError, match=rf"cannot load image .*{names[1]}"):
        ds[5]
    builder = DATASETS.get("flickr30k_eval").from_config(_train_entry(dst, split="val"))
    builder.strict = True  # what the runner sets from run.strict_data
    assert builder.build_datasets()["val"].strict is True
    ds = _build("flickr30k_caption", _train_entry(dst))["train"]
    ds.strict = True
    with pytest.raises(ImageLoadError):
        ds[0]


@pytest.mark.parametrize("split,n", [("test", N_TEST), ("val", N_VAL)])
def test_eval_items(root, split, n):
    entry = {"build_info": {"ann_path": str(root), "image_path": str(root / "flickr30k-images")}, "split": split, "vis_processor": _vis()}
    sets = _build("flickr30k_eval", entry)
    assert list(sets) == [split]
    ds = sets[split]
    assert isinstance(ds, CaptionEvalDataset) and len(ds) == n
    for item, rec in zip(ds, _records(root, split)):
        assert set(item) == {"image", "image_id", "captions", "image_path"}
        assert item["image"].shape == (3, S, S) and item["image"].dtype == torch.float32
        assert item["captions"] == rec["captions"] and len(item["captions"]) == 5  # raw references
        assert item["image_path"] == rec["image"] and item["image_id"] == rec["image_id"]
    batch = ds.collater([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, S, S) and len(batch["captions"][0]) == 5 and batch["skipped"] == 0


def test_eval_ann_path_file_and_missing_split(root, tmp_path):
    entry = {"build_info": {"ann_path": str(root / "flickr30k_val.json"), "image_path": str(root / "flickr30k-images")}, "split": "val"}
    assert len(_build("flickr30k_eval", entry)["val"]) == N_VAL
    empty = tmp_path / "anns"
    empty.mkdir()
    entry["build_info"]["ann_path"] = str(empty)
    with pytest.raises(DataError, match=r"flickr30k_val.json: annotation file not found .*prepare_flickr30k.py"):
        _build("flickr30k_eval", entry)


def _custom_json(root: Path, path: Path) -> Path:
    recs = _records(root, "train")[:6]
    data = [{"file": r["image"], "text": r["captions"] if i % 2 else r["captions"][0], "id": 100 + i} for i, r in enumerate(recs)]
    path.write_text(json.dumps(data))
    return path


def test_caption_json_train_and_eval(root, tmp_path):
    ann = _custom_json(root, tmp_path / "mine.json")
    entry = {
        "build_info": {"ann_path": str(ann), "image_path": str(root / "flickr30k-images")},
        "image_key": "file",
        "captions_key": "text",
        "image_id_key": "id",
        "vis_processor": _vis(),
    }
    train = _build("caption_json", entry)["train"]
    assert len(train) == 1 + 5 + 1 + 5 + 1 + 5  # single strings count as one caption
    assert set(train[0]) == {"image", "instruction_input", "answer", "image_id"} and train[0]["image_id"] == "100"
    test = _build("caption_json", {**entry, "split": "test"})["test"]
    assert len(test) == 6 and test[0]["captions"] == [_records(root, "train")[0]["captions"][0]]
    assert test[1]["image_id"] == "101" and len(test[1]["captions"]) == 5


@pytest.mark.parametrize(
    "data,match",
    [
        ({"x": 1}, r"mine.json: expected a JSON list"),
        ([{"image": "a.jpg", "captions": []}], r"mine.json: item 0: key 'captions' must be"),
        (
            [{"image": "a.jpg", "captions": ["ok"]}, {"captions": ["ok"]}],
            r"mine.json: item 1: key 'image' \(image_key\) is missing; the item has keys \['captions'\]",
        ),
        (
            [{"image": "a.jpg", "text": ["ok"]}],
            r"mine.json: item 0: key 'captions' \(captions_key\) is missing; the item has keys \['image', 'text'\]",
        ),
        ([{"image": "", "captions": ["ok"]}], r"mine.json: item 0: key 'image' must be a non-empty string"),
    ],
)
def test_caption_json_bad_annotations(root, tmp_path, data, match):
    (tmp_path / "mine.json").write_text(json.dumps(data))
    entry = {"build_info": {"ann_path": str(tmp_path / "mine.json"), "image_path": str(root)}}
    with pytest.raises(DataError, match=match):
        _build("caption_json", entry)


def test_prompt_file_validated(root, tmp_path):
    (tmp_path / "p.txt").write_text("<ImageHere> describe\nno image token here\n")
    with pytest.raises(ValueError, match=r"p.txt line 2: instruction must contain <ImageHere>"):
        _build("flickr30k_caption", _train_entry(root, prompt_path=str(tmp_path / "p.txt")))


@pytest.mark.parametrize(
    "entry,match",
    [
        ({"caption_smapling": "all"}, r"flickr30k_caption.caption_smapling in .*: unknown key. Did you mean 'caption_sampling'"),
        ({"caption_sampling": "some"}, r"caption_sampling in .*: expected one of \['all', 'random', 'concat'\]"),
        ({"vis_processor": {"train": {"name": "blip2_img_train"}}}, r"vis_processor in .*: train: Unknown processor 'blip2_img_train'"),
        ({"text_processor": {"train": {"max_word": 3}}}, r"processor 'blip_caption' key 'max_word': unknown key"),
    ],
)
def test_bad_entry_from_config(root, entry, match):
    with pytest.raises(ValueError, match=match):
        DATASETS.get("flickr30k_caption").from_config({**_train_entry(root), **entry})


@pytest.mark.parametrize("name", ["flickr30k_caption", "flickr30k_eval", "caption_json"])
def test_default_yaml_matches_schema(name):
    cls = DATASETS.get(name)
    entry = read_yaml(PACKAGE_DIR / cls.DEFAULT_CONFIG_PATH)["datasets"][name]
    assert set(entry) <= set(cls.SCHEMA)
    for key, value in defaults(cls.SCHEMA).items():
        if key not in ("builder", "build_info"):
            assert entry[key] == value, key
    for key in set(cls.SCHEMA) - {"builder", "build_info"}:
        assert cls.SCHEMA[key].doc


# ---- through minigpt4.load_config (needs the lead's tiny model stack) ----


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _model(stack):
    return {"arch": "minigpt4", "model_type": "tiny", **stack}


def test_load_config_builds_datasets(root, tmp_path, tiny_stack):
    ann = _custom_json(root, tmp_path / "mine.json")
    images = str(root / "flickr30k-images")
    cfg_path = _write(
        tmp_path / "run.yaml",
        {
            "model": _model(tiny_stack),
            "datasets": {
                "flickr30k_caption": {"build_info": {"ann_path": str(root), "image_path": images}, "caption_sampling": "random"},
                "my_captions": {
                    "builder": "caption_json",
                    "build_info": {"ann_path": str(ann), "image_path": images},
                    "image_key": "file",
                    "captions_key": "text",
                },
            },
            "evaluation_datasets": {"flickr30k_eval": {"build_info": {"ann_path": str(root), "image_path": images}}},
        },
    )
    cfg = minigpt4.load_config(
        cfg_path,
        [
            "datasets.flickr30k_caption.vis_processor.train.image_size=56",
            "datasets.my_captions.vis_processor.train.image_size=56",
            "evaluation_datasets.flickr30k_eval.vis_processor.eval.image_size=56",
        ],
    )
    entry = cfg.datasets.flickr30k_caption
    assert entry.prompt_path.endswith("minigpt4/prompts/alignment.txt") and entry.seed == 0
    assert entry.vis_processor.train == {"name": "blip2_image_train", "image_size": 56}
    train = DATASETS.get(entry.builder).from_config(entry, strict=cfg.run.strict_data).build_datasets()["train"]
    assert len(train) == N_TRAIN and train[0]["image"].shape == (3, 56, 56)
    mine = cfg.datasets.my_captions
    assert mine.builder == "caption_json"
    assert len(DATASETS.get(mine.builder).from_config(mine).build_datasets()["train"]) == 18
    ev = cfg.evaluation_datasets.flickr30k_eval
    assert ev.split == "test"
    assert len(DATASETS.get(ev.builder).from_config(ev).build_datasets()["test"]) == N_TEST


def test_load_config_typo_names_the_key(root, tmp_path, tiny_stack):
    images = str(root / "flickr30k-images")
    cfg_path = _write(
        tmp_path / "run.yaml",
        {
            "model": _model(tiny_stack),
            "datasets": {
                "flickr30k_caption": {
                    "build_info": {"ann_path": str(root), "image_path": images},
                    "caption_smapling": "all",
                    "vis_processor": {"eval": {"name": "blip2_image_evl"}},
                },
                "flickr30k_captoin": {},
            },
        },
    )
    with pytest.raises(ConfigError) as e:
        minigpt4.load_config(cfg_path)
    msg = str(e.value)
    assert f"datasets.flickr30k_caption.caption_smapling in {cfg_path}: unknown key. Did you mean 'caption_sampling'?" in msg
    assert "datasets.flickr30k_caption.vis_processor" in msg and "Unknown processor 'blip2_image_evl'" in msg
    assert "datasets.flickr30k_captoin" in msg and "Did you mean 'flickr30k_caption'?" in msg


def test_load_config_missing_data_paths(tmp_path, tiny_stack):
    cfg_path = _write(
        tmp_path / "run.yaml",
        {"model": _model(tiny_stack), "datasets": {"flickr30k_caption": {"build_info": {"ann_path": str(tmp_path / "nope")}}}},
    )
    with pytest.raises(ConfigError) as e:
        minigpt4.load_config(cfg_path)
    msg = str(e.value)
    assert f"datasets.flickr30k_caption.build_info.ann_path in {cfg_path}: path not found" in msg
    assert "build_info.image_path in " in msg and "data/flickr30k/flickr30k-images" in msg


@pytest.mark.slow
def test_yaml_only_caption_json_dataset_trains_tiny(root, tmp_path, tiny_stack):
    """A new dataset added through a YAML entry alone (builder: caption_json) trains in the tiny setup;
    a missing image in it is skipped and counted."""
    from minigpt4.commands.train import main as train_main

    images = tmp_path / "images"
    shutil.copytree(root / "flickr30k-images", images)
    recs = _records(root, "train")[:8]
    (images / recs[3]["image"]).unlink()
    ann = tmp_path / "shapes.json"
    ann.write_text(json.dumps([{"picture": r["image"], "sentences": r["captions"]} for r in recs]))
    cfg_path = _write(
        tmp_path / "train.yaml",
        {
            "model": {**_model(tiny_stack), "ckpt": None, "max_txt_len": 32},
            "datasets": {
                "my_shapes": {
                    "builder": "caption_json",
                    "build_info": {"ann_path": str(ann), "image_path": str(images)},
                    "image_key": "picture",
                    "captions_key": "sentences",
                    "caption_sampling": "random",
                    "vis_processor": {"train": {"name": "blip2_image_train", "image_size": 56}},
                }
            },
            "run": {
                "max_epoch": 1,
                "iters_per_epoch": 3,
                "batch_size_train": 4,
                "num_workers": 0,
                "amp": False,
                "device": "cpu",
                "warmup_steps": 1,
                "log_freq": 1,
                "output_dir": str(tmp_path / "out"),
                "job_name": "caption_json_tiny",
                "feature_cache": str(tmp_path / "feature_cache"),
            },
        },
    )
    records = train_main(["--cfg-path", str(cfg_path)])
    assert len(records) == 1
    rec = records[0]
    assert rec["global_step"] == 3 and rec["loss"] == rec["loss"] and rec["loss"] > 0  # finite, real loss
    assert rec["skipped"] >= 1 and rec["samples"] + rec["skipped"] == 12
    assert list((tmp_path / "out" / "caption_json_tiny").iterdir())  # a run folder was written
