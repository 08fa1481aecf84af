"""Parity of an exported model with its Keras source: the numbers and the bar they must meet.

Pure functions on masks and sidecar dicts, kept apart from the runtimes so that mutation
testing can hold every line of them: a wrong sign or threshold here would silently pick a
degraded export for the car and for the service.

`miou_delta` is the mIoU **lost** by the export: Keras minus export, over the 7 official
categories, so a positive delta is an export that scores worse. The bar is on that loss:
float32 exports must agree with Keras on at least 99.9 % of pixels; fp16 may lose at most
0.1 mIoU points, int8 at most 1 point.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

# quantize -> (the parity field it is judged on, the bar); "pixel_agreement" is a minimum,
# "miou_delta" (the mIoU lost) a maximum.
PARITY_BARS: dict[str, tuple[str, float]] = {
    "none": ("pixel_agreement", 0.999),
    "fp16": ("miou_delta", 0.001),
    "int8": ("miou_delta", 0.01),
}


@dataclass(frozen=True)
class ParityImage:
    """One held-out image for the parity check, with its categories (eval view) if known."""

    image: np.ndarray  # uint8 (H, W, 3)
    truth: np.ndarray | None = None  # uint8 (H, W) categories, IGNORE_INDEX = not scored
    name: str = ""


def meets_parity(meta: dict[str, Any]) -> bool:
    """Whether an export's recorded parity (its sidecar `meta`) meets the bar for its precision."""
    parity = meta.get("parity") or {}
    bar = PARITY_BARS.get(meta.get("quantize", "none"))
    if bar is None or "pixel_agreement" not in parity:
        return False
    field, limit = bar
    if field == "pixel_agreement":
        return float(parity["pixel_agreement"]) >= limit
    if parity.get("miou_delta") is None:  # no labelled images: the loss was never measured
        return False
    return float(parity["miou_delta"]) <= limit


def parity_from_masks(
    masks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray | None, str]],
) -> dict[str, Any]:
    """Parity record from `(keras_mask, export_mask, truth or None, name)` per image.

    `pixel_agreement` is the share of pixels where both masks agree (all images pooled);
    with ground truth, each runtime's official category mIoU is taken over one confusion
    matrix of all scored images and `miou_delta = miou_keras - miou_export` (the loss).
    """
    from cityseg.data.labels import NUM_CLASSES
    from cityseg.evaluation.metrics import confusion_matrix, eval_category_miou

    agree = total = images = scored = 0
    cm_ref = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    cm_exp = np.zeros_like(cm_ref)
    sources: set[str] = set()
    for ref, got, truth, name in masks:
        if ref.shape != got.shape:
            raise ValueError(f"{name or 'parity image'}: mask shapes {ref.shape} != {got.shape}")
        images += 1
        agree += int((ref == got).sum())
        total += ref.size
        if name:
            sources.add(name.split(":")[0])
        if truth is not None:
            cm_ref += confusion_matrix(truth, ref)
            cm_exp += confusion_matrix(truth, got)
            scored += 1
    if not images:
        raise ValueError("parity check needs at least one image")
    result: dict[str, Any] = {
        "images": images,
        "pixel_agreement": agree / total,
        "sources": sorted(sources),
    }
    if scored:
        miou_keras, miou_export = eval_category_miou(cm_ref), eval_category_miou(cm_exp)
        result.update(
            miou_keras=miou_keras,
            miou_export=miou_export,
            miou_delta=miou_keras - miou_export,
            scored_images=scored,
        )
    return result
