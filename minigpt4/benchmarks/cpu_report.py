"""The CPU section of BENCHMARKS.md from the results of ``cpu.main`` (epoch records and metrics.json)."""

from __future__ import annotations

from typing import Any

from .common import fmt, machine_lines, pct, table

WARM_SPEEDUP = 1.2  # warm-cache training >= 1.2x the steps/s of no cache
MAX_GROUPED_PADDING = 0.03  # length-grouped batches waste <= 3% of positions on padding
EVAL_OVERHEAD = 1.1  # k checkpoints <= 1.1 x (one encoding pass + k generation passes)


def epoch_stats(records: list[dict[str, Any]], epochs: list[int]) -> dict[str, Any] | None:
    """Throughput over the given epochs of one run (sums of their records)."""
    rs = [r for r in records if r["epoch"] in epochs]
    if not rs:
        return None
    iters = records[0]["global_step"] // (records[0]["epoch"] + 1)
    seconds = sum(r["seconds"] for r in rs)
    tokens = sum((r.get("tokens_per_s") or 0) * r["seconds"] for r in rs)
    positions = sum((r.get("tokens_per_s") or 0) * r["seconds"] / (1 - r["padding"]) for r in rs if r.get("padding") is not None)
    cache = [r.get("feature_cache") or {} for r in rs]
    per_epoch = [iters / r["seconds"] for r in rs]
    return {
        "epochs": epochs,
        "steps_per_s": iters * len(rs) / seconds,
        "range": (min(per_epoch), max(per_epoch)),
        "samples_per_s": sum(r["samples"] for r in rs) / seconds,
        "tokens_per_s": tokens / seconds,
        "padding": 1 - tokens / positions if positions else None,
        "encoded": sum(c.get("encoded", 0) for c in cache),
        "hits": sum(c.get("hits", 0) for c in cache),
        "seconds_per_epoch": seconds / len(rs),
    }


def train_rows(train: dict[str, Any]) -> tuple[list[list[Any]], dict[str, dict[str, Any]]]:
    """Table rows and the stats by cell name (``nocache-random/first``, ``cache-grouped/warm``, ...)."""
    stats: dict[str, dict[str, Any]] = {}
    for name, run in train.items():
        last = max(r["epoch"] for r in run["records"])
        first = epoch_stats(run["records"], [0])
        later = epoch_stats(run["records"], list(range(1, last + 1)))
        stats[f"{name}/first"] = first
        if later:
            stats[f"{name}/{'warm' if run['cache'] else 'later'}"] = later
        if run["cache"]:
            stats[f"{name}/cold"] = stats.pop(f"{name}/first")
    labels = [
        ("nocache-random/first", "no cache", "random", "nocache-random/first"),
        ("nocache-grouped/first", "no cache", "grouped", "nocache-grouped/first"),
        ("cache-random/cold", "cold (empty folder)", "random", "nocache-random/first"),
        ("cache-grouped/cold", "cold (empty folder)", "grouped", "nocache-grouped/first"),
        ("nocache-random/later", "no cache", "random", "nocache-random/later"),
        ("nocache-grouped/later", "no cache", "grouped", "nocache-grouped/later"),
        ("cache-random/warm", "warm", "random", "nocache-random/later"),
        ("cache-grouped/warm", "warm", "grouped", "nocache-grouped/later"),
    ]
    rows = []
    for key, cache, batches, base in labels:
        s = stats.get(key)
        if s is None:
            continue
        b = stats.get(base)
        epochs = "first" if s["epochs"] == [0] else ", ".join(map(str, s["epochs"]))
        spread = f"{s['range'][0]:.2f}-{s['range'][1]:.2f}" if len(s["epochs"]) > 1 else ""
        rows.append(
            [
                cache,
                batches,
                epochs,
                fmt(s["steps_per_s"], 3),
                spread,
                fmt(s["samples_per_s"], 1),
                fmt(s["tokens_per_s"], 0),
                fmt(s["tokens_per_s"] / s["samples_per_s"], 0),
                pct(s["padding"]),
                f"{s['encoded']:,} / {s['hits']:,}",
                fmt(s["seconds_per_epoch"], 1),
                f"{s['steps_per_s'] / b['steps_per_s']:.2f}x" if b else "n/a",
            ]
        )
    return rows, stats


def eval_rows(evals: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for e in evals.values():
        rs = e["results"]
        n = rs[0]["num_images"]
        fc, sec = rs[0]["feature_cache"] or {}, rs[0]["seconds"] or {}
        gen = sum((r["seconds"] or {}).get("generate", 0) for r in rs)
        score = sum((r["seconds"] or {}).get("score", 0) for r in rs)
        rows.append(
            [
                e["k"],
                e["cache"],
                n,
                fc.get("encoded"),
                fc.get("hits"),
                fc.get("shared_by"),
                fmt(sec.get("encode"), 2),
                fmt(gen, 2),
                fmt(score, 2),
                fmt(e["wall_s"], 1),
                fmt(e["k"] * n / gen if gen else None, 1),
                fmt(e["k"] * n / e["wall_s"], 1),
            ]
        )
    return rows


def _eval_parts(e: dict[str, Any]) -> tuple[float, float]:
    """(encode seconds, total generate seconds) of an evaluation job."""
    rs = e["results"]
    return (rs[0]["seconds"] or {}).get("encode", 0.0), sum((r["seconds"] or {}).get("generate", 0) for r in rs)


def eval_target(one: dict[str, Any], many: dict[str, Any], warm: dict[str, Any] | None, test: dict[str, int]) -> list[str]:
    """The evaluation target, judged on encoder passes (each test image encoded once, or served from the
    cache for a byte-identical copy, for all k checkpoints together); its time ratios stated."""
    k, n = many["k"], many["results"][0]["num_images"]
    fc = [r["feature_cache"] or {} for r in many["results"]]
    encoded, hits = fc[0].get("encoded"), fc[0].get("hits")
    same = all((c.get("encoded"), c.get("hits")) == (encoded, hits) for c in fc)
    warm_enc = (warm["results"][0]["feature_cache"] or {}).get("encoded") if warm else None
    ok = same and encoded is not None and encoded + hits == n and fc[0].get("shared_by") == k and warm_enc in (None, 0)
    extra = encoded - test["distinct"] if encoded is not None and test.get("images") == n else None
    e1, g1 = _eval_parts(one)
    ek, gk = _eval_parts(many)
    ideal = e1 + k * g1 / one["k"]
    copies = k // one["k"]
    measured = (
        f"cold: {encoded} encoder passes + {hits} cache hits for {n} images ({test.get('distinct')} distinct files: "
        "the synthetic sample repeats some pictures byte for byte, which the content-keyed cache serves as hits"
        + (f"; {extra} copies in the same batch as their first occurrence were encoded again" if extra else "")
        + f"), the same in all {k} results (`shared_by` {fc[0].get('shared_by')}); warm: "
        + (f"{warm_enc} encoder passes. " if warm else "not run. ")
        + f"Time: encode + generate of the {k}-checkpoint job {ek + gk:.1f} s vs one encoding pass + {k} generation "
        f"passes as timed in the {one['k']}-checkpoint job {ideal:.1f} s = {fmt((ek + gk) / ideal if ideal else None)}x "
        "(the smaller job's generation time includes the first generate call's warm-up, which every job pays once); "
        f"whole jobs (start-up, model load, METEOR's JVM, scoring): {many['wall_s']:.0f} s vs {one['wall_s']:.0f} s = "
        f"{many['wall_s'] / one['wall_s']:.2f}x, and {many['wall_s'] / (copies * one['wall_s']):.2f}x of {copies} "
        f"separate {one['k']}-checkpoint jobs"
    )
    return [
        f"evaluating {k} checkpoints encodes each test image exactly once and takes <= {EVAL_OVERHEAD}x (one "
        f"encoding pass + {k} generation passes); judged on the encoder passes, the times stated",
        measured,
        _met(ok),
    ]


def targets(stats: dict[str, dict[str, Any]], evals: dict[str, Any], test: dict[str, int]) -> list[list[str]]:
    rows = []
    speedups = [
        (g, stats[f"cache-{g}/warm"]["steps_per_s"] / stats[f"nocache-{g}/later"]["steps_per_s"])
        for g in ("random", "grouped")
        if f"cache-{g}/warm" in stats and f"nocache-{g}/later" in stats
    ]
    if speedups:
        rows.append(
            [
                f"warm-cache training >= {WARM_SPEEDUP}x the steps/s of no cache",
                "; ".join(f"{g} batches: {s:.2f}x" for g, s in speedups),
                _met(all(s >= WARM_SPEEDUP for _, s in speedups)),
            ]
        )
    grouped = [s["padding"] for k, s in stats.items() if k.startswith(("nocache-grouped", "cache-grouped")) and s["padding"] is not None]
    plain = [s["padding"] for k, s in stats.items() if "-random/" in k and s["padding"] is not None]
    if grouped:
        rows.append(
            [
                f"length-grouped batches (real caption lengths) waste <= {pct(MAX_GROUPED_PADDING, 0)} of positions "
                "on padding (random batches: about 16% at batch 12)",
                f"grouped: {pct(min(grouped))} to {pct(max(grouped))}; random: "
                + (f"{pct(min(plain))} to {pct(max(plain))}" if plain else "not measured"),
                _met(max(grouped) <= MAX_GROUPED_PADDING),
            ]
        )
    ks = sorted({e["k"] for e in evals.values()})
    if len(ks) >= 2 and f"k{ks[0]}-cold" in evals and f"k{ks[-1]}-cold" in evals:
        rows.append(eval_target(evals[f"k{ks[0]}-cold"], evals[f"k{ks[-1]}-cold"], evals.get(f"k{ks[-1]}-warm"), test))
    return rows


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def render(results: dict[str, Any]) -> str:
    s = results["settings"]
    rows, stats = train_rows(results["train"])
    out = [
        "## CPU, stand-in size",
        "",
        machine_lines(results["machine"], results["command"], results["wall_s"]),
        f"The quickstart's stand-ins (`{s['standins']}`) and configs; {s['images']} synthetic training images from "
        f"`{s['data']}`, each paired with the 5 REAL Flickr30k captions of one Karpathy test image "
        "(`tests/data/karpathy_test_refs.json`), one sample per image per pass (`caption_sampling: random`); "
        f"{results.get('data', {}).get('train', {}).get('distinct', '?')} of the images are distinct files (the "
        "content-keyed cache serves a byte-identical copy from the cache even in the cold epoch). "
        f"One process, batch {s['batch_size']}, the quickstart's `num_workers`; every epoch is exactly one pass "
        f"({s['images'] // s['batch_size']} steps), {s['epochs']} epochs per run; numbers from each run's `log.txt`.",
        "",
        "### Training",
        "",
        table(
            [
                "feature cache",
                "batches",
                "epoch",
                "steps/s",
                "per epoch",
                "samples/s",
                "tokens/s",
                "tokens/sample",
                "padding",
                "encoded / cache hits",
                "s per epoch",
                "vs no cache",
            ],
            rows,
            "lllrrrrrrrrr",
        ),
        "",
        "*per epoch*: the slowest and fastest epoch's steps/s (other work on the machine shows here). "
        "*cold*: the first epoch over an empty cache folder (every image encoded once and stored), compared with "
        "the first epoch without a cache (both include the first steps' warm-up); *warm*: the later epochs of the "
        "same run (every image read from the cache), compared with the later epochs without a cache. "
        "*padding*: the fraction of the LLM's positions (BOS, prompt, image query tokens, caption, `###`) that are "
        "padding (`padding` in `log.txt`). The stand-in tokenizer (learnt on the synthetic captions and the "
        "instructions) spends more tokens per word of a real caption than the real one (about 1.1-1.3), so sequences "
        f"are longer and their lengths vary more than with Vicuna's; `model.max_txt_len={s.get('max_txt_len')}` (the stand-in "
        "default, 40, would cut about half of the real captions).",
    ]
    if results["eval"]:
        limit = f" --limit {s['eval_limit']}" if s["eval_limit"] else ""
        tokens = f"`run.max_new_tokens={s['max_new_tokens']}`" if s.get("max_new_tokens") else "the config's max_new_tokens"
        out += [
            "",
            "### Evaluation",
            "",
            f"`python -m minigpt4.cli eval --ckpt ...{limit}` on the quickstart's synthetic test split ({tokens}, "
            "the config's batch_size_eval), k checkpoints in one job, over an empty feature-cache folder (*cold*), "
            "then the same folder again (*warm*); the per-phase seconds are the `seconds` of each `metrics.json`; "
            "*encoder passes*: `feature_cache.encoded` (images run through the frozen ViT + Q-Former).",
            "",
            table(
                [
                    "checkpoints",
                    "cache",
                    "images",
                    "encoder passes",
                    "cache hits",
                    "shared by",
                    "encode s",
                    "generate s (sum)",
                    "score s (sum)",
                    "job s (wall)",
                    "images/s generating",
                    "images/s job",
                ],
                eval_rows(results["eval"]),
                "rlrrrrrrrrrr",
            ),
        ]
        ks = sorted({e["k"] for e in results["eval"].values()})
        for state in ("cold", "warm"):
            a, b = results["eval"].get(f"k{ks[0]}-{state}"), results["eval"].get(f"k{ks[-1]}-{state}")
            if a and b and a is not b:
                out.append(f"\n{state}: job seconds k={ks[-1]} / k={ks[0]}: {b['wall_s'] / a['wall_s']:.2f}")
    goals = targets(stats, results["eval"], results.get("data", {}).get("test", {}))
    out += ["", "### Targets", "", table(["target", "measured", ""], goals, "lll")]
    return "\n".join(out) + "\n"
