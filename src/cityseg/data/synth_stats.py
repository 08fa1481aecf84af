"""Category pixel shares of a labelled set, beside the Cityscapes reference shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cityseg.data import labels
from cityseg.data.cityscapes import Sample, read_label

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
