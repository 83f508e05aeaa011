"""``minigpt4-download``: fetch and verify the weights of a variant (and Flickr30k) from the manifest,
resumably; ``--dry-run`` says what would be fetched and the disk it needs; ends with ``weights.yaml``
and the ``--options`` to use."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

import yaml

from minigpt4.download.fetch import DownloadError, fetch_drive, fetch_hf, fetch_url, is_present, part_path, sha256_of
from minigpt4.download.manifest import BUILTIN, NAMES, VARIANTS, Artefact, load_manifest, select
from minigpt4.errors import run_command
from minigpt4.utils.io import atomic_write_text
from minigpt4.utils.prompt import STAGE2_TEXT

WEIGHTS_YAML = "weights.yaml"
MODEL_TYPE = {"vicuna-7b": "vicuna0", "vicuna-13b": "vicuna0", "llama2-7b": "llama2"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Fetch and verify MiniGPT-4's weights (and Flickr30k) into one folder.")
    ap.add_argument("--variant", choices=VARIANTS, required=True)
    ap.add_argument("--only", default=None, metavar="NAMES", help=f"comma-separated, of {','.join(NAMES)} (default: all but flickr30k)")
    ap.add_argument("--out", required=True, metavar="DIR", help="where the files go (a second run fetches only what is missing)")
    ap.add_argument("--dry-run", action="store_true", help="list what would be fetched, its size and the disk needed; fetch nothing")
    ap.add_argument("--hash", action="store_true", help="also check the sha256 of files already there")
    ap.add_argument("--manifest", default=str(BUILTIN), metavar="FILE", help="a manifest in place of the built-in one")
    return ap.parse_args(argv)


def _only(text: str | None) -> list[str]:
    if text is None:
        return [n for n in NAMES if n != "flickr30k"]
    names = [n.strip() for n in text.split(",") if n.strip()]
    if bad := [n for n in names if n not in NAMES]:
        raise DownloadError(f"--only {','.join(bad)}: expected names among {','.join(NAMES)}")
    return names


def _status(a: Artefact, out: Path) -> str:
    if is_present(a, out):
        return "present"
    part = part_path(out / a.file)
    return f"partial ({part.stat().st_size:,} bytes)" if a.hf is None and part.is_file() else "missing"


def _gb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e9:.2f} GB"


def plan(chosen: list[Artefact], out: Path) -> int:
    """Print what each artefact is and whether it is here; returns the bytes still to fetch."""
    need = unknown = 0
    for a in chosen:
        status = _status(a, out)
        if status != "present":
            need += a.size or 0
            unknown += a.size is None
        pin = "" if a.hf is None or a.hf.pinned else " (revision not pinned)"
        print(f"{a.name:9s} {a.file:36s} {_gb(a.size):>9s}  {status:9s} {a.source}{pin}")
    if unknown:
        print(f"({unknown} artefact(s) of unknown size not counted below)")
    return need


def write_weights_yaml(chosen: list[Artefact], out: Path, variant: str) -> Path | None:
    """``out/weights.yaml``: a model section with the fetched paths (for ``--cfg-path`` tools such as
    minigpt4-check), and the ``--options`` line for train and eval configs."""
    paths = {
        a.key.split(".", 1)[1]: str((out / a.file).resolve()) for a in chosen if a.key and a.key.startswith("model.") and is_present(a, out)
    }
    if not paths:
        return None
    model_type = MODEL_TYPE[variant]
    model = {"arch": "minigpt4", "model_type": model_type, **STAGE2_TEXT[model_type], **paths}
    path = out / WEIGHTS_YAML
    atomic_write_text(path, yaml.safe_dump({"model": model}, sort_keys=False))
    print(f"wrote {path}; add to a train or eval command: --options " + " ".join(f"model.{k}={v}" for k, v in paths.items()))
    return path


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    chosen = select(load_manifest(args.manifest), args.variant, _only(args.only))
    need = plan(chosen, out)
    out_disk = out if out.exists() else next(p for p in out.absolute().parents if p.exists())
    free = shutil.disk_usage(out_disk).free
    print(f"to fetch: {_gb(need)}; free at {out_disk}: {_gb(free)}")
    if args.dry_run:
        return
    if need > free:
        raise DownloadError(f"{out}: {_gb(need)} to fetch but {_gb(free)} free; free some space or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    for a in chosen:
        if is_present(a, out):
            if args.hash and a.sha256 and sha256_of(out / a.file) != a.sha256:
                raise DownloadError(f"{a.name} ({out / a.file}): sha256 is not the manifest's {a.sha256}: delete it and rerun")
            continue
        print(f"fetching {a.name}: {a.file} from {a.source}")
        fetch_hf(a, out) if a.hf is not None else fetch_drive(a, out) if a.gdrive else fetch_url(a, out)
    write_weights_yaml(chosen, out, args.variant)
    if any(a.name == "flickr30k" for a in chosen):
        print(f"Flickr30k: python prepare_flickr30k.py --root {out / next(a.file for a in chosen if a.name == 'flickr30k')}")


def run(argv: Sequence[str] | None = None) -> int:
    return run_command(main, argv)
