"""What both benchmarks share: running the real commands as subprocesses (timed, logged), reading
what they write (``log.txt``, ``metrics.json``), the benchmark data (real captions on synthetic
images), the machine description and the Markdown pieces of ``BENCHMARKS.md``."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import random
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minigpt4.errors import UserError

REPO = Path(__file__).resolve().parents[2]
REAL_CAPTIONS = REPO / "tests" / "data" / "karpathy_test_refs.json"  # the 1000 Karpathy test images x 5 captions
QUICKSTART = REPO / "cache" / "quickstart"


class BenchmarkError(UserError):
    """A benchmark input is missing, or one of the commands it runs failed (the message has its log)."""


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, *args]


def run(cmd: Sequence[str], log_file: Path, env: dict[str, str] | None = None, echo: bool = True) -> float:
    """Run ``cmd`` in the repository root with its output in ``log_file``; returns the wall seconds.
    A non-zero exit is a ``BenchmarkError`` holding the command and the end of its output."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", **(env or {})}
    if echo:
        print(f"  $ {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    with open(log_file, "w") as out:
        rc = subprocess.call(list(cmd), cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=full_env)
    seconds = time.perf_counter() - t0
    if rc != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-25:])
        raise BenchmarkError(f"exit status {rc} after {seconds:.0f} s: {shlex.join(cmd)}\n--- end of {log_file} ---\n{tail}")
    if echo:
        print(f"    {seconds:.1f} s", flush=True)
    return seconds


def run_folder(output_dir: Path, job_name: str) -> Path:
    """The one run folder a training command made under ``output_dir/job_name``."""
    found = sorted(p for p in (output_dir / job_name).iterdir() if p.is_dir())
    if len(found) != 1:
        raise BenchmarkError(f"expected one run folder in {output_dir / job_name}, found {[p.name for p in found]}")
    return found[0]


def epoch_records(run_dir: Path) -> list[dict[str, Any]]:
    """``log.txt``: one record per finished epoch."""
    path = run_dir / "log.txt"
    if not path.is_file():
        raise BenchmarkError(f"{path} is missing: the training run wrote no epoch record")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_metrics(save_path: Path, names: Sequence[str]) -> list[dict[str, Any]]:
    """Each result's ``metrics.json`` under ``save_path``, in the order of ``names``."""
    out = []
    for name in names:
        path = save_path / name / "metrics.json"
        if not path.is_file():
            raise BenchmarkError(f"{path} is missing: the evaluation wrote no result for {name}")
        out.append(json.loads(path.read_text()))
    return out


MAX_MEM = re.compile(r"\bmax mem (\d+)")


def peak_memory_mb(log_file: Path) -> int | None:
    """The largest ``max mem`` (MiB) of the console train lines in a command's output."""
    values = [int(m) for m in MAX_MEM.findall(log_file.read_text(errors="replace"))]
    return max(values) if values else None


# ---- data -------------------------------------------------------------------------------------
def real_caption_records(path: Path = REAL_CAPTIONS) -> list[list[str]]:
    """The captions of each record of the real Flickr30k file (5 per image)."""
    if not path.is_file():
        raise BenchmarkError(f"{path} is missing (the real Flickr30k Karpathy-test captions in tests/data)")
    return [list(r["captions"]) for r in json.loads(path.read_text())]


def write_caption_json(out: Path, image_ann: Path, images: int, seed: int = 0) -> Path:
    """A ``caption_json`` file pairing the first ``images`` images of ``image_ann`` (a prepared
    annotation file) with the REAL captions of ``images`` Flickr30k images (drawn with ``seed``), so
    that caption lengths, hence padding and length grouping, are those of real captions."""
    if not image_ann.is_file():
        raise BenchmarkError(
            f"{image_ann} is missing: run `bash quickstart.sh` once (it writes the synthetic "
            "images and the stand-ins under cache/quickstart), or pass other paths"
        )
    pictures = json.loads(image_ann.read_text())
    captions = real_caption_records()
    if images > min(len(pictures), len(captions)):
        raise BenchmarkError(
            f"{images} images asked for, but {image_ann} has {len(pictures)} and {REAL_CAPTIONS.name} has {len(captions)} caption records"
        )
    random.Random(seed).shuffle(captions)
    records = [{"image": p["image"], "image_id": p["image_id"], "captions": c} for p, c in zip(pictures, captions)]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(records[:images], indent=0))
    return out


def distinct_images(ann: Path, image_root: Path, limit: int | None = None) -> dict[str, int]:
    """``{"images", "distinct"}``: the records of a caption file (the first ``limit``) and how many
    different file contents they hold (the feature cache is keyed by content: a byte-identical copy is
    a cache hit, not an encoder pass)."""
    records = json.loads(ann.read_text())[:limit]
    digests = {hashlib.sha256((image_root / r["image"]).read_bytes()).hexdigest() for r in records}
    return {"images": len(records), "distinct": len(digests)}


# ---- the machine and the report ---------------------------------------------------------------
def load_average() -> float | None:
    """The 1-minute load average (other work on the machine disturbs the numbers)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {
        "cpu": cpu,
        "cores": cores,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "commit": _git_commit(),
        "load_end": load_average(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _git_commit() -> str | None:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}{' + uncommitted changes' if dirty else ''}" if sha else None


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A Markdown table; ``align``: one of ``l``/``r`` per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def machine_lines(info: dict[str, Any], command: str, wall: float) -> str:
    gpu = f"; GPU {info['gpu']}" if info.get("gpu") else ""
    load = (
        f"; 1-minute load average {info.get('load_start')} before the runs, {info.get('load_end')} after them (their own work included)"
        if info.get("load_end") is not None
        else ""
    )
    return (
        f"- machine: {info['cpu']}, {info['cores']} cores{gpu}; torch {info['torch']} "
        f"({info['torch_threads']} threads), Python {info['python']}{load}\n"
        f"- date: {info['date']}; code: {info.get('commit') or 'unknown'}\n"
        f"- command: `{command}` ({wall:.0f} s in all)\n"
    )


def begin(name: str) -> str:
    return f"<!-- benchmarks:{name}:begin -->"


def end(name: str) -> str:
    return f"<!-- benchmarks:{name}:end -->"


def write_section(path: Path, name: str, text: str) -> None:
    """Replace the ``name`` section of the Markdown file ``path`` (between its markers), or append it;
    the rest of the file is kept."""
    block = f"{begin(name)}\n{text.rstrip()}\n{end(name)}"
    old = path.read_text() if path.is_file() else "# Benchmarks\n"
    if begin(name) in old and end(name) in old:
        head, rest = old.split(begin(name), 1)
        new = head + block + rest.split(end(name), 1)[1]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


def publish(out: Path | None, name: str, text: str, what: str) -> None:
    """Write ``text`` as the ``name`` section of ``out`` (saying so, with ``what`` after it), or print it."""
    if out:
        write_section(out, name, text)
        print(f"wrote the {name} section of {out}{what}")
    else:
        print(text)
