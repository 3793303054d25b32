"""Training curves as PNG (matplotlib, Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path


def plot_loss_curves(history: list[dict], path: str | Path, title: str = "") -> Path:
    """Plot train and validation loss per epoch from the trainer's history rows.

    Each row has ``epoch`` and optionally ``train_loss`` / ``val_loss``; missing or
    non-finite values are left out. Returns the PNG's path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for key, label, style in (("train_loss", "train", "-o"), ("val_loss", "validation", "-s")):
        points = [
            (row["epoch"] + 1, row[key]) for row in history
            if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, style, label=label, markersize=3)
    best = [r for r in history if isinstance(r.get("val_loss"), (int, float))
            and math.isfinite(r["val_loss"])]
    if best:
        row = min(best, key=lambda r: r["val_loss"])
        ax.axvline(row["epoch"] + 1, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"best {row['val_loss']:.4f}", (row["epoch"] + 1, row["val_loss"]),
                    textcoords="offset points", xytext=(4, 8), fontsize=8)
    values = [r[k] for r in history for k in ("train_loss", "val_loss")
              if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
    if values and min(values) > 0 and max(values) / min(values) > 10:
        ax.set_yscale("log")  # a fast first drop would flatten the rest of the curve
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title or "training curves")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
