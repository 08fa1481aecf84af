"""Figures of a run: learning curves, confusion matrix, per-category IoU, example grid.

matplotlib is imported inside each function with the non-interactive Agg back end, so
importing this module does nothing and plotting works without a display.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def pyplot() -> Any:
    """`matplotlib.pyplot` on the Agg back end: files only, never a window (nor a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, out: Path, dpi: int = 110) -> Path:
    """Lay out `fig`, write it to `out` (creating the folder), close it; returns `out`.

    The one way every figure of the project is saved (run plots, the report, the CLI)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    pyplot().close(fig)
    return out


def learning_curves(history: Sequence[Mapping[str, float]], out: Path) -> Path:
    """Loss and mIoU per epoch, train vs validation, side by side."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "miou", "mIoU")):
        for prefix, label, style in (("", "train", "-o"), ("val_", "val", "-s")):
            values = [row.get(prefix + key, math.nan) for row in history]
            ax.plot(epochs, values, style, markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, out)


def draw_confusion(ax: Any, cm: np.ndarray, names: Sequence[str]) -> Any:
    """Draw `cm` row-normalised on `ax` (names on both axes, each cell's share written in it,
    rows without pixels left blank); returns the image, e.g. for a colour bar."""
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    image = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(norm.shape[0]):
        for j in range(norm.shape[1]):
            if rows[i, 0] > 0:
                color = "white" if norm[i, j] > 0.5 else "black"
                ax.text(
                    j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7, color=color
                )
    return image


def confusion_matrix(cm: np.ndarray, names: Sequence[str], out: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (rows: ground truth, columns: prediction)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = draw_confusion(ax, cm, names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title(title or "confusion matrix (row-normalised)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return save_figure(fig, out)


def per_category_iou(per_category: Mapping[str, float], out: Path, title: str = "") -> Path:
    """Bar chart of IoU per category (NaN = category absent from both truth and prediction)."""
    plt = pyplot()
    names = list(per_category)
    values = [per_category[n] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bars = ax.bar(names, [0 if math.isnan(v) else v for v in values], color="#4c72b0")
    for bar, value in zip(bars, values, strict=True):
        text = "n/a" if math.isnan(value) else f"{value:.2f}"
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height() + 0.01,
            text,
            ha="center",
            fontsize=8,
        )
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("IoU")
    ax.tick_params(axis="x", rotation=30)
    ax.set_title(title or "IoU per category")
    return save_figure(fig, out)


def examples_grid(rows: Sequence[Mapping[str, Any]], out: Path, title: str = "") -> Path:
    """One row per example: image | ground truth | prediction | overlay, each titled."""
    plt = pyplot()
    columns = ("image", "truth", "prediction", "overlay")
    fig, axes = plt.subplots(len(rows), 4, figsize=(12, 1.9 * len(rows) + 0.4), squeeze=False)
    for r, row in enumerate(rows):
        for c, key in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(row[key])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(row.get("caption", ""), fontsize=7)
            if r == 0:
                ax.set_title(key)
    if title:
        fig.suptitle(title)
    return save_figure(fig, out)
