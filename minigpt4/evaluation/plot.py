"""Chart of every caption metric over epochs (the pretrained baseline at epoch -1): the 0-1 metrics
on one panel, CIDEr (which exceeds 1) on its own, so neither flattens the other."""

from __future__ import annotations

import json
import os

import pandas as pd

from minigpt4.utils.io import atomic_write

UNBOUNDED = ("CIDEr",)  # metrics not on a 0-1 scale


def plot_metrics(table: pd.DataFrame, metrics: list[str], path: str | os.PathLike, title: str) -> list[str]:
    """Draw one line per metric of ``table`` (rows with an ``epoch``; -1 = pretrained) to a PNG.

    Returns the legend labels, one per plotted line (0-1 metrics first, then CIDEr); they are also
    stored in the PNG's ``Metrics`` text chunk (``PIL.Image.open(path).text["Metrics"]``).
    """
    import matplotlib  # here: only writing the chart needs it (0.3 s to import)

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt

    rows = table[table["epoch"].notna()].sort_values("epoch")
    x = rows["epoch"].astype(int).tolist()
    panels = [[m for m in metrics if m not in UNBOUNDED], [m for m in metrics if m in UNBOUNDED]]
    panels = [p for p in panels if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 5), dpi=120, squeeze=False)
    try:
        labels = []
        for ax, names in zip(axes[0], panels):
            for metric in names:
                (line,) = ax.plot(x, rows[metric].tolist(), marker="o", linewidth=1.8, label=metric)
                labels.append(line.get_label())
            ax.set_xticks(x)
            ax.set_xticklabels(["pretrained\n(baseline)" if e == -1 else str(e) for e in x])
            if -1 in x and len(x) > 1:
                ax.axvline(-0.5, color="grey", linestyle=":", linewidth=1)
            ax.set_xlabel("epoch (checkpoint_{epoch}.pth)")
            unbounded = names[0] in UNBOUNDED
            ax.set_ylabel("CIDEr-D (not capped at 1)" if unbounded else "score (0-1)")
            ax.set_title("CIDEr" if unbounded else "BLEU, METEOR, ROUGE-L" + (", SPICE" if "SPICE" in names else ""))
            ax.grid(True, alpha=0.3)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="metric", fontsize="small")
        fig.suptitle(title)
        fig.tight_layout()
        meta = {"Title": title, "Metrics": json.dumps(labels), "Epochs": json.dumps(x)}
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", metadata=meta))
    finally:
        plt.close(fig)
    return labels
