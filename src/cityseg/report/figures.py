"""Figures of the technical note, drawn with matplotlib (Agg) from recorded numbers only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cityseg.data.labels import PALETTE
from cityseg.evaluation.plots import draw_confusion, pyplot, save_figure


def _colors(categories: Sequence[str], all_categories: Sequence[str]) -> list[tuple]:
    index = {name: i for i, name in enumerate(all_categories)}
    # void is black in the palette: draw it grey so that its bar is visible.
    return [
        tuple(PALETTE[index[c]] / 255.0) if c != "void" else (0.6, 0.6, 0.6) for c in categories
    ]


def class_frequencies(
    freqs: dict[str, float], all_categories: Sequence[str], path: Path, title: str
) -> Path:
    """Bar chart of the share of pixels per category."""
    plt = pyplot()
    names = list(freqs)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(names, [100 * freqs[n] for n in names], color=_colors(names, all_categories))
    ax.set_ylabel("% of pixels")
    ax.set_title(title)
    for i, name in enumerate(names):
        ax.text(i, 100 * freqs[name], f"{100 * freqs[name]:.1f}", ha="center", va="bottom")
    return save_figure(fig, path)


def learning_curves(
    curves: dict[str, list[tuple[int, float]]], path: Path, ylabel: str, title: str
) -> Path:
    """One line per run: `ylabel` against the epoch."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, points in curves.items():
        if points:
            epochs, values = zip(*points, strict=True)
            ax.plot(epochs, values, marker="o", markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def grouped_bars(
    series: dict[str, dict[str, float]], categories: Sequence[str], path: Path, title: str
) -> Path:
    """Per-category IoU, one group per category and one bar per series (run)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(categories))
    for i, (name, values) in enumerate(series.items()):
        heights = [values.get(c, np.nan) for c in categories]
        ax.bar(x + (i - (n - 1) / 2) * width, heights, width, label=name)
    ax.set_xticks(x, categories)
    ax.set_ylabel("IoU")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(n, 3))
    return save_figure(fig, path)


def seed_spread(
    arms: dict[str, list[float]], path: Path, title: str, baseline: str | None = None
) -> Path:
    """Mean ± std per arm with every seed drawn as a dot, so noise is visible next to gains."""
    plt = pyplot()
    names = list(arms)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    means = [float(np.mean(arms[n])) for n in names]
    stds = [float(np.std(arms[n], ddof=1)) if len(arms[n]) > 1 else 0.0 for n in names]
    ax.bar(names, means, yerr=stds, capsize=4, color="#9db4d0", label="mean ± std over seeds")
    for i, name in enumerate(names):
        ax.plot([i] * len(arms[name]), arms[name], "k.", markersize=6)
    if baseline in arms:
        ax.axhline(float(np.mean(arms[baseline])), color="crimson", lw=1, ls="--", label=baseline)
    low = min(min(v) for v in arms.values())
    high = max(max(v) for v in arms.values())
    pad = max(0.02, 0.5 * (high - low))
    ax.set_ylim(max(0.0, low - pad), min(1.0, high + pad))
    ax.set_ylabel("validation mIoU")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def optuna_trials(trials: list[dict[str, Any]], param: str, path: Path, title: str) -> Path:
    """Validation mIoU of each trial against the learning rate (log axis)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for state, marker in (("complete", "o"), ("pruned", "x")):
        points = [
            (t[param], t["val_miou"])
            for t in trials
            if t.get("state") == state and t.get("val_miou") is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.scatter(xs, ys, marker=marker, label=state)
    ax.set_xscale("log")
    ax.set_xlabel(param)
    ax.set_ylabel("validation mIoU")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def confusion(matrix: np.ndarray, categories: Sequence[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix (each row: where the pixels of a true category went)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    draw_confusion(ax, matrix, categories)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return save_figure(fig, path)
