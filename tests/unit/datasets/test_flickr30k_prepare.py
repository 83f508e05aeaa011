"""prepare_flickr30k: per-split files in CSV order, 5 separate captions, byte-identical reruns,
Karpathy JSON equivalence, image checks, and a clear error (file + line) for each bad input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from minigpt4.cli import prepare
from minigpt4.datasets.flickr30k_prepare import PrepareError, prepare_flickr30k
from minigpt4.quickstart.synthetic import make_synthetic_flickr30k
from tests.helpers.paths import REPO

N = 30
SPLITS = ("train", "val", "test")
OUT_NAMES = [f"flickr30k_{s}.json" for s in SPLITS]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flickr")
    make_synthetic_flickr30k(root, N, seed=5, image_size=48)
    return root


def _csv(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "flickr_annotations_30k.csv", dtype=str, keep_default_na=False)


def _karpathy_from_csv(df: pd.DataFrame, path: Path, restval_first_train: bool = False) -> Path:
    images, done = [], False
    for _, row in df.iterrows():
        split = row["split"]
        if restval_first_train and split == "train" and not done:
            split, done = "restval", True
        sentids = json.loads(row["sentids"])
        images.append(
            {
                "filename": row["filename"],
                "imgid": int(row["img_id"]),
                "split": split,
                "sentids": sentids,
                "sentences": [
                    {"raw": c, "tokens": c.lower().split(), "imgid": int(row["img_id"]), "sentid": s}
                    for c, s in zip(json.loads(row["raw"]), sentids)
                ],
            }
        )
    path.write_text(json.dumps({"images": images, "dataset": "flickr30k"}))
    return path


def _bytes(d: Path) -> dict[str, bytes]:
    return {n: (d / n).read_bytes() for n in OUT_NAMES}


def _copy_root(sample: Path, dst: Path, images: bool = False) -> Path:
    dst.mkdir()
    shutil.copy(sample / "flickr_annotations_30k.csv", dst)
    if images:
        shutil.copytree(sample / "flickr30k-images", dst / "flickr30k-images")
    return dst


def test_splits_order_and_separate_captions(sample, tmp_path):
    summary = prepare_flickr30k(sample, out_dir=tmp_path)
    df = _csv(sample)
    for split in SPLITS:
        records = json.loads((tmp_path / f"flickr30k_{split}.json").read_text())
        rows = df[df["split"] == split]
        assert len(records) == len(rows) == summary.rows[split]
        assert [r["image"] for r in records] == rows["filename"].tolist()  # CSV order
        for rec, (_, row) in zip(records, rows.iterrows()):
            assert rec == {"image": row["filename"], "image_id": Path(row["filename"]).stem, "captions": json.loads(row["raw"])}
            assert len(rec["captions"]) == 5
        assert summary.captions[split] == 5 * len(rows)
    assert summary.rows == {"train": 24, "val": 3, "test": 3} and summary.dropped == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUT_NAMES)  # no temp files left


def test_rerun_is_byte_identical(sample, tmp_path):
    prepare_flickr30k(sample, out_dir=tmp_path)
    first = _bytes(tmp_path)
    prepare_flickr30k(sample, out_dir=tmp_path)
    assert _bytes(tmp_path) == first


def test_default_out_dir_is_root(sample, tmp_path):
    root = _copy_root(sample, tmp_path / "root", images=True)
    prepare_flickr30k(root)
    assert all((root / n).is_file() for n in OUT_NAMES)


def test_karpathy_json_gives_same_files(sample, tmp_path):
    prepare_flickr30k(sample, out_dir=tmp_path / "csv")
    kj = _karpathy_from_csv(_csv(sample), tmp_path / "dataset_flickr30k.json")
    summary = prepare_flickr30k(sample, out_dir=tmp_path / "kj", karpathy_json=kj)
    assert _bytes(tmp_path / "kj") == _bytes(tmp_path / "csv")
    assert summary.restval == 0


def test_karpathy_restval_counts_as_train(sample, tmp_path):
    kj = _karpathy_from_csv(_csv(sample), tmp_path / "k.json", restval_first_train=True)
    prepare_flickr30k(sample, out_dir=tmp_path / "csv")
    summary = prepare_flickr30k(sample, out_dir=tmp_path / "kj", karpathy_json=kj)
    assert summary.restval == 1 and summary.rows["train"] == 24
    assert "'restval': 1 images counted as train" in summary.format()
    assert _bytes(tmp_path / "kj") == _bytes(tmp_path / "csv")


def test_whitespace_normalised_only(tmp_path):
    caps = ["  A  dog\truns.  ", "Two CATS sit (quietly)!", "x", "y", "z"]
    pd.DataFrame(
        {"raw": [json.dumps(caps)], "sentids": ["[0, 1, 2, 3, 4]"], "split": ["test"], "filename": ["1.jpg"], "img_id": ["0"]}
    ).to_csv(tmp_path / "flickr_annotations_30k.csv", index=False)
    prepare_flickr30k(tmp_path, skip_image_check=True)  # no image files here
    rec = json.loads((tmp_path / "flickr30k_test.json").read_text())[0]
    assert rec["captions"] == ["A dog runs.", "Two CATS sit (quietly)!", "x", "y", "z"]
    assert json.loads((tmp_path / "flickr30k_train.json").read_text()) == []


def test_concat_mode(sample, tmp_path):
    prepare_flickr30k(sample, out_dir=tmp_path, caption_mode="concat")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"flickr30k_{s}_concat.json" for s in SPLITS)
    rec = json.loads((tmp_path / "flickr30k_val_concat.json").read_text())[0]
    raw = json.loads(_csv(sample).set_index("filename").loc[rec["image"], "raw"])
    assert rec["captions"] == [" ".join(raw)]


def test_check_images_drops_and_counts(sample, tmp_path):
    root = _copy_root(sample, tmp_path / "root", images=True)
    df = _csv(sample)
    train_files = df[df["split"] == "train"]["filename"].tolist()
    (root / "flickr30k-images" / train_files[0]).unlink()
    (root / "flickr30k-images" / train_files[1]).write_bytes(b"\xff\xd8\xff not really a jpeg")
    summary = prepare_flickr30k(root, out_dir=tmp_path / "out", check_images=True)
    assert summary.dropped == 2 and summary.rows["train"] == 22
    assert f"{train_files[0]} (missing" in summary.dropped_examples[0]
    assert f"{train_files[1]} (cannot decode" in summary.dropped_examples[1]
    images = [r["image"] for r in json.loads((tmp_path / "out" / "flickr30k_train.json").read_text())]
    assert train_files[0] not in images and train_files[1] not in images
    with pytest.raises(PrepareError, match=r"2 of 30 images missing or undecodable .*--strict.*" + train_files[0]):
        prepare_flickr30k(root, out_dir=tmp_path / "strict", check_images=True, strict=True)
    assert not (tmp_path / "strict").exists()


def _bad_csv(sample: Path, tmp_path: Path, edit) -> Path:
    root = tmp_path / "bad"
    root.mkdir()
    df = _csv(sample)
    df = edit(df) if edit else df
    df.to_csv(root / "flickr_annotations_30k.csv", index=False)
    return root


def _set(row: int, col: str, value: str):
    def edit(df):
        df.loc[row, col] = value
        return df

    return edit


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda df: df.drop(columns=["split"]), r"flickr_annotations_30k.csv: missing column\(s\) split"),
        (_set(4, "raw", "not json"), r"flickr_annotations_30k.csv line 6 \(row 4\): column 'raw' is not a JSON list"),
        (_set(4, "raw", '{"a": 1}'), r"line 6 \(row 4\): column 'raw' must be a non-empty list of strings"),
        (_set(7, "raw", "[1, 2]"), r"line 9 \(row 7\): column 'raw' must be a non-empty list of strings"),
        (_set(7, "raw", '["ok", "   "]'), r"line 9 \(row 7\): column 'raw' contains an empty caption"),
        (_set(2, "split", "trian"), r"line 4 \(row 2\): unknown split 'trian'; expected one of train, val, test"),
        (_set(2, "split", "restval"), r"line 4 \(row 2\): unknown split 'restval'"),
        (
            _set(9, "filename", "synth_00003.jpg"),
            r"line 11 \(row 9\): duplicate filename 'synth_00003.jpg' \(first at .*line 5 \(row 3\)\)",
        ),
    ],
)
def test_bad_csv_errors_and_no_output(sample, tmp_path, edit, match):
    root = _bad_csv(sample, tmp_path, edit)
    out = tmp_path / "out"
    with pytest.raises(PrepareError, match=match):
        prepare_flickr30k(root, out_dir=out)
    assert not out.exists() and sorted(p.name for p in root.iterdir()) == ["flickr_annotations_30k.csv"]


def test_error_keeps_existing_outputs_untouched(sample, tmp_path):
    prepare_flickr30k(sample, out_dir=tmp_path / "out")
    before = _bytes(tmp_path / "out")
    root = _bad_csv(sample, tmp_path, _set(29, "split", "dev"))
    with pytest.raises(PrepareError, match="line 31"):
        prepare_flickr30k(root, out_dir=tmp_path / "out")
    assert _bytes(tmp_path / "out") == before


def test_missing_csv(tmp_path):
    with pytest.raises(PrepareError, match=r"flickr_annotations_30k.csv: file not found"):
        prepare_flickr30k(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda d: {"dataset": "flickr30k"}, r"k.json: expected an object with an 'images' list"),
        (lambda d: d["images"][3]["sentences"][1].update(raw=5), r"k.json images\[3\]: 'sentences\[\].raw' must be"),
        (
            lambda d: d["images"][6].update(split="dev"),
            r"k.json images\[6\]: unknown split 'dev'; expected one of train, val, test, restval",
        ),
        (lambda d: d["images"][6].update(filename=d["images"][0]["filename"]), r"images\[6\]: duplicate filename"),
    ],
)
def test_bad_karpathy_json(sample, tmp_path, mutate, match):
    path = _karpathy_from_csv(_csv(sample), tmp_path / "k.json")
    data = json.loads(path.read_text())
    new = mutate(data)
    path.write_text(json.dumps(new if isinstance(new, dict) else data))
    with pytest.raises(PrepareError, match=match):
        prepare_flickr30k(sample, out_dir=tmp_path / "out", karpathy_json=path)
    assert not (tmp_path / "out").exists()


def test_missing_images_are_dropped_by_default_and_the_rest_only_with_check_images(sample, tmp_path):
    """By default each image is looked for (a stat): rows of missing images are dropped and counted, an
    undecodable file is kept (decoding is --check-images); --strict makes a missing image an error;
    --skip-image-check writes every row without looking."""
    root = _copy_root(sample, tmp_path / "root", images=True)
    train_files = _csv(sample).query("split == 'train'")["filename"].tolist()
    (root / "flickr30k-images" / train_files[0]).unlink()
    (root / "flickr30k-images" / train_files[1]).write_bytes(b"not an image")
    summary = prepare_flickr30k(root, out_dir=tmp_path / "out")
    assert summary.dropped == 1 and summary.rows["train"] == 23 and f"{train_files[0]} (missing" in summary.dropped_examples[0]
    assert "dropped rows (missing image): 1" in summary.format() and "pass --check-images" in summary.format()
    with pytest.raises(PrepareError, match=r"1 of 30 images missing under .*\(--strict\); first: " + train_files[0]):
        prepare_flickr30k(root, out_dir=tmp_path / "strict", strict=True)
    kept = prepare_flickr30k(root, out_dir=tmp_path / "all", skip_image_check=True)
    assert kept.dropped == 0 and kept.rows["train"] == 24 and "--skip-image-check" in kept.format()
    with pytest.raises(PrepareError, match="cannot be combined"):
        prepare_flickr30k(root, out_dir=tmp_path / "o", skip_image_check=True, strict=True)
    no_images = _copy_root(sample, tmp_path / "no_images", images=False)
    with pytest.raises(PrepareError, match=r"flickr30k-images: image folder not found .*--skip-image-check"):
        prepare_flickr30k(no_images, out_dir=tmp_path / "o2")
    assert not (tmp_path / "o2").exists()


def test_main_prints_summary_and_errors(sample, tmp_path, capsys):
    assert prepare(["--root", str(sample), "--out-dir", str(tmp_path / "o"), "--check-images"]) == 0
    out = capsys.readouterr().out
    assert "train:     24 images,     120 captions" in out and "dropped rows (missing or undecodable image): 0" in out
    root = _bad_csv(sample, tmp_path, _set(0, "split", "nope"))
    assert prepare(["--root", str(root), "--out-dir", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "\nerror: " in "\n" + err and "flickr_annotations_30k.csv line 2 (row 0): unknown split 'nope'" in err


@pytest.mark.slow  # starts a Python process
def test_script_cli(sample, tmp_path):
    root = _bad_csv(sample, tmp_path, _set(3, "raw", "[oops"))
    r = subprocess.run([sys.executable, "prepare_flickr30k.py", "--root", str(root)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "\nerror: " in r.stderr and "Traceback" not in r.stderr
    assert "line 5 (row 3): column 'raw' is not a JSON list of strings" in r.stderr
    assert sorted(p.name for p in root.iterdir()) == ["flickr_annotations_30k.csv"]
    ok = subprocess.run(
        [sys.executable, "prepare_flickr30k.py", "--root", str(sample), "--out-dir", str(tmp_path / "o")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "val  :      3 images,      15 captions" in ok.stdout
