"""The CPU benchmark at stand-in size: the quickstart's stand-ins and configs, synthetic images with
REAL Flickr30k captions, through ``train.py`` and ``python -m minigpt4.cli eval`` as subprocesses.

Training (1 process, fixed batch, the quickstart's ``num_workers``): one sample per image per data
pass (``caption_sampling: random``) and epochs of exactly one pass, so a fresh cache's first epoch
encodes every image once (cold) and the second reads every image from the cache (warm). Four runs
of ``--epochs`` epochs: no cache and cache, each with random and length-grouped batches. The no-cache
runs' first epoch pairs with the cold one, their later epochs with the warm ones.

Evaluation: ``--ckpt`` x k (k = 1 and 5) in one job on the quickstart's synthetic test split, with an
empty feature-cache folder (cold) and then the same folder again (warm).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .common import QUICKSTART, REPO, BenchmarkError, epoch_records, python_cmd, read_metrics, run, run_folder

TRAIN_CONFIG = REPO / "train_configs" / "minigpt4_flickr_quickstart.yaml"
EVAL_CONFIG = REPO / "eval_configs" / "minigpt4_flickr_quickstart_eval.yaml"


@dataclass(frozen=True)
class TrainCell:
    name: str
    cache: bool
    grouped: bool


TRAIN_CELLS = (
    TrainCell("nocache-random", False, False),
    TrainCell("nocache-grouped", False, True),
    TrainCell("cache-random", True, False),
    TrainCell("cache-grouped", True, True),
)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Markdown file whose CPU section is (re)written, e.g. BENCHMARKS.md (default: print the section only)",
    )
    ap.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where the raw results go (default: WORK/results.json "
        "with --work, else cache/benchmarks/<the temporary work folder's name>.json)",
    )
    ap.add_argument(
        "--work", type=Path, default=None, help="work folder (default: a new one under cache/benchmarks/, removed at the end unless --keep)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the work folder (runs, logs, caches)")
    ap.add_argument("--standins", type=Path, default=QUICKSTART / "standins", help="the quickstart's stand-ins")
    ap.add_argument("--data", type=Path, default=QUICKSTART / "synthetic_flickr30k", help="the quickstart's sample")
    ap.add_argument("--images", type=int, default=960, help="training images (= samples per pass and epoch)")
    ap.add_argument("--batch-size", type=int, default=12, help="training samples per step (1 process)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per training run (>= 2: cold/first, warm/later)")
    ap.add_argument(
        "--max-txt-len",
        type=int,
        default=300,
        help="model.max_txt_len (the stand-in's 40 truncates "
        "about half of the real captions, whose 12 words are ~40 stand-in tokens; 300 as the real fine-tune)",
    )
    ap.add_argument(
        "--eval-limit", type=int, default=None, help="test images per evaluation (--limit; default: the whole synthetic test split, 188)"
    )
    ap.add_argument("--eval-k", type=int, nargs="+", default=[1, 5], help="checkpoints per evaluation job")
    ap.add_argument(
        "--eval-cache",
        nargs="+",
        default=["cold", "warm"],
        choices=["cold", "warm"],
        help="evaluation jobs per k: over an empty cache folder, then over the same folder again",
    )
    ap.add_argument("--max-new-tokens", type=int, default=None, help="evaluation run.max_new_tokens (default: the config's)")
    ap.add_argument(
        "--train-cells",
        nargs="+",
        default=[c.name for c in TRAIN_CELLS],
        choices=[c.name for c in TRAIN_CELLS],
        help="training runs to make (default: all four)",
    )
    ap.add_argument("--no-eval", action="store_true", help="training only")


def check_args(args: argparse.Namespace) -> None:
    """Argument and input problems, before anything runs."""
    if args.images < args.batch_size or args.images % args.batch_size:
        raise BenchmarkError(
            f"--images {args.images}: must be a positive multiple of --batch-size {args.batch_size} "
            "(an epoch is exactly one pass, so a cold epoch encodes every image once)"
        )
    if args.epochs < 2:
        raise BenchmarkError("--epochs must be >= 2 (the first epoch is the cold / warm-up one)")
    if (args.eval_limit is not None and args.eval_limit < 1) or any(k < 1 for k in args.eval_k):
        raise BenchmarkError("--eval-limit and --eval-k must be positive")
    if "warm" in args.eval_cache and "cold" not in args.eval_cache:
        raise BenchmarkError("--eval-cache warm needs cold too (the warm job reuses the cold job's cache folder)")
    available = args.epochs * len(args.train_cells) + 1  # + pretrained
    if not args.no_eval and max(args.eval_k) > available:
        raise BenchmarkError(f"--eval-k {max(args.eval_k)}: the training runs give {available - 1} checkpoints (+ pretrained)")
    for path in (
        args.standins / "llama" / "config.json",
        args.standins / "eva_vit_g.pth",
        args.standins / "blip2_pretrained.pth",
        args.data / "flickr30k_train.json",
        args.data / "flickr30k_test.json",
    ):
        if not path.exists():
            raise BenchmarkError(
                f"{path} is missing: run `bash quickstart.sh` once (it builds the stand-ins and "
                "the synthetic sample under cache/quickstart), or pass --standins / --data"
            )


def selected_cells(args: argparse.Namespace) -> list[TrainCell]:
    return [c for c in TRAIN_CELLS if c.name in args.train_cells]


def model_options(standins: Path, max_txt_len: int) -> list[str]:
    return [
        f"model.max_txt_len={max_txt_len}",
        f"model.llama_model={standins / 'llama'}",
        f"model.vit_ckpt={standins / 'eva_vit_g.pth'}",
        f"model.q_former_model={standins / 'blip2_pretrained.pth'}",
    ]


def train_command(args: argparse.Namespace, work: Path, ann: Path, cell: TrainCell) -> list[str]:
    steps = args.images // args.batch_size
    entry = "datasets.flickr30k_caption"
    cache = str(work / "features" / cell.name) if cell.cache else "null"
    return python_cmd(
        "train.py",
        "--cfg-path",
        str(TRAIN_CONFIG),
        "--options",
        *model_options(args.standins, args.max_txt_len),
        f"{entry}.builder=caption_json",
        f"{entry}.build_info.ann_path={ann}",
        f"{entry}.build_info.image_path={args.data / 'flickr30k-images'}",
        f"{entry}.caption_sampling=random",
        f"run.batch_size_train={args.batch_size}",
        f"run.iters_per_epoch={steps}",
        f"run.max_epoch={args.epochs}",
        f"run.log_freq={steps}",
        f"run.group_by_length={str(cell.grouped).lower()}",
        f"run.feature_cache={cache}",
        "run.device=cpu",
        f"run.output_dir={work / 'runs'}",
        f"run.job_name={cell.name}",
    )


def train(args: argparse.Namespace, work: Path, ann: Path) -> dict[str, Any]:
    """Each training run: its epoch records, wall seconds and checkpoints."""
    out = {}
    for cell in selected_cells(args):
        print(f"== training: {cell.name} ({args.epochs} epochs of {args.images // args.batch_size} steps)", flush=True)
        wall = run(train_command(args, work, ann, cell), work / "logs" / f"train-{cell.name}.txt")
        run_dir = run_folder(work / "runs", cell.name)
        out[cell.name] = {
            **asdict(cell),
            "wall_s": round(wall, 1),
            "records": epoch_records(run_dir),
            "checkpoints": [str(p) for p in sorted(run_dir.glob("checkpoint_[0-9]*.pth"))],
        }
    return out


def eval_checkpoints(trained: dict[str, Any], work: Path) -> list[str]:
    """The trained checkpoints under unique names (results go to <save-path>/<file stem>/), then pretrained."""
    folder = work / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    specs = []
    for name, cell in trained.items():
        for path in cell["checkpoints"]:
            dest = folder / f"{name}-{Path(path).name}"
            shutil.copy2(path, dest)
            specs.append(str(dest))
    return specs + ["pretrained"]


def eval_command(args: argparse.Namespace, specs: list[str], cache: Path, save: Path) -> list[str]:
    entry = "evaluation_datasets.flickr30k_eval.build_info"
    tokens = [f"run.max_new_tokens={args.max_new_tokens}"] if args.max_new_tokens else []
    limit = ["--limit", str(args.eval_limit)] if args.eval_limit else []
    return python_cmd(
        "-m",
        "minigpt4.cli",
        "eval",
        "--cfg-path",
        str(EVAL_CONFIG),
        *[a for s in specs for a in ("--ckpt", s)],
        "--save-path",
        str(save),
        *limit,
        "--options",
        *model_options(args.standins, args.max_txt_len),
        f"{entry}.ann_path={args.data / 'flickr30k_test.json'}",
        f"{entry}.image_path={args.data / 'flickr30k-images'}",
        f"run.feature_cache={cache}",
        "run.device=cpu",
        *tokens,
    )


def evaluate(args: argparse.Namespace, work: Path, specs: list[str]) -> dict[str, Any]:
    """Per k: a cold job (empty cache folder) and a warm one (the same folder): wall seconds and each
    result's ``num_images``, ``feature_cache`` and ``seconds``."""
    out = {}
    for k in args.eval_k:
        chosen = specs[:k]  # k = 1 is the first of k = 5
        cache = work / "eval-features" / f"k{k}"
        for state in args.eval_cache:
            name = f"k{k}-{state}"
            print(f"== evaluation: {k} checkpoint(s), {state} cache, {args.eval_limit or 'all'} images", flush=True)
            save = work / "eval" / name
            wall = run(eval_command(args, chosen, cache, save), work / "logs" / f"eval-{name}.txt")
            results = read_metrics(save, [Path(s).stem if s != "pretrained" else s for s in chosen])
            out[name] = {
                "k": k,
                "cache": state,
                "wall_s": round(wall, 1),
                "results": [{key: r.get(key) for key in ("name", "num_images", "feature_cache", "seconds")} for r in results],
            }
    return out


def main(args: argparse.Namespace, command: str) -> dict[str, Any]:
    from .common import distinct_images, load_average, machine, publish, write_caption_json
    from .cpu_report import render

    check_args(args)
    t0, load_start = time.perf_counter(), load_average()
    temporary = args.work is None
    if temporary:
        (REPO / "cache" / "benchmarks").mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="cpu-", dir=REPO / "cache" / "benchmarks"))
    else:
        work = args.work.resolve()
        if work.exists() and any(work.iterdir()):
            raise BenchmarkError(f"--work {work} is not empty: cold caches need an empty folder")
        work.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {work}", flush=True)
    try:
        ann = write_caption_json(work / "train_ann.json", args.data / "flickr30k_train.json", args.images)
        trained = train(args, work, ann)
        evals = {} if args.no_eval else evaluate(args, work, eval_checkpoints(trained, work))
        images = args.data / "flickr30k-images"
        data = {"train": distinct_images(ann, images), "test": distinct_images(args.data / "flickr30k_test.json", images, args.eval_limit)}
        results = {
            "machine": {**machine(), "load_start": load_start},
            "command": command,
            "data": data,
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("func",)},
            "train": trained,
            "eval": evals,
            "wall_s": round(time.perf_counter() - t0, 1),
        }
        json_path = args.json or (work.parent / f"{work.name}.json" if temporary else work / "results.json")
        json_path.write_text(json.dumps(results, indent=1, default=str))
        print(f"raw results: {json_path}")
        publish(args.out, "cpu", render(results), "")
        return results
    finally:
        if temporary and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
