"""Segmentation losses: the maths in pure `keras.ops` functions, thin Keras wrappers on top.

All take `y_true` int categories `(B, H, W)` (or `(B, H, W, 1)`) and `y_pred` logits
`(B, H, W, C)`. With `ignore_index`, pixels holding that value contribute nothing: they are
left out of both the numerator and the normaliser. Losses are reduced over the whole batch
(pixel means, not means of per-image means), so an image with many ignored pixels does not
weigh as much as a fully labelled one.

Example:
    >>> loss = get_loss("ce_dice", ignore_index=255)
    >>> model.compile(optimizer="adamw", loss=loss)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import keras
import numpy as np
from keras import ops

logger = logging.getLogger(__name__)

WEIGHT_METHODS = ("inverse", "inverse_sqrt", "median", "enet")
_EPS = 1e-7


def _prepare(y_true: Any, y_pred: Any, ignore_index: int | None) -> tuple[Any, Any, Any]:
    """(labels int32 (B,H,W) with ignored pixels set to 0, valid float (B,H,W), logits f32)."""
    logits = ops.cast(y_pred, "float32")  # mixed precision: compute losses in float32
    labels = ops.cast(y_true, "int32")
    if len(labels.shape) == len(logits.shape):
        labels = ops.squeeze(labels, axis=-1)
    if ignore_index is None:
        valid = ops.ones_like(labels, dtype="float32")
    else:
        keep = ops.not_equal(labels, ignore_index)
        valid = ops.cast(keep, "float32")
        labels = ops.where(keep, labels, ops.zeros_like(labels))
    return labels, valid, logits


def _pixel_weights(labels: Any, class_weights: Any | None) -> Any:
    if class_weights is None:
        return ops.ones_like(labels, dtype="float32")
    return ops.take(ops.convert_to_tensor(np.asarray(class_weights, "float32")), labels)


def cross_entropy(
    y_true: Any,
    y_pred: Any,
    *,
    class_weights: Any | None = None,
    ignore_index: int | None = None,
) -> Any:
    """Mean over valid pixels of `w[y] * -log softmax(logits)[y]` (w = 1 without weights)."""
    labels, valid, logits = _prepare(y_true, y_pred, ignore_index)
    num_classes = logits.shape[-1]
    log_probs = ops.log_softmax(logits, axis=-1)
    nll = -ops.sum(log_probs * ops.one_hot(labels, num_classes), axis=-1)
    weights = _pixel_weights(labels, class_weights) * valid
    return ops.sum(nll * weights) / ops.maximum(ops.sum(valid), 1.0)


def focal(
    y_true: Any,
    y_pred: Any,
    *,
    gamma: float = 2.0,
    class_weights: Any | None = None,
    ignore_index: int | None = None,
) -> Any:
    """Focal loss (Lin et al. 2017): mean of `w[y] * -(1 - p_y)^gamma * log p_y`."""
    labels, valid, logits = _prepare(y_true, y_pred, ignore_index)
    num_classes = logits.shape[-1]
    log_p = ops.sum(ops.log_softmax(logits, axis=-1) * ops.one_hot(labels, num_classes), axis=-1)
    modulating = ops.power(1.0 - ops.exp(log_p), gamma)
    weights = _pixel_weights(labels, class_weights) * valid
    return ops.sum(-modulating * log_p * weights) / ops.maximum(ops.sum(valid), 1.0)


def dice(
    y_true: Any,
    y_pred: Any,
    *,
    smooth: float = 1.0,
    ignore_index: int | None = None,
) -> Any:
    """Soft multi-class Dice loss: `1 - mean_c (2|P_c G_c| + s) / (|P_c| + |G_c| + s)`.

    Sums run over the whole batch; a class absent from both target and prediction scores
    ~1 thanks to the smoothing term, so it neither helps nor hurts.
    """
    labels, valid, logits = _prepare(y_true, y_pred, ignore_index)
    num_classes = logits.shape[-1]
    probs = ops.softmax(logits, axis=-1) * valid[..., None]
    target = ops.one_hot(labels, num_classes) * valid[..., None]
    axes = tuple(range(len(probs.shape) - 1))
    intersection = ops.sum(probs * target, axis=axes)
    denominator = ops.sum(probs, axis=axes) + ops.sum(target, axis=axes)
    score = (2.0 * intersection + smooth) / (denominator + smooth)
    return 1.0 - ops.mean(score)


def lovasz_softmax(y_true: Any, y_pred: Any, *, ignore_index: int | None = None) -> Any:
    """Lovász-softmax loss (Berman et al. 2018), over the batch, mean over present classes.

    Ignored pixels get error 0 and no foreground, so they sort last and add nothing.
    """
    labels, valid, logits = _prepare(y_true, y_pred, ignore_index)
    num_classes = logits.shape[-1]
    probs = ops.reshape(ops.softmax(logits, axis=-1), (-1, num_classes))
    fg = ops.reshape(ops.one_hot(labels, num_classes), (-1, num_classes))
    valid = ops.reshape(valid, (-1, 1))
    fg = fg * valid
    errors = ops.transpose(ops.abs(fg - probs) * valid)  # (C, N)
    fg = ops.transpose(fg)
    order = ops.argsort(-errors, axis=-1)
    errors_sorted = ops.take_along_axis(errors, order, axis=-1)
    fg_sorted = ops.take_along_axis(fg, order, axis=-1)
    gts = ops.sum(fg_sorted, axis=-1, keepdims=True)
    intersection = gts - ops.cumsum(fg_sorted, axis=-1)
    union = gts + ops.cumsum(1.0 - fg_sorted, axis=-1)
    jaccard = 1.0 - intersection / ops.maximum(union, _EPS)
    grad = ops.concatenate([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], axis=-1)
    per_class = ops.sum(errors_sorted * grad, axis=-1)
    present = ops.cast(ops.greater(gts[:, 0], 0.0), "float32")
    return ops.sum(per_class * present) / ops.maximum(ops.sum(present), 1.0)


def ce_dice(
    y_true: Any,
    y_pred: Any,
    *,
    class_weights: Any | None = None,
    ignore_index: int | None = None,
) -> Any:
    """Cross-entropy plus soft Dice (equal weights)."""
    return cross_entropy(
        y_true, y_pred, class_weights=class_weights, ignore_index=ignore_index
    ) + dice(y_true, y_pred, ignore_index=ignore_index)


# name -> (function, accepts class weights, requires class weights)
_FUNCTIONS: dict[str, tuple[Callable[..., Any], bool, bool]] = {
    "ce": (cross_entropy, True, False),
    "weighted_ce": (cross_entropy, True, True),
    "dice": (dice, False, False),
    "focal": (focal, True, False),
    "ce_dice": (ce_dice, True, False),
    "lovasz": (lovasz_softmax, False, False),
}
LOSSES: tuple[str, ...] = tuple(_FUNCTIONS)


@keras.saving.register_keras_serializable(package="cityseg")
class SegmentationLoss(keras.losses.Loss):
    """Keras wrapper around one of the pure loss functions, selected by name.

    Args:
        loss: a name from `LOSSES`.
        class_weights: per-class weights (length C) for the losses that take them.
        ignore_index: label value whose pixels contribute nothing.
        **kwargs: `name`, `dtype` of `keras.losses.Loss`.
    """

    def __init__(
        self,
        loss: str = "ce",
        class_weights: list[float] | None = None,
        ignore_index: int | None = None,
        **kwargs: Any,
    ) -> None:
        if loss not in _FUNCTIONS:
            raise ValueError(f"unknown loss {loss!r}; available losses: {', '.join(LOSSES)}")
        kwargs.setdefault("name", loss)
        super().__init__(**kwargs)
        self.loss = loss
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.ignore_index = ignore_index

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """The batch loss (already reduced over all valid pixels)."""
        fn, takes_weights, _ = _FUNCTIONS[self.loss]
        kwargs: dict[str, Any] = {"ignore_index": self.ignore_index}
        if takes_weights:
            kwargs["class_weights"] = self.class_weights
        return fn(y_true, y_pred, **kwargs)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "loss": self.loss,
            "class_weights": self.class_weights,
            "ignore_index": self.ignore_index,
        }


def get_loss(
    name: str,
    *,
    num_classes: int = 8,
    class_weights: Any | None = None,
    ignore_index: int | None = None,
) -> SegmentationLoss:
    """A Keras loss by name; `weighted_ce` needs `class_weights` (see `class_weights_from_frequencies`)."""
    if name not in _FUNCTIONS:
        raise ValueError(f"unknown loss {name!r}; available losses: {', '.join(LOSSES)}")
    _, takes_weights, needs_weights = _FUNCTIONS[name]
    if needs_weights and class_weights is None:
        raise ValueError(
            f"loss {name!r} needs class_weights; compute them with "
            "class_weights_from_frequencies(pixel_frequencies(train_sequence))"
        )
    if class_weights is not None:
        if not takes_weights:
            raise ValueError(f"loss {name!r} does not use class_weights")
        weights = np.asarray(class_weights, dtype="float64").ravel()
        if weights.shape != (num_classes,) or not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError(
                f"class_weights must be {num_classes} finite non-negative numbers, got {weights}"
            )
        class_weights = weights.tolist()
    return SegmentationLoss(name, class_weights=class_weights, ignore_index=ignore_index)


def _masks(source: Any) -> Iterable[np.ndarray]:
    if isinstance(source, np.ndarray):
        yield source
        return
    if hasattr(source, "__getitem__") and hasattr(source, "__len__"):
        # A keras PyDataset / Sequence yields (x, y) batches; index it so each batch is read once.
        for i in range(len(source)):
            item = source[i]
            yield np.asarray(item[1] if isinstance(item, tuple) else item)
        return
    for item in source:
        yield np.asarray(item[1] if isinstance(item, tuple) else item)


def pixel_frequencies(
    source: Any, *, num_classes: int = 8, ignore_index: int | None = 255
) -> np.ndarray:
    """Fraction of (non-ignored) pixels per class over masks or an `(x, y)` batch sequence."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for mask in _masks(source):
        values = np.asarray(mask).astype(np.int64).ravel()
        if ignore_index is not None:
            values = values[values != ignore_index]
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"mask values must be 0..{num_classes - 1} or the ignore index {ignore_index}; "
                f"found {sorted(set(np.unique(values).tolist()) - set(range(num_classes)))}"
            )
        counts += np.bincount(values, minlength=num_classes)
    total = counts.sum()
    if total == 0:
        raise ValueError("no labelled pixels to compute class frequencies from")
    return counts / total


def class_weights_from_frequencies(
    freq: Any, method: str = "inverse_sqrt", *, enet_c: float = 1.02
) -> np.ndarray:
    """Per-class weights from pixel frequencies, normalised so the mean pixel weight is 1.

    Methods: `inverse` 1/f, `inverse_sqrt` 1/sqrt(f), `median` median(f)/f (Eigen & Fergus),
    `enet` 1/ln(c + f) (Paszke et al.). Classes that never occur get weight 0: no pixel
    would use it, and an infinite weight would poison the normalisation.
    """
    f = np.asarray(freq, dtype=np.float64).ravel()
    if (f < 0).any() or not np.isfinite(f).all() or f.sum() <= 0:
        raise ValueError(f"frequencies must be finite, non-negative and not all zero: {f}")
    f = f / f.sum()
    present = f > 0
    w = np.zeros_like(f)
    if method == "inverse":
        w[present] = 1.0 / f[present]
    elif method == "inverse_sqrt":
        w[present] = 1.0 / np.sqrt(f[present])
    elif method == "median":
        w[present] = np.median(f[present]) / f[present]
    elif method == "enet":
        w[present] = 1.0 / np.log(enet_c + f[present])
    else:
        raise ValueError(f"unknown class weight method {method!r}; choose from {WEIGHT_METHODS}")
    if not present.all():
        logger.warning("classes %s never occur: weight 0", np.flatnonzero(~present).tolist())
    return w / np.sum(f * w)
