"""Choose the zoom factors of test-time augmentation on the validation set.

A zoom that helps a model trained at 480x352 (1.5: pedestrians and poles get more pixels) need
not help one trained at 1024x768, which already sees them large. The factors are a choice, so
they are made on validation, per model (or ensemble), never on the test set.

Each distinct zoom factor segments every frame once (mirrored too, with `flip`); each candidate
set of factors is then scored on the mean of its factors' softmax, so scoring five candidates
that share the factor 1.0 costs one pass at 1.0, not five. Scores are whole-split confusion
matrices at each label's original size, as `evaluate` computes them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from cityseg.data import labels
from cityseg.data.cityscapes import Sample, read_image
from cityseg.data.resize import unletterbox
from cityseg.evaluation.evaluate import _Accumulator, _gt, _progress

log = logging.getLogger(__name__)


def parse_candidates(text: str) -> list[tuple[float, ...]]:
    """`"1;1,1.25;1,1.5"` as `[(1.0,), (1.0, 1.25), (1.0, 1.5)]`: sets split by `;`, factors
    by `,`. A ValueError names the part that is not a positive number or a repeated set."""
    sets: list[tuple[float, ...]] = []
    for part in text.split(";"):
        try:
            scales = tuple(float(v) for v in part.split(","))
        except ValueError:
            raise ValueError(
                f"--candidates {text!r}: {part!r} is not comma-separated numbers "
                "(sets are separated by ';', e.g. '1;1,1.25;1,1.5')"
            ) from None
        if any(not (0 < v < float("inf")) for v in scales):
            raise ValueError(f"--candidates {text!r}: zoom factors must be positive, got {part!r}")
        key = tuple(sorted(set(scales)))
        if key in sets:
            raise ValueError(f"--candidates {text!r}: the set {part!r} is given twice")
        sets.append(key)
    return sets


def select_scales(
    predictor: Any,
    samples: Sequence[Sample],
    candidates: Sequence[Sequence[float]],
    *,
    flip: bool = True,
    batch_size: int = 4,
    progress: bool = False,
) -> dict[str, Any]:
    """Score each set of zoom factors in `candidates` on `samples`; choose the best.

    `predictor` is a `Predictor` (one model or an ensemble); `flip` adds each view's mirror,
    as the `hflip_scales` mode does (`scales` without). Returns `{"mode", "candidates":
    [{scales, category_iou, passes_per_frame}], "scales", "category_iou", "num_images"}`:
    `scales` is the chosen set. A tie goes to the set that costs fewer model passes, then
    to the one given first.
    """
    if not candidates:
        raise ValueError("no candidate zoom factors to choose from")
    sets = [tuple(float(v) for v in c) for c in candidates]
    distinct = sorted({v for s in sets for v in s})
    mode = "hflip_scales" if flip else "scales"
    saved = predictor.tta, predictor.scales
    costs = []
    try:
        predictor.tta = mode
        for scales in sets:
            predictor.scales = scales  # checks each factor too
            costs.append(predictor.passes_per_frame())
        accs = [_Accumulator(0, 0) for _ in sets]
        starts = range(0, len(samples), batch_size)
        for start in _progress(starts, f"zoom factors {distinct}", progress):
            chunk = samples[start : start + batch_size]
            prepared = [predictor.prepare(read_image(s.image)) for s in chunk]
            batch = np.stack([canvas for canvas, _, _ in prepared]).astype(np.float32)
            views = {}
            for scale in distinct:  # one pass per factor, shared by every set that has it
                predictor.scales = (scale,)
                views[scale] = predictor.predict_probabilities(batch)
            for k, sample in enumerate(chunk):
                truth, (_, box, size) = _gt(sample), prepared[k]
                for scales, acc in zip(sets, accs, strict=True):
                    total = sum(views[s][k] for s in scales)
                    classes = unletterbox(np.argmax(total, -1).astype(np.uint8), box, size)
                    acc.add(sample, None, truth, labels.categories_to_label_ids(classes))
    finally:
        predictor.tta, predictor.scales = saved
    scores = [float(acc.result()["category_iou"]) for acc in accs]
    for scales, value, cost in zip(sets, scores, costs, strict=True):
        log.info("zoom %s: category IoU %.4f (%d passes per frame)", list(scales), value, cost)
    best = min(range(len(sets)), key=lambda i: (-scores[i], costs[i], i))
    return {
        "mode": mode,
        "candidates": [
            {"scales": list(s), "category_iou": v, "passes_per_frame": c}
            for s, v, c in zip(sets, scores, costs, strict=True)
        ],
        "scales": list(sets[best]),
        "category_iou": scores[best],
        "num_images": len(samples),
    }
