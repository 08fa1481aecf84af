"""Whole-split scores at the original label resolution, matching the official evaluator.

Everything is accumulated into one confusion matrix over *official label ids* (rows: ground
truth ids, columns: predicted ids; predicted categories are written as their representative
ids first). From that single matrix come both
- the 8-category scores (`miou`, `dice`, `pixel_accuracy`, per category, confusion matrix),
  after folding ids into categories, with `metrics.scores`; and
- `category_iou`: the official Cityscapes category-level IoU, computed exactly as
  `cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling.getIouScoreForCategory`
  does (ignoreInEval ground truth never counts as a false positive, a prediction into an
  ignored id does count as a false negative), averaged over the categories that occur.

Scores are summed over the whole split before dividing, never averaged per image or batch.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from cityscapesscripts.helpers.labels import labels as _OFFICIAL_LABELS

from cityseg.data import labels
from cityseg.data.cityscapes import Sample, read_image, read_label
from cityseg.data.resize import resize_image, resize_mask

log = logging.getLogger(__name__)

_IDS = 256  # uint8 label ids: official 0..33 and 255 (license plate, -1)
PRED_SUFFIX = "_leftImg8bit.png"
_THUMB_WIDTH = 384  # width of the images drawn in the examples grid


class EvaluationError(ValueError):
    """A prediction folder or sample cannot be scored (missing, extra or malformed files)."""


# --------------------------------------------------------------------------- the maths


def _official_category_ids() -> dict[str, tuple[list[int], list[int]]]:
    """Category -> (its scored label ids, the scored ids of every other category)."""
    scored = [lab for lab in _OFFICIAL_LABELS if lab.id >= 0 and not lab.ignoreInEval]
    out: dict[str, tuple[list[int], list[int]]] = {}
    for name in labels.CATEGORIES:
        inside = [lab.id for lab in scored if lab.category == name]
        if inside:
            out[name] = (inside, [lab.id for lab in scored if lab.category != name])
    return out


_CATEGORY_IDS = _official_category_ids()


def official_category_iou(cm_ids: np.ndarray) -> dict[str, float]:
    """Official category IoU (7 categories) from a label-id confusion matrix (NaN if absent)."""
    out: dict[str, float] = {}
    for name, (inside, others) in _CATEGORY_IDS.items():
        tp = float(cm_ids[np.ix_(inside, inside)].sum())
        fn = float(cm_ids[inside, :].sum()) - tp
        fp = float(cm_ids[np.ix_(others, inside)].sum())
        denom = tp + fp + fn
        out[name] = tp / denom if denom > 0 else math.nan
    return out


def nanmean(values: Iterable[float]) -> float:
    """Mean of the non-NaN values (NaN if none), as the official average does."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def fold_to_categories(cm_ids: np.ndarray) -> np.ndarray:
    """Label-id confusion matrix -> 8x8 category confusion matrix."""
    fold = np.zeros((_IDS, labels.NUM_CLASSES), dtype=np.int64)
    valid = labels.VALID_ID & (labels.ID_TO_CATEGORY < labels.NUM_CLASSES)  # NO_LABEL_ID: none
    fold[np.arange(_IDS)[valid], labels.ID_TO_CATEGORY[valid]] = 1
    return fold.T @ cm_ids.astype(np.int64) @ fold


def ids_confusion(gt_ids: np.ndarray, pred_ids: np.ndarray) -> np.ndarray:
    """256x256 confusion matrix of one image (ground-truth ids x predicted ids)."""
    encoded = gt_ids.astype(np.int64).ravel() * _IDS + pred_ids.astype(np.int64).ravel()
    return np.bincount(encoded, minlength=_IDS * _IDS).reshape(_IDS, _IDS)


def image_miou(cm8: np.ndarray) -> float:
    """mIoU of one image over the categories present in its truth or prediction (for ranking)."""
    tp = np.diag(cm8).astype(np.float64)
    union = cm8.sum(0) + cm8.sum(1) - tp
    return float((tp[union > 0] / union[union > 0]).mean()) if (union > 0).any() else math.nan


def summarise(cm_ids: np.ndarray) -> dict[str, Any]:
    """All scores of a split from its label-id confusion matrix."""
    from cityseg.evaluation import metrics

    cm8 = fold_to_categories(cm_ids)
    result = metrics.scores(cm8)
    official = official_category_iou(cm_ids)
    result["category_iou"] = nanmean(official.values())
    result["per_category_iou_official"] = official
    result["confusion_matrix"] = cm8.astype(int).tolist()
    return result


# --------------------------------------------------------------------------- accumulation


class _Accumulator:
    """Sums the label-id confusion matrix and keeps the examples for the figure."""

    def __init__(self, first: int, worst: int) -> None:
        self.cm_ids = np.zeros((_IDS, _IDS), dtype=np.int64)
        self.per_image: list[tuple[str, float]] = []
        self.first = first
        self.worst = worst
        self.examples_first: list[tuple[int, dict[str, Any]]] = []
        self._heap: list[
            tuple[float, int, dict[str, Any]]
        ] = []  # (-miou, i, row): a max-heap of the worst

    def add(
        self, sample: Sample, image: np.ndarray | None, gt_ids: np.ndarray, pred_ids: np.ndarray
    ) -> None:
        cm = ids_confusion(gt_ids, pred_ids)
        self.cm_ids += cm
        score = image_miou(fold_to_categories(cm))
        index = len(self.per_image)
        self.per_image.append((sample.stem, score))
        if image is None or (index >= self.first and self.worst == 0):
            return
        rank = -score if not math.isnan(score) else -2.0
        worse = len(self._heap) < self.worst or (self.worst > 0 and rank > self._heap[0][0])
        if index >= self.first and not worse:
            return
        row = _example_row(sample.stem, score, image, gt_ids, pred_ids)
        if index < self.first:
            self.examples_first.append((index, row))
        if worse:
            if len(self._heap) < self.worst:
                heapq.heappush(self._heap, (rank, index, row))
            else:
                heapq.heapreplace(self._heap, (rank, index, row))

    def result(self) -> dict[str, Any]:
        if not self.per_image:
            raise EvaluationError("no samples to evaluate")
        result = summarise(self.cm_ids)
        result["num_images"] = len(self.per_image)
        ranked = sorted((s for s in self.per_image if not math.isnan(s[1])), key=lambda s: s[1])
        result["worst_images"] = [{"stem": stem, "miou": v} for stem, v in ranked[:5]]
        return result

    def examples(self) -> list[dict[str, Any]]:
        """The first images (unless also among the worst), then the worst, worst first."""
        worst = sorted(self._heap, key=lambda item: (item[0], -item[1]), reverse=True)
        chosen = {index for _, index, _ in worst}
        first = [row for index, row in self.examples_first if index not in chosen]
        return first + [row for _, _, row in worst]


def _example_row(
    stem: str, score: float, image: np.ndarray, gt_ids: np.ndarray, pred_ids: np.ndarray
) -> dict[str, Any]:
    height = max(1, round(image.shape[0] * _THUMB_WIDTH / image.shape[1]))
    size = (_THUMB_WIDTH, height)
    thumb = resize_image(image, size)
    truth = labels.colorize(resize_mask(labels.to_categories(gt_ids), size))
    pred = labels.colorize(resize_mask(labels.to_categories(pred_ids), size))
    overlay = (0.55 * thumb + 0.45 * pred).astype(np.uint8)
    return {
        "image": thumb,
        "truth": truth,
        "prediction": pred,
        "overlay": overlay,
        "caption": f"{stem}\nmIoU {score:.2f}",
    }


def _progress(items: Sequence[Any], description: str, enabled: bool) -> Iterable[Any]:
    if not enabled:
        return items
    from rich.progress import track

    return track(items, description=description, total=len(items))


def _gt(sample: Sample) -> np.ndarray:
    if sample.label is None:
        raise EvaluationError(f"{sample.image}: no ground-truth label to score against")
    gt = read_label(sample.label)
    labels.to_categories(gt, source=str(sample.label))  # validates, naming the file
    return gt


def evaluate(
    predictor: Any,
    samples: Sequence[Sample],
    *,
    batch_size: int = 8,
    examples: tuple[int, int] = (2, 4),
    progress: bool = False,
) -> dict[str, Any]:
    """Score `predictor` on `samples` at each label's original size; whole-split sums.

    `predictor.predict_many(images)` must return categories at each image's size
    (`cityseg.inference.runtime.Predictor`). `examples` = (first, worst) images kept for the figure,
    available as `result["_examples"]` (dropped by `save_json`).
    """
    acc = _Accumulator(*examples)
    chunks = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    for chunk in _progress(chunks, "evaluating", progress):
        images = [read_image(s.image) for s in chunk]
        predictions = predictor.predict_many(images, batch_size=batch_size)
        for sample, image, pred in zip(chunk, images, predictions, strict=True):
            gt = _gt(sample)
            if pred.shape != gt.shape:
                raise EvaluationError(
                    f"{sample.image}: prediction is {pred.shape[1]}x{pred.shape[0]}, label "
                    f"{gt.shape[1]}x{gt.shape[0]}; predictions must be at the original size"
                )
            acc.add(sample, image, gt, labels.categories_to_label_ids(pred))
    result = acc.result()
    result["_examples"] = acc.examples()
    return result


def match_predictions(
    pred_dir: Path, samples: Sequence[Sample], *, allow_extra: bool = False
) -> list[Path]:
    """The prediction file of each sample (`<stem>_leftImg8bit.png` anywhere under `pred_dir`).

    Raises `EvaluationError` naming every missing file, every duplicate and (unless
    `allow_extra`) every PNG that belongs to no sample.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise EvaluationError(f"prediction folder not found: {pred_dir}")
    found: dict[str, list[Path]] = {}
    for path in sorted(pred_dir.rglob("*.png")):
        found.setdefault(path.name, []).append(path)
    wanted = {s.stem + PRED_SUFFIX: s for s in samples}
    missing = [name for name in wanted if name not in found]
    duplicates = [str(p) for name in wanted for p in found.get(name, [])[1:]]
    extra = [str(p) for name, paths in found.items() if name not in wanted for p in paths]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: " + ", ".join(missing[:20]))
    if duplicates:
        problems.append(f"{len(duplicates)} duplicate(s): " + ", ".join(duplicates[:20]))
    if extra and not allow_extra:
        problems.append(f"{len(extra)} extra file(s) matching no sample: " + ", ".join(extra[:20]))
    if problems:
        raise EvaluationError(f"{pred_dir}: " + "; ".join(problems))
    return [found[s.stem + PRED_SUFFIX][0] for s in samples]


def infer_set(pred_dir: str | Path, candidates: Mapping[str, Sequence[Sample]]) -> str:
    """The set whose samples the predictions in `pred_dir` are of, from their file names.

    The set holding every prediction wins (an exact match first, else the smallest such
    set, so that a folder of the official val frames is scored as the set made of them);
    none holding them all raises `EvaluationError` with how many each set matched.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise EvaluationError(f"prediction folder not found: {pred_dir}")
    names = {p.name for p in pred_dir.rglob("*.png")}
    if not names:
        raise EvaluationError(f"{pred_dir}: no PNG predictions")
    covering = []
    for name, samples in candidates.items():
        wanted = {s.stem + PRED_SUFFIX for s in samples if s.label is not None}
        if names <= wanted:
            covering.append((len(wanted) != len(names), len(wanted), name))
    if not covering:
        counts = ", ".join(
            f"{name} {len(names & {s.stem + PRED_SUFFIX for s in samples})}/{len(samples)}"
            for name, samples in candidates.items()
        )
        raise EvaluationError(
            f"{pred_dir}: the {len(names)} predictions are of no single set (matches: {counts}); "
            "pass --split, and --allow-extra to ignore files of other sets"
        )
    return min(covering)[2]


def evaluate_predictions(
    pred_dir: str | Path,
    samples: Sequence[Sample],
    *,
    allow_extra: bool = False,
    examples: tuple[int, int] = (2, 4),
    progress: bool = False,
) -> dict[str, Any]:
    """Score a folder of official labelIds PNGs (as `cityseg predict --format labelIds` writes)."""
    files = match_predictions(Path(pred_dir), samples, allow_extra=allow_extra)
    acc = _Accumulator(*examples)
    for sample, path in _progress(list(zip(samples, files, strict=True)), "scoring", progress):
        gt = _gt(sample)
        pred = read_label(path)
        labels.to_categories(pred, source=str(path))  # every value must be a Cityscapes id
        if pred.shape != gt.shape:
            raise EvaluationError(
                f"{path}: prediction is {pred.shape[1]}x{pred.shape[0]} but the label "
                f"{sample.label} is {gt.shape[1]}x{gt.shape[0]}"
            )
        image = read_image(sample.image) if sum(examples) else None
        acc.add(sample, image, gt, pred)
    result = acc.result()
    result["_examples"] = acc.examples()
    return result


# --------------------------------------------------------------------------- outputs


def jsonable(value: Any) -> Any:
    """Nested result -> JSON-safe values (NaN -> None, numpy -> Python, private keys dropped)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def scores_name(split: str, tta: str = "none") -> str:
    """The name a split's scores go under (`eval_<name>.json`, `plots/*_<name>.png`): the split,
    or `<split>_tta_<mode>` with test-time augmentation, so the plain score is never replaced."""
    return split if tta == "none" else f"{split}_tta_{tta}"


def read_scores(folder: str | Path, split: str, tta: str = "none") -> dict[str, Any] | None:
    """The scores that `write_outputs` recorded in `folder`; None where none were."""
    path = Path(folder) / f"eval_{scores_name(split, tta)}.json"
    if not path.is_file():
        return None
    try:
        scores: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as err:  # a truncated write, say: name the file
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    return scores


def saved_category_iou(folder: str | Path, split: str, tta: str = "none") -> float | None:
    """The category IoU that `write_outputs` recorded in `folder`; None where none was."""
    value = (read_scores(folder, split, tta) or {}).get("category_iou")
    return None if value is None else float(value)


def write_outputs(result: dict[str, Any], run_dir: str | Path, split: str) -> list[Path]:
    """Write `eval_<split>.json` and the figures (`plots/*_<split>.png`) into `run_dir`."""
    from cityseg.evaluation import plots

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    written = [run_dir / f"eval_{split}.json"]
    written[0].write_text(json.dumps(jsonable(result), indent=2))
    fig_dir = run_dir / "plots"
    written.append(
        plots.confusion_matrix(
            np.asarray(result["confusion_matrix"]),
            labels.CATEGORIES,
            fig_dir / f"confusion_matrix_{split}.png",
            title=f"{split}: confusion matrix (row-normalised)",
        )
    )
    written.append(
        plots.per_category_iou(
            result["per_category_iou"],
            fig_dir / f"per_category_iou_{split}.png",
            title=f"{split}: IoU per category (mIoU {result['miou']:.3f})",
        )
    )
    rows = result.get("_examples") or []
    if rows:
        written.append(
            plots.examples_grid(
                rows,
                fig_dir / f"examples_{split}.png",
                title=f"{split}: first images, then the worst by mIoU",
            )
        )
    return written
