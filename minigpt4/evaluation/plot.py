"""Line chart of every caption metric over epochs; the pretrained baseline sits at epoch -1."""
from __future__ import annotations

import json
import os

import pandas as pd

from minigpt4.common.io import atomic_write


def plot_metrics(table: pd.DataFrame, metrics: list[str], path: str | os.PathLike, title: str) -> list[str]:
    """Draw one line per metric of ``table`` (rows with an ``epoch``; -1 = pretrained) to a PNG.

    Returns the legend labels, one per plotted line; they are also stored in the PNG's
    ``Metrics`` text chunk (``PIL.Image.open(path).text["Metrics"]``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table[table["epoch"].notna()].sort_values("epoch")
    x = rows["epoch"].astype(int).tolist()
    fig, ax = plt.subplots(figsize=(9, 5), dpi=120)
    try:
        labels = []
        for metric in metrics:
            (line,) = ax.plot(x, rows[metric].tolist(), marker="o", linewidth=1.8, label=metric)
            labels.append(line.get_label())
        ax.set_xticks(x)
        ax.set_xticklabels(["pretrained\n(baseline)" if e == -1 else str(e) for e in x])
        if -1 in x and len(x) > 1:
            ax.axvline(-0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("epoch (checkpoint_{epoch}.pth)")
        ax.set_ylabel("score (CIDEr may exceed 1)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), title="metric")
        fig.tight_layout()
        meta = {"Title": title, "Metrics": json.dumps(labels), "Epochs": json.dumps(x)}
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", metadata=meta))
    finally:
        plt.close(fig)
    return labels
