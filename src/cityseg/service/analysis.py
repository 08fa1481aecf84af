"""What the JSON answer says about a mask: category shares, regions, per-image IoU."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from cityseg.data import labels


def category_shares(categories: np.ndarray) -> list[float]:
    """Fraction of the image's pixels in each of the 8 categories (sums to 1)."""
    counts = np.bincount(categories.ravel(), minlength=labels.NUM_CLASSES)[: labels.NUM_CLASSES]
    return [float(c) / max(1, categories.size) for c in counts]


def regions(categories: np.ndarray, category: int, max_regions: int) -> tuple[list[dict], int]:
    """Connected regions (4-neighbour) of one category, largest first, capped at `max_regions`.

    Returns the regions as `{"bbox": [x0, y0, x1, y1], "pixels": n}` (x1, y1 exclusive) and
    the total number found, so a client knows when the list was cut.
    """
    components, count = ndimage.label(categories == category)
    if count == 0:
        return [], 0
    sizes = np.bincount(components.ravel())[1:]
    order = np.argsort(-sizes, kind="stable")[:max_regions]
    slices = ndimage.find_objects(components)
    out = []
    for index in order:
        rows, cols = slices[index]
        out.append(
            {
                "bbox": [int(cols.start), int(rows.start), int(cols.stop), int(rows.stop)],
                "pixels": int(sizes[index]),
            }
        )
    return out, int(count)


def describe(categories: np.ndarray, max_regions: int) -> list[dict[str, Any]]:
    """Per category: id, name, colour, pixel share, regions (capped) and their total count."""
    shares = category_shares(categories)
    out = []
    for cid, name in enumerate(labels.CATEGORIES):
        found, total = regions(categories, cid, max_regions) if shares[cid] > 0 else ([], 0)
        out.append(
            {
                "id": cid,
                "name": name,
                "color": [int(v) for v in labels.PALETTE[cid]],
                "share": shares[cid],
                "regions": found,
                "regions_total": total,
            }
        )
    return out


def image_iou(label_ids: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """IoU per scored category for one image, official view (void and ignoreInEval not scored).

    A category absent from both truth and prediction has no IoU (None), rather than 0 or 1.
    """
    truth = labels.to_eval_categories(label_ids)
    keep = truth != labels.IGNORE_INDEX
    n = labels.NUM_CLASSES
    cm = np.bincount(
        truth[keep].astype(np.int64) * n + predicted[keep].astype(np.int64), minlength=n * n
    ).reshape(n, n)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    return {
        labels.CATEGORIES[c]: (float(inter[c] / union[c]) if union[c] else None)
        for c in labels.EVAL_CATEGORIES
    }
