"""Choose an ensemble's members on the validation set: greedy forward selection.

Caruana et al. (2004), "Ensemble selection from libraries of models": start from the best
single model, then add, one at a time, the candidate whose softmax joined to the mean raises
the category IoU the most; stop when no candidate raises it. Each candidate segments every
frame once; its softmax is kept (float16, at the largest input size, before the letterbox is
cut off) so that scoring a mixture costs no model pass. Scores are whole-split confusion
matrices at each label's original size, as `evaluate` computes them.

Selection must see validation frames only: a mixture picked on the test set would report a
score chosen for it. Score the chosen mixture afterwards with `cityseg evaluate --run A --run
B ...` (float32 throughout, so its score may differ from the selection's in the 4th digit).
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
from cityseg.inference.runtime import ensemble_input_size

log = logging.getLogger(__name__)


def select_ensemble(
    predictors: Sequence[Any],
    samples: Sequence[Sample],
    *,
    max_members: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> dict[str, Any]:
    """Greedy forward selection of members among `predictors` (`Predictor`s of one aspect
    ratio; each frame is letterboxed at the largest input size and resized for the others).

    Returns `{"candidates": [{name, category_iou}], "steps": [{added, members,
    category_iou}], "members": [...], "category_iou": ...}`: each step's members and their
    mixture's score; `members` is the last step's, the chosen ensemble. A member is named by
    its run folder (or model file), which `cityseg evaluate --run` takes back.

    Memory: frames x input width x height x 8 classes x 2 bytes per candidate, at the largest
    input size (CamVid's 101 validation frames at 480x352: 273 MB each; ten candidates peaked
    at 4.2 GB).
    """
    if not predictors:
        raise ValueError("no candidate models to choose from")
    size = ensemble_input_size(predictors, "candidates")
    lead = next(p for p in predictors if p.input_size == size)
    limit = len(predictors) if max_members is None else max_members
    if limit < 1:
        raise ValueError(f"max_members must be >= 1, got {max_members}")
    names = [str(p.source or p.name) for p in predictors]  # run folders: unique where names are not
    truths = [_gt(s) for s in samples]
    # each frame is read and letterboxed once, at the largest size, for every candidate
    prepared = [lead.prepare(read_image(s.image)) for s in samples]
    canvases = np.stack([canvas for canvas, _, _ in prepared])
    placements = [(box, size) for _, box, size in prepared]
    starts = range(0, len(samples), batch_size)
    probs: list[np.ndarray] = []  # one (N, H, W, 8) float16 per candidate
    for name, predictor in zip(names, predictors, strict=True):
        frames = []
        for i in _progress(starts, f"softmax of {name}", progress):
            batch = canvases[i : i + batch_size].astype(np.float32)
            frames.append(predictor.probabilities_at(batch).astype(np.float16))
        probs.append(np.concatenate(frames))

    def score(members: Sequence[int]) -> float:
        acc = _Accumulator(0, 0)
        for k, (sample, truth, (box, size)) in enumerate(
            zip(samples, truths, placements, strict=True)
        ):
            total = probs[members[0]][k].astype(np.float32)
            for m in members[1:]:
                total += probs[m][k]
            classes = unletterbox(total.argmax(-1).astype(np.uint8), box, size)
            acc.add(sample, None, truth, labels.categories_to_label_ids(classes))
        return float(acc.result()["category_iou"])

    singles = [score([i]) for i in range(len(predictors))]
    for name, value in zip(names, singles, strict=True):
        log.info("candidate %s: category IoU %.4f", name, value)
    chosen = [int(np.argmax(singles))]
    best = singles[chosen[0]]
    steps = [{"added": names[chosen[0]], "members": [names[chosen[0]]], "category_iou": best}]
    while len(chosen) < limit:
        trials = {i: score([*chosen, i]) for i in range(len(predictors)) if i not in chosen}
        if not trials:
            break
        pick = max(trials, key=trials.__getitem__)
        if trials[pick] <= best:
            log.info("no candidate raises %.4f: %d member(s) chosen", best, len(chosen))
            break
        chosen.append(pick)
        best = trials[pick]
        steps.append(
            {"added": names[pick], "members": [names[i] for i in chosen], "category_iou": best}
        )
        log.info("+ %s: category IoU %.4f", names[pick], best)
    return {
        "candidates": [{"name": n, "category_iou": v} for n, v in zip(names, singles, strict=True)],
        "steps": steps,
        "members": steps[-1]["members"],
        "category_iou": best,
        "num_images": len(samples),
    }
