"""Summaries of a run's evaluations: ``summary.csv``, ``summary.md``, ``summary.png`` and the caption
gallery ``report.html`` (``minigpt4.evaluation.report``).

The evaluation job writes them after scoring; ``python -m minigpt4.cli summary RUN_DIR [--eval-dir DIR]``
rewrites them from every ``DIR/*/metrics.json`` (DIR defaults to ``RUN_DIR/eval``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from minigpt4.errors import EvalError
from minigpt4.evaluation.plot import plot_metrics
from minigpt4.evaluation.report import write_report
from minigpt4.run_dir import FINGERPRINT, METRICS_JSON
from minigpt4.run_dir import eval_dir as default_eval_dir
from minigpt4.tasks.captioning.scoring import METRICS
from minigpt4.utils.io import atomic_write_text as write_text

INFO_COLUMNS = ["name", "epoch", "dataset", "split", "num_images", "limit"]


def collect(eval_dir: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """One row per ``eval_dir/*/metrics.json`` (sorted by epoch, pretrained = -1 first) and the
    metric columns present (SPICE only when every row has it)."""
    eval_dir = Path(eval_dir)
    rows = []
    for path in sorted(eval_dir.glob(f"*/{METRICS_JSON}")):
        try:
            m = json.loads(path.read_text())
            scores = m["scores"]
            row = {
                "name": m.get("name", path.parent.name),
                "epoch": m.get("epoch"),
                "dataset": m.get("dataset"),
                "split": m.get("split"),
                "num_images": m.get("num_images"),
                "limit": m.get("limit"),
                "_settings": (m.get(FINGERPRINT) or {}).get("settings_digest"),
            }
            row.update({k: float(v) for k, v in scores.items()})
        except (ValueError, KeyError, TypeError) as e:
            raise EvalError(f"{path}: not a metrics.json written by the evaluation job ({e!r})") from e
        missing = [k for k in METRICS if k not in row]
        if missing:
            raise EvalError(f"{path}: scores lack {missing}")
        rows.append(row)
    if not rows:
        raise EvalError(f"no */{METRICS_JSON} under {eval_dir}: evaluate some checkpoints first")
    table = pd.DataFrame(rows)
    metrics = list(METRICS) + (["SPICE"] if "SPICE" in table and table["SPICE"].notna().all() else [])
    table["epoch"] = table["epoch"].astype("Int64")
    order = table["epoch"].fillna(10**9).astype(int)
    table = table.assign(_o=order).sort_values(["_o", "name"]).drop(columns="_o").reset_index(drop=True)
    return table[INFO_COLUMNS + metrics + ["_settings"]], metrics


def same_settings(table: pd.DataFrame, settings_digest: str | None) -> tuple[pd.DataFrame, list[str]]:
    """The rows evaluated with ``settings_digest`` and the names of the others; without a digest
    every row must share one (results of different settings never share a summary)."""
    if settings_digest is None:
        groups = table.groupby(table["_settings"].fillna("none"), sort=False)["name"].apply(list)
        if len(groups) > 1:
            raise EvalError(
                "these results were evaluated with different settings and cannot share one summary: "
                + " vs ".join(str(g) for g in groups)
                + ". Re-run evaluate.sh on the run folder: it "
                "re-evaluates what changed"
            )
        return table, []
    keep = table["_settings"] == settings_digest
    return table[keep].reset_index(drop=True), table.loc[~keep, "name"].tolist()


def table_cells(table: pd.DataFrame, metrics: list[str]) -> tuple[list[str], list[list[str]]]:
    """The summary table's column names and cells: one row per checkpoint, one column per metric (4 decimals)."""
    rows = []
    for _, r in table.iterrows():
        epoch = "" if pd.isna(r["epoch"]) else ("pretrained" if r["epoch"] == -1 else str(r["epoch"]))
        images = f"{r['num_images']}" + ("" if pd.isna(r["limit"]) else " (limit)")
        rows.append([str(r["name"]), epoch, images] + [f"{r[m]:.4f}" for m in metrics])
    return ["checkpoint", "epoch", "images"] + metrics, rows


def to_markdown(table: pd.DataFrame, metrics: list[str]) -> str:
    """A Markdown table: one row per checkpoint, one column per metric (4 decimals)."""
    cols, rows = table_cells(table, metrics)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * 3 + "---:|" * len(metrics)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def write_summary(
    run_dir: str | os.PathLike, eval_dir: str | os.PathLike | None = None, settings_digest: str | None = None
) -> dict[str, Path]:
    """Write ``summary.csv``, ``summary.md``, ``summary.png`` and ``report.html`` into ``eval_dir`` (default
    ``run_dir/eval``) from the results of one set of settings (``settings_digest``: the evaluation
    job's; None: all results, which must agree); returns their paths."""
    eval_dir = Path(eval_dir) if eval_dir is not None else default_eval_dir(run_dir)
    table, metrics = collect(eval_dir)
    table, others = same_settings(table, settings_digest)
    if table.empty:
        raise EvalError(f"no result under {eval_dir} was evaluated with the current settings")
    table = table.drop(columns="_settings")
    split = "/".join(sorted(set(table["split"].dropna()))) or "?"
    dataset = "/".join(sorted(set(table["dataset"].dropna()))) or "?"
    subset = table["limit"].notna().any()
    out = {k: eval_dir / f"summary.{k}" for k in ("csv", "md", "png")}
    write_text(out["csv"], table.to_csv(index=False))
    heading = f"{dataset} {split} captioning: {Path(run_dir).resolve().name}"
    notes = [
        f"# {heading}",
        "",
        "Scores from pycocoevalcap (PTB tokenizer; BLEU-1..4, METEOR, ROUGE-L, CIDEr-D), 0-1 scale "
        "(CIDEr is not capped at 1). `pretrained` is the baseline: the eval config's `model.ckpt`, or the "
        "fresh projection when it is null.",
        "",
    ]
    if subset:
        notes += [
            "**Note:** rows marked *(limit)* were scored on the first N images only; CIDEr's idf comes "
            "from the scored references, so those scores are not comparable with the full split.",
            "",
        ]
    if others:
        notes += [
            f"**Not shown:** {', '.join(others)}: evaluated with other settings (their checkpoint files are "
            "gone, or they were not re-evaluated); see their metrics.json.",
            "",
        ]
    write_text(out["md"], "\n".join(notes) + "\n" + to_markdown(table, metrics))
    size = f"{table['num_images'].max()} images{', subset' if subset else ''}"
    plot_metrics(table, metrics, out["png"], f"{dataset} {split} captioning ({size})")
    out["html"] = write_report(
        eval_dir, list(table["name"]), *table_cells(table, metrics), f"{heading} ({size})", out["png"], [line for line in notes[1:] if line]
    )
    return out
