"""Segmentation scores from a confusion matrix accumulated over the whole split.

The matrix is built from argmax predictions (never soft probabilities) with one
`np.bincount` per batch and summed; IoU/Dice are computed once at the end, never averaged
per batch. Rows are ground truth, columns predictions.

Example:
    >>> cm = ConfusionMatrix()
    >>> for images, masks in val_sequence:
    ...     cm.update(masks, model.predict(images).argmax(-1))
    >>> scores(cm.matrix)["miou"]
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from cityseg.data.labels import CATEGORIES, EVAL_CATEGORIES, IGNORE_INDEX, to_eval_categories


def confusion_matrix(
    y_true: Any, y_pred: Any, num_classes: int = 8, ignore_index: int | None = IGNORE_INDEX
) -> np.ndarray:
    """`int64 (C, C)` counts of (true, predicted) class pairs; `ignore_index` pixels skipped."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true shape {t.shape} != y_pred shape {p.shape} (argmax logits first)")
    t = t.astype(np.int64).ravel()
    p = p.astype(np.int64).ravel()
    if ignore_index is not None:
        keep = t != ignore_index
        t, p = t[keep], p[keep]
    for what, values in (("y_true", t), ("y_pred", p)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            bad = np.unique(values[(values < 0) | (values >= num_classes)])[:10].tolist()
            raise ValueError(f"{what} holds values {bad} outside 0..{num_classes - 1}")
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


class ConfusionMatrix:
    """Accumulates a confusion matrix over batches (one bincount each).

    Args:
        num_classes: number of classes C.
        ignore_index: ground-truth value that is not scored.
    """

    def __init__(self, num_classes: int = 8, ignore_index: int | None = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self._matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, y_true: Any, y_pred: Any) -> ConfusionMatrix:
        """Add one batch of integer labels and integer (argmax) predictions."""
        self._matrix += confusion_matrix(y_true, y_pred, self.num_classes, self.ignore_index)
        return self

    @property
    def matrix(self) -> np.ndarray:
        """A copy of the accumulated `int64 (C, C)` matrix."""
        return self._matrix.copy()

    def reset(self) -> None:
        """Start a new accumulation."""
        self._matrix[:] = 0

    def scores(self, names: tuple[str, ...] | None = None) -> dict[str, Any]:
        """`scores()` of the accumulated matrix."""
        return scores(self._matrix, names)


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU per class, tp / (tp + fp + fn); NaN for a class absent from truth and prediction."""
    cm = np.asarray(cm, dtype=np.float64)  # counts of any integer type, no overflow
    tp = np.diag(cm)
    with np.errstate(invalid="ignore"):  # denominators are 0 only where tp is: 0 / 0 = NaN
        return tp / (cm.sum(0) + cm.sum(1) - tp)


def per_class_dice(cm: np.ndarray) -> np.ndarray:
    """Dice (F1) per class, 2tp / (2tp + fp + fn); NaN where the class never occurs."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    with np.errstate(invalid="ignore"):
        return 2 * tp / (cm.sum(0) + cm.sum(1))


def scores(cm: np.ndarray, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """mIoU, Dice and pixel accuracy from a whole-split confusion matrix.

    Classes absent from both truth and prediction get NaN and are left out of the means
    (`to_jsonable` turns NaN into null).
    """
    cm = np.asarray(cm)
    names = CATEGORIES if names is None else tuple(names)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(names):
        raise ValueError(f"confusion matrix shape {cm.shape} does not match {len(names)} names")
    iou = per_class_iou(cm)
    dice = per_class_dice(cm)
    total = cm.sum()
    return {
        "miou": _nanmean(iou),
        "per_category_iou": {n: float(v) for n, v in zip(names, iou, strict=True)},
        "dice": _nanmean(dice),
        "per_category_dice": {n: float(v) for n, v in zip(names, dice, strict=True)},
        "pixel_accuracy": float(np.trace(cm) / total) if total else math.nan,
    }


def eval_category_miou(cm: np.ndarray) -> float:
    """Mean IoU over the 7 official categories (no void) present in truth or prediction."""
    return _nanmean(per_class_iou(cm)[list(EVAL_CATEGORIES)])


def category_iou(label_ids_true: Any, categories_pred: Any) -> dict[str, Any]:
    """The official Cityscapes category score for one or more images.

    Ground truth is official label ids; pixels whose label is `ignoreInEval` are ignored;
    the 7 categories without void are scored. A prediction of void on a scored pixel is a
    false negative of its category and no false positive of any (as in
    `evalPixelLevelSemanticLabeling.getIouScoreForCategory`); the mean skips NaN categories.
    """
    return CategoryIoU().update(label_ids_true, categories_pred).result()


class CategoryIoU:
    """Accumulates the official category-level IoU over a split (see `category_iou`)."""

    def __init__(self) -> None:
        self._cm = ConfusionMatrix(len(CATEGORIES), IGNORE_INDEX)

    def update(
        self, label_ids: Any, pred_categories: Any, *, source: str = "label image"
    ) -> CategoryIoU:
        """Add official label ids (uint8, H x W) and predicted categories 0..7 of the same shape."""
        self._cm.update(to_eval_categories(np.asarray(label_ids), source=source), pred_categories)
        return self

    @property
    def matrix(self) -> np.ndarray:
        """Category confusion matrix over the scored (not ignoreInEval) pixels."""
        return self._cm.matrix

    def reset(self) -> None:
        """Start a new accumulation."""
        self._cm.reset()

    def result(self) -> dict[str, Any]:
        """`{"category_iou": mean, "per_category_iou": {name: iou}}` over the 7 categories."""
        iou = per_class_iou(self._cm.matrix)[list(EVAL_CATEGORIES)]
        return {
            "category_iou": eval_category_miou(self._cm.matrix),
            "per_category_iou": {
                CATEGORIES[c]: float(v) for c, v in zip(EVAL_CATEGORIES, iou, strict=True)
            },
        }


def to_jsonable(value: Any) -> Any:
    """Recursively turn NaN floats into None and numpy scalars/arrays into Python types."""
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _count_dtype() -> str:
    """float64 for the streaming confusion matrix, except under JAX without 64-bit types
    (`JAX_ENABLE_X64` unset), where float32 counts stay exact up to 2**24 per cell: enough to
    pick the best epoch; the reported scores come from `ConfusionMatrix` (NumPy, int64)."""
    if keras.backend.backend() == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            return "float32"
    return "float64"


@keras.saving.register_keras_serializable(package="cityseg")
class MeanIoU(keras.metrics.Metric):
    """Epoch mIoU for training: argmax of logits, confusion matrix summed over the epoch.

    Unlike `keras.metrics.MeanIoU` (float32 accumulator, which stops counting exactly past
    2**24 pixels per cell), the matrix is accumulated in float64; each batch's counts come
    from a one-hot matmul (XLA-friendly) and are exact. Classes absent from truth and
    prediction are left out of the mean.

    Args:
        num_classes: number of classes C (logits channels).
        ignore_index: ground-truth value that is not scored.
        name: metric name, "miou" so that logs read `miou` / `val_miou`.
    """

    def __init__(
        self,
        num_classes: int = 8,
        ignore_index: int | None = IGNORE_INDEX,
        name: str = "miou",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.total_cm = self.add_variable(
            shape=(num_classes, num_classes),
            initializer="zeros",
            dtype=_count_dtype(),
            name="total_cm",
        )

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Add a batch: `y_true` int (B, H, W[, 1]), `y_pred` logits (B, H, W, C)."""
        ops = keras.ops
        pred = ops.reshape(ops.argmax(y_pred, axis=-1), (-1,))
        true = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        valid = ops.ones_like(true, dtype="float32")
        if self.ignore_index is not None:
            valid = ops.cast(ops.not_equal(true, self.ignore_index), "float32")
        true_1h = ops.one_hot(true, self.num_classes) * valid[:, None]  # out-of-range -> zeros
        pred_1h = ops.one_hot(pred, self.num_classes)
        batch_cm = ops.matmul(ops.transpose(true_1h), pred_1h)
        self.total_cm.assign_add(ops.cast(batch_cm, self.total_cm.dtype))

    def result(self) -> Any:
        """Mean IoU over classes present in truth or prediction so far."""
        ops = keras.ops
        cm = self.total_cm
        tp = ops.diagonal(cm)
        denom = ops.sum(cm, axis=0) + ops.sum(cm, axis=1) - tp
        present = ops.cast(ops.greater(denom, 0), cm.dtype)
        iou = tp / ops.maximum(denom, 1.0)
        return ops.cast(ops.sum(iou * present) / ops.maximum(ops.sum(present), 1.0), "float32")

    def reset_state(self) -> None:
        """Zero the matrix (Keras calls this at the start of every epoch)."""
        self.total_cm.assign(keras.ops.zeros(self.total_cm.shape, dtype=self.total_cm.dtype))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
        }
