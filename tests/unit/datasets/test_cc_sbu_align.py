"""cc_sbu_align (the official MiniGPT-4 stage-2 data): captions used as written, instructions from the
prompt file, processed images, bad annotation files named with the record, and a run config through
load_config and the task."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import minigpt4
from minigpt4.config import PACKAGE_DIR, ConfigError, read_yaml
from minigpt4.config.schema import defaults
from minigpt4.datasets.builder import TRAIN_KEYS
from minigpt4.datasets.caption_datasets import CaptionTrainDataset
from minigpt4.datasets.records import CaptionRecord, read_cc_sbu_align
from minigpt4.errors import DataError
from minigpt4.registry import DATASETS, PROCESSORS, TASKS
from tests.helpers.configs import tiny_model_section, write_yaml

S = 56
LONG = (
    "The image shows a Busy street market at dusk, with vendors selling fruit, vegetables; spices and "
    "hand-made crafts (baskets, pottery & rugs) under colourful awnings. People walk between the stalls, "
    "some carrying bags, others stopping to talk!  In the background, tall buildings rise against an "
    "orange sky: their windows glow. A dog sleeps near a cart #3, and a child points at the balloons."
)
CAPTIONS = {
    "2": "A Red square on a BLUE background.",
    "7": "Two circles: one green, one yellow!",
    "11": '  The picture (taken indoors) shows a "cat"; it\'s asleep...  ',
    "12": LONG,
    "30": "Black triangle ~ white wall #1.",
    "41": "A plain image.",
}
INSTRUCTIONS = [line for line in (PACKAGE_DIR / "prompts/alignment.txt").read_text().splitlines() if line.strip()]


def make_storage(root: Path, captions: dict = CAPTIONS) -> Path:
    """The official layout: ``filter_cap.json`` and ``image/<image_id>.jpg`` (real JPEGs)."""
    (root / "image").mkdir(parents=True)
    for i, image_id in enumerate(captions):
        Image.new("RGB", (S + 8 * i, S), (40 * i, 255 - 40 * i, 90)).save(root / "image" / f"{image_id}.jpg")
    anns = [{"image_id": k, "caption": v} for k, v in captions.items()]
    (root / "filter_cap.json").write_text(json.dumps({"annotations": anns}))
    return root


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> Path:
    return make_storage(tmp_path_factory.mktemp("cc_sbu_align"))


def entry(storage: Path, **kw) -> dict:
    return {"build_info": {"storage": str(storage)}, "vis_processor": {"train": {"name": "blip2_image_train", "image_size": S}}, **kw}


def build(storage: Path, **kw) -> CaptionTrainDataset:
    return DATASETS.get("cc_sbu_align").from_config(entry(storage, **kw)).build_datasets()["train"]


def test_items_answer_the_caption_as_written(storage):
    assert len(LONG.split()) > 50
    ds = build(storage)
    assert isinstance(ds, CaptionTrainDataset) and len(ds) == len(CAPTIONS)
    for index, (image_id, caption) in enumerate(CAPTIONS.items()):
        item = ds[index]
        assert set(item) == {"image", "instruction_input", "answer", "image_id"}
        assert item["answer"] == caption and item["image_id"] == image_id
        assert item["instruction_input"] in INSTRUCTIONS
        assert item["image"].dtype == torch.float32 and item["image"].shape == (3, S, S)
    assert ds.lengths(0)[3] == len(ds[3]["instruction_input"].split()) + len(LONG.split())  # not cut to 50 words
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=ds.collater)))
    assert batch["image"].shape == (4, 3, S, S) and batch["answer"] == list(CAPTIONS.values())[:4]


def test_instruction_drawn_from_the_prompt_file(storage, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("<Img><ImageHere></Img> Tell me about it.\n<Img><ImageHere></Img> What is here?\n")
    ds = build(storage, prompt_path=str(prompts), seed=3)
    drawn = {ds[(epoch, i)]["instruction_input"] for epoch in range(4) for i in range(len(ds))}
    assert drawn == {"<Img><ImageHere></Img> Tell me about it.", "<Img><ImageHere></Img> What is here?"}


def test_reader_records(tmp_path):
    path = tmp_path / "filter_cap.json"
    path.write_text(json.dumps({"annotations": [{"image_id": "2", "caption": "A Cat."}, {"image_id": 5, "caption": "x"}]}))
    assert read_cc_sbu_align(path) == [CaptionRecord("2.jpg", "2", ("A Cat.",)), CaptionRecord("5.jpg", "5", ("x",))]


def test_identity_processor_and_schema():
    proc = PROCESSORS.get("caption_as_written").from_config({})
    assert proc(CAPTIONS["11"]) == CAPTIONS["11"]
    schema = DATASETS.get("cc_sbu_align").SCHEMA
    assert {"builder", "build_info", "vis_processor", "prompt_path", "seed", "sample_ratio"} <= set(schema)
    assert "caption_sampling" not in schema and schema["text_processor"].ignored  # official configs name one
    assert all(schema[k] is TRAIN_KEYS[k] for k in ("prompt_path", "seed", "sample_ratio"))
    assert set(schema["build_info"].children) == {"storage"}


def test_default_yaml_matches_schema():
    cls = DATASETS.get("cc_sbu_align")
    values = read_yaml(PACKAGE_DIR / cls.DEFAULT_CONFIG_PATH)["datasets"]["cc_sbu_align"]
    assert set(values) <= set(cls.SCHEMA) and set(values["build_info"]) == {"storage"}
    for key, value in defaults(cls.SCHEMA).items():
        if key not in ("builder", "build_info"):
            assert values.get(key, value) == value, key


def _rec(i):
    return {"image_id": str(i), "caption": f"Caption {i}."}


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", r"not valid JSON \(line 1"),
        (json.dumps([_rec(0)]), r'expected \{"annotations": .*got list'),
        (json.dumps({"images": []}), r"expected .*got keys \['images'\]"),
        (json.dumps({"annotations": {"0": _rec(0)}}), r"expected \{\"annotations\""),
        (json.dumps({"annotations": []}), "the annotations list is empty"),
        (json.dumps({"annotations": [_rec(0), _rec(1), "x"]}), r"annotations\[2\]: expected an object"),
        (
            json.dumps({"annotations": [_rec(0), _rec(1), {"caption": "A."}]}),
            r"annotations\[2\]: key 'image_id' is missing; the record has keys \['caption'\]",
        ),
        (json.dumps({"annotations": [_rec(0), _rec(1), {"image_id": "9"}]}), r"annotations\[2\]: key 'caption' is missing"),
        (
            json.dumps({"annotations": [_rec(0), _rec(1), {"image_id": "9", "caption": ["A.", "B."]}]}),
            r"annotations\[2\]: 'caption' must be a non-empty string, got \['A.', 'B.'\]",
        ),
        (json.dumps({"annotations": [_rec(0), _rec(1), {"image_id": "9", "caption": " "}]}), r"annotations\[2\]: 'caption'"),
        (json.dumps({"annotations": [_rec(0), _rec(1), {"image_id": None, "caption": "A."}]}), r"annotations\[2\]: 'image_id'"),
        (json.dumps({"annotations": [_rec(0), _rec(1), _rec(0)]}), r"annotations\[2\]: image_id '0' already used by annotations\[0\]"),
    ],
)
def test_bad_annotations_name_file_and_record(tmp_path, text, match):
    root = make_storage(tmp_path / "data", {"0": "a", "1": "b"})
    (root / "filter_cap.json").write_text(text)
    with pytest.raises(DataError, match=match) as e:
        build(root)
    assert str(e.value).startswith(f"{root / 'filter_cap.json'}: ")


@pytest.mark.parametrize("remove", ["filter_cap.json", "image"])
def test_missing_layout_names_path_and_expected_layout(tmp_path, remove):
    root = make_storage(tmp_path / "data", {"0": "a"})
    target = root / remove
    target.unlink() if target.is_file() else shutil.rmtree(target)
    with pytest.raises(DataError) as e:
        build(root)
    msg = str(e.value)
    assert msg.startswith(f"{target}: not found") and f"{root}/filter_cap.json" in msg and f"{root}/image/<image_id>.jpg" in msg


def test_missing_storage_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"cc_sbu_align.build_info.storage in the dataset config: directory not found"):
        build(tmp_path / "nope")


def test_missing_image_skipped_or_strict(tmp_path):
    root = make_storage(tmp_path / "data", {"0": "a", "1": "b"})
    (root / "image" / "1.jpg").unlink()
    assert build(root)[1] is None
    strict = DATASETS.get("cc_sbu_align").from_config(entry(root), strict=True).build_datasets()["train"]
    with pytest.raises(DataError, match=r"1\.jpg .*filter_cap\.json item 1"):
        strict[1]


def test_run_config_through_load_config_and_task(storage, tmp_path, tiny_stack):
    cfg_path = write_yaml(
        tmp_path / "stage2.yaml",
        {
            "model": tiny_model_section(tiny_stack),
            "datasets": {
                "cc_sbu_align": {
                    "build_info": {"storage": str(storage)},
                    "vis_processor": {"train": {"name": "blip2_image_train", "image_size": S}},
                }
            },
            "run": {"feature_cache": None},
        },
    )
    cfg = minigpt4.load_config(cfg_path)
    e = cfg.datasets.cc_sbu_align
    assert e.builder == "cc_sbu_align" and e.build_info.storage == str(storage.resolve())
    assert e.prompt_path.endswith("minigpt4/prompts/alignment.txt") and "text_processor" not in e
    task = TASKS.get(cfg.run.task).from_config(cfg.run)
    ds = task.build_datasets(cfg.datasets)["cc_sbu_align"]
    assert [ds[i]["answer"] for i in range(len(ds))] == list(CAPTIONS.values())
    assert ds[0]["image"].shape == (3, S, S)
