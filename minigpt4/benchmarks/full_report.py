"""The full-size section of BENCHMARKS.md from the results of ``full.main``."""

from __future__ import annotations

from typing import Any

from .common import fmt, machine_lines, pct, table


def render(results: dict[str, Any]) -> str:
    s = results["settings"]
    rows = []
    for job, r in results["train"].items():
        e = r["last_epoch"]
        fc = e.get("feature_cache") or {}
        batch, cache = job.split("-cache-")
        rows.append(
            [
                batch[1:],
                cache,
                fmt(e.get("samples_per_s"), 1),
                fmt(e.get("tokens_per_s"), 0),
                pct(e.get("padding")),
                pct(e.get("mfu")),
                f"{fc.get('encoded', 0):,} / {fc.get('hits', 0):,}",
                f"{r['peak_memory_mib']:,}" if r["peak_memory_mib"] is not None else "n/a",
                fmt(e.get("seconds"), 1),
                fmt(r["wall_s"], 0),
            ]
        )
    built = results.get("stack_build_s")
    memory = "the CUDA allocator peak" if s["device"] == "cuda" else "the process's peak RSS (CPU)"
    out = [
        "## Full size (random weights at the official sizes, GPU)",
        "",
        machine_lines(results["machine"], results["command"], results["wall_s"]),
        f"Random `{s['size']}` stack (`{s['stack'] or 'cache/benchmarks/random-' + s['size']}`, "
        + (f"built in {built:.0f} s" if built else "built before")
        + f") on `{s['device']}`, the fine-tune config "
        f"(`train_configs/minigpt4_flickr_finetune.yaml`: bf16 autocast) with `model.ckpt=null`, {s['images']} "
        "synthetic images with real Flickr30k captions, one sample per image per pass, every epoch one pass; "
        f"epoch {s['epochs'] - 1} of each run reported; *warm*: the training images' features were filled by "
        f"`python -m minigpt4.cli cache` before the run. *peak memory*: {memory} over the run (the console's "
        "`max mem`; `nvidia-smi` shows more). *MFU*: `mfu` of `log.txt` (`minigpt4/models/flops.py`; with a warm "
        "cache the vision stack's FLOPs are not done, so not counted).",
        "",
        "### Training",
        "",
        table(
            [
                "batch",
                "feature cache",
                "samples/s",
                "tokens/s",
                "padding",
                "MFU",
                "encoded / cache hits",
                "peak memory MiB",
                "epoch s",
                "run s (wall)",
            ],
            rows,
            "rlrrrrrrrr",
        ),
    ]
    if results.get("cache_fill"):
        f = results["cache_fill"]
        out += [
            "",
            f"Cache fill (`python -m minigpt4.cli cache`, {f['images']} images, including start-up): "
            f"{f['wall_s']:.0f} s = {f['images'] / f['wall_s']:.1f} images/s.",
        ]
    if results.get("eval"):
        e = results["eval"]
        sec, n = e.get("seconds") or {}, e["num_images"]
        gen = e.get("generation") or {}
        out += [
            "",
            "### Evaluation",
            "",
            table(
                ["images", "max new tokens", "batch", "encode s", "generate s", "images/s generating", "images/s encoding", "job s (wall)"],
                [
                    [
                        n,
                        gen.get("max_new_tokens"),
                        gen.get("batch_size_eval"),
                        fmt(sec.get("encode")),
                        fmt(sec.get("generate")),
                        fmt(n / sec["generate"] if sec.get("generate") else None, 1),
                        fmt(n / sec["encode"] if sec.get("encode") else None, 1),
                        fmt(e["wall_s"], 0),
                    ]
                ],
                "rrrrrrrr",
            ),
            "",
            "Random weights almost never emit `###` or `</s>`, so every caption runs to max new tokens: generation time is an upper bound.",
        ]
    return "\n".join(out) + "\n"
