"""Flickr30k annotations -> one caption file per split (``flickr30k_{train,val,test}.json``).

Input: ``ROOT/flickr_annotations_30k.csv`` (Hugging Face ``nlphuji/flickr30k``: columns
``raw`` (JSON list of 5 captions), ``sentids``, ``split``, ``filename``, ``img_id``) or Karpathy's
``dataset_flickr30k.json`` (``restval`` counted as train). Output records, in input order:
``{"image": filename, "image_id": filename stem, "captions": [5 strings]}``; captions keep their
text (whitespace normalised only). Everything is validated before anything is written; files are
written atomically, and a rerun gives byte-identical files. The command is ``minigpt4-prepare``
(``prepare_flickr30k.py``, ``minigpt4.commands.prepare``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image

from minigpt4.errors import DataError
from minigpt4.utils.io import atomic_write_files
from minigpt4.utils.progress import progress

from .records import CSV_NAME, IMAGE_DIR, SPLITS, join_captions, split_file_name

CSV_COLUMNS = ("raw", "split", "filename")
CAPTION_MODES = ("separate", "concat")
MAX_PROBLEMS = 20
MAX_EXAMPLES = 5


class PrepareError(DataError):
    """Bad input; the message names the file and the row (CSV line or JSON index)."""


@dataclass
class Row:
    filename: str
    split: str
    captions: list[str]
    where: str


@dataclass
class Summary:
    """What ``prepare_flickr30k`` read and wrote."""

    source: Path
    rows: dict[str, int] = field(default_factory=dict)
    captions: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    dropped_examples: list[str] = field(default_factory=list)
    restval: int = 0
    image_check: str = "exists"  # "none", "exists" (a stat per image) or "decode"
    files: list[Path] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"source: {self.source}"]
        for split in SPLITS:
            lines.append(f"  {split:5s}: {self.rows.get(split, 0):6d} images, {self.captions.get(split, 0):7d} captions")
        if self.restval:
            lines.append(f"  (Karpathy 'restval': {self.restval} images counted as train)")
        if self.image_check == "none":
            lines.append("  images not looked at (--skip-image-check)")
        else:
            what = "missing or undecodable" if self.image_check == "decode" else "missing"
            lines.append(f"  dropped rows ({what} image): {self.dropped}")
            if self.image_check == "exists":
                lines.append("  images not decoded (pass --check-images to open every image)")
        lines += [f"    {e}" for e in self.dropped_examples]
        lines += [f"wrote {p}" for p in self.files]
        return "\n".join(lines)


def _problems_error(problems: list[str], total: int) -> PrepareError:
    more = f"\n  ... and {total - len(problems)} more" if total > len(problems) else ""
    return PrepareError(f"{total} problem(s) in the input:\n  - " + "\n  - ".join(problems) + more)


class _Validator:
    """Checks rows one by one, collecting (at most MAX_PROBLEMS) problems."""

    def __init__(self, allow_restval: bool) -> None:
        self.allow_restval = allow_restval
        self.problems: list[str] = []
        self.total = 0
        self.seen: dict[str, str] = {}
        self.rows: list[Row] = []
        self.restval = 0

    def problem(self, msg: str) -> None:
        self.total += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(msg)

    def add(self, filename: object, split: object, captions: object, where: str, caption_field: str) -> None:
        ok = True
        if not isinstance(filename, str) or not filename.strip():
            self.problem(f"{where}: 'filename' is empty or not a string: {filename!r}")
            ok = False
        elif filename in self.seen:
            self.problem(f"{where}: duplicate filename {filename!r} (first at {self.seen[filename]})")
            ok = False
        else:
            self.seen[filename] = where
        allowed = SPLITS + (("restval",) if self.allow_restval else ())
        if split not in allowed:
            self.problem(f"{where}: unknown split {split!r}; expected one of {', '.join(allowed)}")
            ok = False
        if not isinstance(captions, list) or not captions or not all(isinstance(c, str) for c in captions):
            self.problem(f"{where}: {caption_field} must be a non-empty list of strings, got {str(captions)[:80]!r}")
            return
        clean = [" ".join(c.split()) for c in captions]
        if not all(clean):
            self.problem(f"{where}: {caption_field} contains an empty caption")
            ok = False
        if ok:
            if split == "restval":
                self.restval += 1
                split = "train"
            self.rows.append(Row(filename, split, clean, where))


def read_csv_rows(path: str | Path) -> tuple[list[Row], int]:
    """Validated rows of a ``flickr_annotations_30k.csv`` (and 0 restval rows)."""
    path = Path(path)
    if not path.is_file():
        raise PrepareError(
            f"{path}: file not found (expected the nlphuji/flickr30k annotation CSV {CSV_NAME}; or pass --karpathy-json PATH)"
        )
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise PrepareError(f"{path}: cannot parse as CSV: {e}") from None
    missing = [c for c in CSV_COLUMNS if c not in df.columns]
    if missing:
        raise PrepareError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}; "
            f"expected raw, sentids, split, filename, img_id"
        )
    v = _Validator(allow_restval=False)
    rows = zip(df["raw"], df["split"], df["filename"])
    for i, (raw, split, filename) in enumerate(progress(rows, total=len(df), desc="reading CSV", unit="row")):
        where = f"{path} line {i + 2} (row {i})"  # header is line 1, one record per line
        try:
            captions = json.loads(raw)
        except json.JSONDecodeError as e:
            v.problem(f"{where}: column 'raw' is not a JSON list of strings ({e.msg}): {raw[:80]!r}")
            continue
        v.add(filename, split, captions, where, "column 'raw'")
    if v.problems:
        raise _problems_error(v.problems, v.total)
    return v.rows, v.restval


def read_karpathy_rows(path: str | Path) -> tuple[list[Row], int]:
    """Validated rows of Karpathy's ``dataset_flickr30k.json`` and the number of restval images."""
    path = Path(path)
    if not path.is_file():
        raise PrepareError(f"{path}: file not found (expected Karpathy's dataset_flickr30k.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PrepareError(f"{path}: not valid JSON: {e}") from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise PrepareError(f"{path}: expected an object with an 'images' list (Karpathy format)")
    v = _Validator(allow_restval=True)
    for i, img in enumerate(progress(images, desc="reading Karpathy JSON", unit="image")):
        where = f"{path} images[{i}]"
        if not isinstance(img, dict):
            v.problem(f"{where}: expected an object, got {type(img).__name__}")
            continue
        sentences = img.get("sentences")
        if not isinstance(sentences, list) or not all(isinstance(s, dict) for s in sentences):
            v.problem(f"{where}: 'sentences' must be a list of objects with 'raw'")
            continue
        v.add(img.get("filename"), img.get("split"), [s.get("raw") for s in sentences], where, "'sentences[].raw'")
    if v.problems:
        raise _problems_error(v.problems, v.total)
    return v.rows, v.restval


def find_bad_images(rows: list[Row], image_dir: Path, decode: bool = True) -> list[tuple[Row, str]]:
    """(row, reason) for each image under ``image_dir`` that is missing or (``decode``) does not decode."""
    bad = []
    for row in progress(rows, desc="decoding images" if decode else "looking for images", unit="img", disable=not decode):
        path = image_dir / row.filename
        if not path.is_file():
            bad.append((row, "missing"))
            continue
        if not decode:
            continue
        try:
            with Image.open(path) as im:
                im.load()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            bad.append((row, f"cannot decode: {type(e).__name__}: {e}"))
    return bad


def annotations(rows: list[Row], caption_mode: str = "separate") -> dict[str, list[dict]]:
    """Per-split records ``{"image", "image_id", "captions"}`` in input order."""
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for r in rows:
        caps = r.captions if caption_mode == "separate" else [join_captions(r.captions)]
        out[r.split].append({"image": r.filename, "image_id": Path(r.filename).stem, "captions": caps})
    return out


def dumps_records(records: list[dict]) -> str:
    """One record per line, deterministic (same input -> same bytes)."""
    if not records:
        return "[]\n"
    return "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n]\n"


def prepare_flickr30k(
    root: str | Path,
    out_dir: str | Path | None = None,
    check_images: bool = False,
    strict: bool = False,
    caption_mode: str = "separate",
    karpathy_json: str | Path | None = None,
    skip_image_check: bool = False,
) -> Summary:
    """Validate the annotations under ``root`` (or ``karpathy_json``), look for every image under
    ``root/flickr30k-images`` (``check_images``: also decode it; ``skip_image_check``: neither), drop
    and count the rows of missing (or undecodable) images, or raise when ``strict``, and write
    ``out_dir/flickr30k_<split>.json`` (``..._concat.json`` in concat mode) for each split."""
    if caption_mode not in CAPTION_MODES:
        raise PrepareError(f"caption_mode must be one of {CAPTION_MODES}, got {caption_mode!r}")
    if skip_image_check and (strict or check_images):
        raise PrepareError("--skip-image-check does not look at the images: it cannot be combined with --check-images or --strict")
    root = Path(root)
    out_dir = Path(out_dir) if out_dir is not None else root
    source = Path(karpathy_json) if karpathy_json is not None else root / CSV_NAME
    rows, restval = read_karpathy_rows(source) if karpathy_json is not None else read_csv_rows(source)
    check = "none" if skip_image_check else "decode" if check_images else "exists"
    summary = Summary(source=source, restval=restval, image_check=check)
    if check != "none":
        image_dir = root / IMAGE_DIR
        if not image_dir.is_dir():
            raise PrepareError(
                f"{image_dir}: image folder not found (the rows of missing images are dropped; "
                f"give --root the folder with {IMAGE_DIR}/, or pass --skip-image-check to write the "
                "annotations without looking at the images)"
            )
        bad = find_bad_images(rows, image_dir, decode=check == "decode")
        examples = [f"{r.filename} ({reason}; {r.where})" for r, reason in bad[:MAX_EXAMPLES]]
        if bad and strict:
            what = "missing or undecodable" if check == "decode" else "missing"
            raise PrepareError(f"{len(bad)} of {len(rows)} images {what} under {image_dir} (--strict); first: " + "; ".join(examples))
        dropped = {id(r) for r, _ in bad}
        rows = [r for r in rows if id(r) not in dropped]
        summary.dropped, summary.dropped_examples = len(bad), examples
    anns = annotations(rows, caption_mode)
    if not out_dir.is_dir():
        out_dir.mkdir(parents=True)
    files = {out_dir / split_file_name(s, concat=caption_mode == "concat"): dumps_records(anns[s]) for s in SPLITS}
    atomic_write_files(files)
    summary.rows = {s: len(anns[s]) for s in SPLITS}
    summary.captions = {s: sum(len(a["captions"]) for a in anns[s]) for s in SPLITS}
    summary.files = list(files)
    return summary
