"""Category pixel shares of a labelled set beside Cityscapes', and the light of each drive."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cityseg.data import labels
from cityseg.data.cityscapes import Sample, read_label, read_sample

# Share of fine-annotated Cityscapes train pixels per category, in per cent (issue #14).
CITYSCAPES_SHARES: dict[str, float] = {
    "flat": 38.0,
    "construction": 21.5,
    "nature": 15.1,
    "void": 12.0,
    "vehicle": 7.3,
    "sky": 3.6,
    "object": 1.8,
    "human": 1.2,
}


def category_shares(samples: Sequence[Sample]) -> dict[str, float]:
    """Per-cent of labelled pixels in each of the 8 categories over `samples` (summed, not averaged)."""
    counts = np.zeros(labels.NUM_CLASSES, np.int64)
    for sample in samples:
        if sample.label is None:
            continue
        cats = labels.to_categories(read_label(sample.label), source=str(sample.label))
        counts += np.bincount(cats.ravel(), minlength=256)[: labels.NUM_CLASSES]
    total = max(int(counts.sum()), 1)
    return {
        name: 100.0 * float(c) / total for name, c in zip(labels.CATEGORIES, counts, strict=True)
    }


def share_distance(shares: dict[str, float], reference: dict[str, float] | None = None) -> float:
    """Half the L1 distance in per cent: the share of pixels that would have to change category."""
    ref = reference or CITYSCAPES_SHARES
    return 0.5 * sum(abs(shares.get(k, 0.0) - v) for k, v in ref.items())


def shares_table(shares: dict[str, float]) -> list[dict[str, Any]]:
    """Rows `{category, share, cityscapes}` in the reference order, for printing and the note."""
    return [
        {"category": k, "share": round(shares.get(k, 0.0), 2), "cityscapes": v}
        for k, v in CITYSCAPES_SHARES.items()
    ]


def drive_light(samples: Sequence[Sample]) -> dict[str, Any]:
    """How bright one drive (city) is: what a renderer's light must match to transfer.

    Returns `frames`, `rgb` (mean R, G, B, 0..255), `mean` (their mean), `contrast` (the mean
    per-frame standard deviation) and `flat` / `sky`: the mean grey level of the pixels of
    that category over all frames (None without labels or without such pixels).
    """
    if not samples:
        raise ValueError("drive_light needs at least one frame")
    rgb, contrast = [], []
    sums = {"flat": [0.0, 0], "sky": [0.0, 0]}
    labelled = True
    for sample in samples:
        image, cats = read_sample(sample)
        pixels = image.astype(np.float32)
        rgb.append(pixels.reshape(-1, 3).mean(0))
        contrast.append(float(pixels.std()))
        if cats is None:
            labelled = False
            continue
        grey = pixels.mean(axis=2)
        for name, acc in sums.items():
            values = grey[cats == labels.CATEGORIES.index(name)]
            acc[0] += float(values.sum(dtype=np.float64))
            acc[1] += int(values.size)
    mean_rgb = np.mean(rgb, axis=0)
    return {
        "frames": len(samples),
        "rgb": [round(float(c), 2) for c in mean_rgb],
        "mean": round(float(mean_rgb.mean()), 2),
        "contrast": round(float(np.mean(contrast)), 2),
        **{
            name: round(total / count, 2) if labelled and count else None
            for name, (total, count) in sums.items()
        },
    }
