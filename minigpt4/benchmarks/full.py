"""The full-size benchmark: random weights at the official sizes (``minigpt4-random-stack --size
vicuna-7b``, ``vicuna-13b`` or ``llama2-7b``), the real fine-tune and evaluation configs of the variant,
on a GPU.

1. the random stack (built once into ``--stack``, about 16 GB for 7B; the tokenizer learns the captions);
2. ``python -m minigpt4.cli cache`` fills a feature cache for the training images (its wall time is
   the frozen stack's encoding cost);
3. per batch size (12, 64): ``train.py`` with the cache off (the ViT and Q-Former run every step) and
   with the filled cache (warm throughout), ``--epochs`` epochs of one pass each; the last epoch's
   ``samples_per_s``, ``tokens_per_s``, ``padding`` and ``mfu`` from ``log.txt``, the peak memory
   from the console's ``max mem`` (CUDA allocator peak over the run);
4. ``python -m minigpt4.cli eval --ckpt pretrained --limit N`` at ``run.max_new_tokens=30``: images/s
   of generation and of the encoding pass (random weights rarely stop early: an upper bound).

Data: synthetic images (``cache/quickstart``) with the REAL Flickr30k captions, as the CPU benchmark.
``--dry-run`` checks every command's config and options (``load_config``) and runs nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from minigpt4.commands.random_stack import size_argument

from .common import (
    QUICKSTART,
    REPO,
    BenchmarkError,
    epoch_records,
    peak_memory_mb,
    python_cmd,
    read_metrics,
    run,
    run_folder,
    write_caption_json,
)

# size -> (train config, eval config, has a Q-Former)
VARIANTS = {
    "vicuna-7b": ("minigpt4_flickr_finetune.yaml", "minigpt4_flickr_eval.yaml", True),
    "vicuna-13b": ("minigpt4_flickr_finetune.yaml", "minigpt4_flickr_eval.yaml", True),
    "llama2-7b": ("minigpt4_llama2_flickr_finetune.yaml", "minigpt4_llama2_flickr_eval.yaml", False),
}
CACHES = ("off", "warm")


def configs(size: str) -> tuple[Path, Path]:
    train, evaluation, _ = VARIANTS[size]
    return REPO / "train_configs" / train, REPO / "eval_configs" / evaluation


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--size",
        default="vicuna-7b",
        type=size_argument,
        choices=list(VARIANTS),
        help="official sizes of a MiniGPT-4 variant (vicuna0: an earlier name of vicuna-7b, accepted with a note)",
    )
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="run.device of every command")
    ap.add_argument(
        "--stack",
        type=Path,
        default=None,
        help="random stack folder (llama/, eva_vit_g.pth, blip2_pretrained.pth), built when missing "
        "(default: cache/benchmarks/random-SIZE)",
    )
    ap.add_argument(
        "--data",
        type=Path,
        default=QUICKSTART / "synthetic_flickr30k",
        help="prepared sample whose images are used (flickr30k_train.json + flickr30k-images/)",
    )
    ap.add_argument("--work", type=Path, default=None, help="runs, logs, caches (default: cache/benchmarks/full-SIZE-<time>)")
    ap.add_argument("--out", type=Path, default=None, help="Markdown file whose full-size section is (re)written")
    ap.add_argument("--images", type=int, default=960, help="training images (one pass per epoch; a multiple of every batch size)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[12, 64])
    ap.add_argument("--epochs", type=int, default=2, help="epochs per run; the last one is reported")
    ap.add_argument("--cache", nargs="+", default=list(CACHES), choices=CACHES, help="training with the cache off / warm")
    ap.add_argument("--eval-images", type=int, default=200)
    ap.add_argument("--max-new-tokens", type=int, default=30)
    ap.add_argument("--peak-tflops", type=float, default=None, help="run.peak_tflops (default: known GPUs by name)")
    ap.add_argument(
        "--train-options",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="more overrides for the cache fill and training commands (e.g. run.num_workers=8)",
    )
    ap.add_argument(
        "--eval-options",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="more overrides for the evaluation command (e.g. run.batch_size_eval=32)",
    )
    ap.add_argument("--dry-run", action="store_true", help="check the commands' configs and print them; run nothing")


def check_args(args: argparse.Namespace) -> None:
    bad = [b for b in args.batch_sizes if b < 1 or args.images % b]
    if bad or args.images < max(args.batch_sizes):
        raise BenchmarkError(f"--images {args.images} must be a multiple of every --batch-sizes value (not of {bad})")
    if args.epochs < 1 or args.eval_images < 1 or args.max_new_tokens < 1:
        raise BenchmarkError("--epochs, --eval-images and --max-new-tokens must be positive")
    if args.device == "cuda" and not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            raise BenchmarkError("--device cuda: no CUDA device is visible (torch.cuda.is_available() is false)")


def model_options(stack: Path, size: str) -> list[str]:
    blip2 = [f"model.q_former_model={stack / 'blip2_pretrained.pth'}"] if VARIANTS[size][2] else []
    return [f"model.llama_model={stack / 'llama'}", f"model.vit_ckpt={stack / 'eva_vit_g.pth'}", *blip2, "model.ckpt=null"]


def train_options(args: argparse.Namespace, stack: Path, work: Path, ann: Path, batch: int | None, cache: str, job: str) -> list[str]:
    entry = "datasets.flickr30k_caption"
    steps = args.images // (batch or max(args.batch_sizes))
    opts = [
        *model_options(stack, args.size),
        f"{entry}.builder=caption_json",
        f"{entry}.build_info.ann_path={ann}",
        f"{entry}.build_info.image_path={args.data / 'flickr30k-images'}",
        f"{entry}.caption_sampling=random",
        f"run.feature_cache={work / 'features' if cache == 'warm' else 'null'}",
        f"run.device={args.device}",
        f"run.output_dir={work / 'runs'}",
        f"run.job_name={job}",
        f"run.iters_per_epoch={steps}",
        f"run.max_epoch={args.epochs}",
        f"run.log_freq={steps}",
    ]
    if batch:
        opts.append(f"run.batch_size_train={batch}")
    if args.peak_tflops:
        opts.append(f"run.peak_tflops={args.peak_tflops}")
    return opts + list(args.train_options)


def eval_options(args: argparse.Namespace, stack: Path, work: Path, ann: Path) -> list[str]:
    entry = "evaluation_datasets.flickr30k_eval"
    return [
        *model_options(stack, args.size),
        f"{entry}.builder=caption_json",
        f"{entry}.split=test",
        f"{entry}.build_info.ann_path={ann}",
        f"{entry}.build_info.image_path={args.data / 'flickr30k-images'}",
        f"run.feature_cache={work / 'eval-features'}",
        f"run.device={args.device}",
        f"run.max_new_tokens={args.max_new_tokens}",
        *args.eval_options,
    ]


def commands(args: argparse.Namespace, stack: Path, work: Path, ann: Path, eval_ann: Path) -> dict[str, list[str]]:
    """Every command of the benchmark, by name, in the order they run (the stack build aside)."""
    train_config, eval_config = configs(args.size)
    out = {
        "cache-fill": python_cmd(
            "-m",
            "minigpt4.cli",
            "cache",
            "--cfg-path",
            str(train_config),
            "--options",
            *train_options(args, stack, work, ann, None, "warm", "fill"),
        )
    }
    for batch in args.batch_sizes:
        for cache in args.cache:
            job = f"b{batch}-cache-{cache}"
            out[f"train-{job}"] = python_cmd(
                "train.py", "--cfg-path", str(train_config), "--options", *train_options(args, stack, work, ann, batch, cache, job)
            )
    out["eval"] = python_cmd(
        "-m",
        "minigpt4.cli",
        "eval",
        "--cfg-path",
        str(eval_config),
        "--ckpt",
        "pretrained",
        "--save-path",
        str(work / "eval"),
        "--limit",
        str(args.eval_images),
        "--options",
        *eval_options(args, stack, work, eval_ann),
    )
    if "warm" not in args.cache:
        del out["cache-fill"]
    return out


def dry_run(cmds: dict[str, list[str]], stack: Path) -> None:
    """Load each command's config with its options (unknown keys, types, missing files are errors;
    the stack's own files may be missing: it is built first)."""
    from minigpt4.config import load_config
    from minigpt4.errors import ConfigError

    if not (stack / "llama").is_dir():
        print(f"note: {stack} is not built yet (the benchmark builds it first); its paths are not checked")
    for name, cmd in cmds.items():
        print(f"{name}: {' '.join(cmd)}")
        try:
            load_config(cmd[cmd.index("--cfg-path") + 1], cmd[cmd.index("--options") + 1 :])
        except ConfigError as e:
            problems = [p for p in e.problems if str(stack) not in p]
            if problems:
                raise ConfigError(problems) from None


def build_stack(args: argparse.Namespace, stack: Path, ann: Path, work: Path) -> float | None:
    last = "blip2_pretrained.pth" if VARIANTS[args.size][2] else "minigpt4_ckpt.pth"
    if (stack / "llama" / "config.json").is_file() and (stack / last).is_file():
        print(f"== random {args.size} stack: reusing {stack}")
        return None
    print(f"== random {args.size} stack: building {stack} (about {28 if '13b' in args.size else 16} GB)", flush=True)
    return run(
        python_cmd(
            "-m", "minigpt4.cli", "random-stack", "--size", args.size, "--device", args.device, "--out", str(stack), "--captions", str(ann)
        ),
        work / "logs" / "stack.txt",
    )


def train_result(work: Path, job: str, log_file: Path, wall: float) -> dict[str, Any]:
    records = epoch_records(run_folder(work / "runs", job))
    last = records[-1]
    keys = ("epoch", "seconds", "samples_per_s", "tokens_per_s", "padding", "mfu", "feature_cache", "samples")
    return {
        "wall_s": round(wall, 1),
        "last_epoch": {k: last.get(k) for k in keys},
        "peak_memory_mib": peak_memory_mb(log_file),
        "records": records,
    }


def main(args: argparse.Namespace, command: str) -> dict[str, Any]:
    from .common import load_average, machine, publish
    from .full_report import render

    check_args(args)
    t0, load_start = time.perf_counter(), load_average()
    stack = (args.stack or REPO / "cache" / "benchmarks" / f"random-{args.size}").resolve()
    if args.dry_run and args.work is None:  # nothing to keep: the annotation files go to a temporary folder
        with tempfile.TemporaryDirectory() as tmp:
            args.work = Path(tmp)
            return main(args, command)
    work = (args.work or REPO / "cache" / "benchmarks" / f"full-{args.size}-{time.strftime('%Y%m%d%H%M%S')}").resolve()
    if work.exists() and any(work.iterdir()):
        raise BenchmarkError(f"--work {work} is not empty: the cold evaluation cache needs an empty folder")
    work.mkdir(parents=True, exist_ok=True)
    ann = write_caption_json(work / "train_ann.json", args.data / "flickr30k_train.json", args.images)
    eval_ann = write_caption_json(work / "eval_ann.json", args.data / "flickr30k_train.json", args.eval_images, seed=1)
    cmds = commands(args, stack, work, ann, eval_ann)
    if args.dry_run:
        dry_run(cmds, stack)
        return {"commands": cmds}
    results: dict[str, Any] = {
        "command": command,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "stack_build_s": build_stack(args, stack, ann, work),
        "train": {},
    }
    for name, cmd in cmds.items():
        print(f"== {name}", flush=True)
        log_file = work / "logs" / f"{name}.txt"
        wall = run(cmd, log_file)
        if name == "cache-fill":
            results["cache_fill"] = {"wall_s": round(wall, 1), "images": args.images}
        elif name.startswith("train-"):
            results["train"][name[len("train-") :]] = train_result(work, name[len("train-") :], log_file, wall)
        else:
            m = read_metrics(work / "eval", ["pretrained"])[0]
            results["eval"] = {"wall_s": round(wall, 1), **{k: m.get(k) for k in ("num_images", "feature_cache", "seconds", "generation")}}
    results["machine"] = {**machine(), "load_start": load_start}
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    publish(args.out, "full", render(results), f"; runs and logs in {work}")
    return results
