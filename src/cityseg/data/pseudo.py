"""Pseudo-labels: a trained model labels unlabelled photographs, for self-training.

The sim-to-real loop's adaptation step. A model trained on synthetic cities predicts the frames
of a real dataset's *train* set (their labels, where there are any, are never read); in each
predicted category the most confident `keep` fraction of pixels is kept (class-balanced
thresholds, as in CBST, Zou et al., ECCV 2018: one global threshold keeps the easy road and sky
and drops the rare categories), and so is every pixel above `cap`. The rest become
`labels.NO_LABEL_ID`: no loss in training, not scored. The frames are written in the
Cityscapes layout as training cities of their own, `<prefix><city>`, beside a labelled
dataset (the synthetic cities, hard-linked, not copied) whose split manifest gains them in
train; its validation and test sets are unchanged. Then `cityseg train --set data.root=OUT`.

    >>> result = pseudo_label(predictor, real.train, "data/s2r_pseudo", labelled="data/synth")
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cityseg.data import labels
from cityseg.data.cityscapes import LABEL_SUFFIX, DataError, Sample, read_image
from cityseg.data.resize import letterbox, unletterbox

log = logging.getLogger(__name__)

IMAGE_SUFFIX = "_leftImg8bit.png"
PREFIX = "pseudo"  # city name prefix of the pseudo-labelled frames


@dataclass(frozen=True)
class PseudoLabels:
    """What `pseudo_label` wrote: where, how many frames, and what it kept per category."""

    root: Path
    manifest: Path
    frames: int
    thresholds: dict[str, float]  # confidence a pixel of each predicted category needed
    kept: dict[str, float]  # share of all pixels kept with each category, in per cent
    coverage: float  # share of pixels that got a label, in per cent


def softmax_confidence(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax category `uint8` and its softmax probability `float32` per pixel of (..., C)."""
    logits = np.asarray(logits, dtype=np.float32)
    top = logits.max(axis=-1, keepdims=True)
    exp = np.exp(logits - top)
    confidence = 1.0 / exp.sum(axis=-1)  # exp(top - top) / sum
    return logits.argmax(axis=-1).astype(np.uint8), confidence.astype(np.float32)


def class_thresholds(
    classes: np.ndarray, confidence: np.ndarray, keep: float, cap: float
) -> np.ndarray:
    """Per category: the confidence above which its `keep` most confident pixels lie, at most `cap`.

    A category never predicted gets `cap` (nothing to keep); `keep=1` keeps every pixel.
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    if not 0.0 < cap <= 1.0:
        raise ValueError(f"cap must be in (0, 1], got {cap}")
    out = np.full(labels.NUM_CLASSES, cap, dtype=np.float32)
    for c in range(labels.NUM_CLASSES):
        values = confidence[classes == c]
        if values.size:
            out[c] = min(float(np.quantile(values, 1.0 - keep)), cap)
    return out


def _place(source: Path, target: Path) -> None:
    """Hard-link `source` at `target` (a copy where links cannot cross file systems)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _link_tree(source: Path, target: Path) -> None:
    for folder in ("leftImg8bit", "gtFine"):
        for path in sorted((source / folder).rglob("*")):
            if path.is_file():
                _place(path, target / folder / path.relative_to(source / folder))


def _rerooted(samples: Sequence[Sample], old: Path, new: Path) -> list[Sample]:
    def move(path: Path | None) -> Path | None:
        return None if path is None else new / path.relative_to(old)

    return [replace(s, image=move(s.image), label=move(s.label)) for s in samples]  # type: ignore[arg-type]


def pseudo_label(
    predictor: Any,
    samples: Sequence[Sample],
    out: str | Path,
    *,
    labelled: str | Path,
    labelled_manifest: str | Path | None = None,
    keep: float = 0.5,
    cap: float = 0.9,
    prefix: str = PREFIX,
    batch_size: int = 8,
    command: str = "",
) -> PseudoLabels:
    """Label `samples` with `predictor` (a `Predictor`) and write them beside `labelled` into `out`.

    Args:
        samples: the unlabelled frames (their `label` is ignored); e.g. a real set's train.
        labelled: a labelled dataset root with a split manifest, linked into `out`.
        labelled_manifest: its manifest (default `<labelled>/split.json`).
        keep: fraction of each predicted category's pixels kept (the most confident).
        cap: a pixel this confident is always kept.
        command: the command line that asked for this, kept in `<out>/pseudo.json`.
    """
    from cityseg.data import split as split_mod

    if not samples:
        raise DataError("no frames to pseudo-label")
    out, labelled = Path(out), Path(labelled)
    if out.resolve() == labelled.resolve():
        raise DataError(f"{out}: write the pseudo-labels to a new root, not into {labelled}")
    source = split_mod.load_manifest(labelled_manifest or split_mod.default_manifest_path(labelled))
    if source.root.resolve() != labelled.resolve():
        raise DataError(
            f"{labelled_manifest}: its root is {source.root}, not {labelled}: the frames it "
            "lists would not be the ones linked"
        )
    clash = {prefix + s.city for s in samples} & {s.city for s in source.train + source.val}
    if clash:
        raise DataError(f"{labelled}: already has cities {sorted(clash)}; choose another prefix")
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: exists and is not empty; pseudo-labels go to a new root")
    # 1) predict every frame at the model's input size; keep the map and its confidence
    # a Predictor with a `tta` mode labels with the mean softmax of its views (mirror, zooms)
    tta = getattr(predictor, "tta", "none")
    maps: list[tuple[np.ndarray, np.ndarray, Any, tuple[int, int]]] = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        canvases, boxes, sizes = [], [], []
        for sample in chunk:
            image = read_image(sample.image)
            canvas, box = letterbox(image, predictor.input_size)
            canvases.append(canvas)
            boxes.append(box)
            sizes.append((image.shape[1], image.shape[0]))
        batch = np.stack(canvases).astype(np.float32)
        if tta == "none":
            classes, confidence = softmax_confidence(predictor.predict_logits(batch))
        else:  # the mean softmax of the frame's views
            probs = predictor.predict_probabilities(batch)
            classes, confidence = probs.argmax(-1).astype(np.uint8), probs.max(-1)
        for k, box in enumerate(boxes):
            maps.append((classes[k], confidence[k], box, sizes[k]))
    # 2) class-balanced thresholds over all frames (padding excluded)
    inside = [
        (c[b.top : b.top + b.height, b.left : b.left + b.width].ravel(),
         p[b.top : b.top + b.height, b.left : b.left + b.width].ravel())
        for c, p, b, _ in maps
    ]  # fmt: skip
    all_classes = np.concatenate([c for c, _ in inside])
    all_conf = np.concatenate([p for _, p in inside])
    thresholds = class_thresholds(all_classes, all_conf, keep, cap)
    # 3) the labelled dataset, linked; then each frame as a city of its own
    _link_tree(labelled, out)
    if (labelled / "synth.json").is_file():  # the generator's record of the synthetic cities
        _place(labelled / "synth.json", out / "synth.json")
    written: list[Sample] = []
    counts = np.zeros(labels.NUM_CLASSES + 1, np.int64)  # + the unlabelled pixels
    for sample, (classes, confidence, box, size) in zip(samples, maps, strict=True):
        kept = confidence >= thresholds[classes]
        ids = np.where(kept, labels.CATEGORY_TO_ID[classes], labels.NO_LABEL_ID).astype(np.uint8)
        ids = unletterbox(ids, box, size)
        city = prefix + sample.city
        stem = city + sample.stem[len(sample.city) :]
        image_path = out / "leftImg8bit" / "train" / city / f"{stem}{IMAGE_SUFFIX}"
        label_path = out / "gtFine" / "train" / city / f"{stem}{LABEL_SUFFIX}"
        _place(sample.image, image_path)
        label_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ids).save(label_path)
        cats = labels.ID_TO_CATEGORY[ids]
        counts[: labels.NUM_CLASSES] += np.bincount(
            cats[cats < labels.NUM_CLASSES].ravel(), minlength=labels.NUM_CLASSES
        )
        counts[-1] += int((cats == labels.IGNORE_INDEX).sum())
        written.append(Sample(image_path, label_path, city, "train", stem))
    manifest = split_mod.SplitManifest(
        root=out,
        train=_rerooted(source.train, source.root, out) + written,
        val=_rerooted(source.val, source.root, out),
        test=_rerooted(source.test, source.root, out),
        seed=source.seed,
        method={**source.method, "pseudo_labels": {"cities": sorted({s.city for s in written})}},
    )
    manifest.check()
    manifest_path = manifest.save(split_mod.default_manifest_path(out))
    total = max(int(counts.sum()), 1)
    result = PseudoLabels(
        root=out,
        manifest=manifest_path,
        frames=len(written),
        thresholds={
            n: round(float(t), 4) for n, t in zip(labels.CATEGORIES, thresholds, strict=True)
        },
        kept={n: round(100.0 * counts[i] / total, 2) for i, n in enumerate(labels.CATEGORIES)},
        coverage=round(100.0 * (1 - counts[-1] / total), 2),
    )
    meta = {k: (str(v) if isinstance(v, Path) else v) for k, v in result.__dict__.items()}
    members = getattr(predictor, "meta", {}).get("members")  # an ensemble's runs
    model = " + ".join(members or [str(predictor.source)])
    meta |= {"keep": keep, "cap": cap, "labelled": str(labelled), "model": model}
    meta["tta"] = tta
    meta["command"] = command
    (out / "pseudo.json").write_text(json.dumps(meta, indent=2))
    log.info(
        "%d pseudo-labelled frames (%.1f %% of pixels labelled) -> %s",
        len(written),
        result.coverage,
        out,
    )
    return result
