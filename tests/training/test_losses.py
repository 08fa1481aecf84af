"""Losses on hand-computed cases: perfect, uniform, ignored pixels, class weights."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from cityseg.training import losses

C = 8


def onehot_logits(labels: np.ndarray, scale: float = 50.0) -> np.ndarray:
    return (np.eye(C, dtype="float32")[labels] * scale).astype("float32")


def value(x) -> float:
    return float(keras.ops.convert_to_numpy(x))


@pytest.fixture
def labels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, C, (2, 4, 6)).astype("int32")


ALL = ["ce", "dice", "focal", "ce_dice", "lovasz"]


@pytest.mark.parametrize("name", ALL)
def test_perfect_prediction_is_zero(name, labels):
    loss = losses.get_loss(name)
    assert value(loss(labels, onehot_logits(labels))) == pytest.approx(0.0, abs=1e-3)


def test_uniform_prediction_known_values():
    y = np.zeros((1, 2, 2), "int32")
    logits = np.zeros((1, 2, 2, C), "float32")
    assert value(losses.cross_entropy(y, logits)) == pytest.approx(math.log(8), rel=1e-6)
    assert value(losses.focal(y, logits, gamma=2.0)) == pytest.approx(
        (7 / 8) ** 2 * math.log(8), rel=1e-6
    )
    # class 0: 2 * (4 * 1/8) / (4 * 1/8 + 4) = 2/9; every other class: 0 (no smoothing)
    assert value(losses.dice(y, logits, smooth=0.0)) == pytest.approx(1 - (2 / 9) / 8, rel=1e-6)
    # Lovász, one class present with all 4 pixels at error 7/8: grad sums to J = 1 -> 7/8
    assert value(losses.lovasz_softmax(y, logits)) == pytest.approx(7 / 8, rel=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_ignored_pixels_change_nothing(name, labels):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(*labels.shape, C)).astype("float32")
    # Append two columns of ignored pixels with arbitrary logits.
    extra_y = np.full((2, 4, 2), 255, "int32")
    extra_logits = rng.normal(size=(2, 4, 2, C)).astype("float32") * 10
    y_big = np.concatenate([labels, extra_y], axis=2)
    logits_big = np.concatenate([logits, extra_logits], axis=2)
    plain = value(losses.get_loss(name)(labels, logits))
    ignoring = value(losses.get_loss(name, ignore_index=255)(y_big, logits_big))
    assert ignoring == pytest.approx(plain, rel=1e-5)


def test_class_weights_scale_ce(labels):
    logits = np.random.default_rng(2).normal(size=(*labels.shape, C)).astype("float32")
    plain = value(losses.cross_entropy(labels, logits))
    doubled = value(losses.cross_entropy(labels, logits, class_weights=[2.0] * C))
    assert doubled == pytest.approx(2 * plain, rel=1e-6)
    y = np.full((1, 2, 2), 3, "int32")
    weights = np.arange(1, C + 1, dtype="float32")
    uniform = np.zeros((1, 2, 2, C), "float32")
    weighted = losses.get_loss("weighted_ce", class_weights=weights)
    assert value(weighted(y, uniform)) == pytest.approx(4 * math.log(8), rel=1e-6)


def test_weighted_ce_per_pixel():
    # One pixel of class 0 (weight 1), one of class 1 (weight 3), uniform logits.
    y = np.array([[[0, 1]]], "int32")
    logits = np.zeros((1, 1, 2, C), "float32")
    loss = losses.cross_entropy(y, logits, class_weights=[1, 3, 1, 1, 1, 1, 1, 1])
    assert value(loss) == pytest.approx((1 + 3) / 2 * math.log(8), rel=1e-6)


def lovasz_reference(labels: np.ndarray, logits: np.ndarray) -> float:
    """Berman et al.'s lovasz_softmax_flat (classes='present'), in numpy."""
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs = (probs / probs.sum(-1, keepdims=True)).reshape(-1, C)
    labels = labels.ravel()
    values = []
    for c in range(C):
        fg = (labels == c).astype(float)
        if fg.sum() == 0:
            continue
        errors = np.abs(fg - probs[:, c])
        order = np.argsort(-errors, kind="stable")
        gt_sorted = fg[order]
        gts = gt_sorted.sum()
        jaccard = 1 - (gts - np.cumsum(gt_sorted)) / (gts + np.cumsum(1 - gt_sorted))
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
        values.append(float(errors[order] @ jaccard))
    return float(np.mean(values))


def test_lovasz_matches_reference(labels):
    logits = np.random.default_rng(3).normal(size=(*labels.shape, C)).astype("float32")
    expected = lovasz_reference(labels, logits)
    assert value(losses.lovasz_softmax(labels, logits)) == pytest.approx(expected, rel=1e-5)


def test_accepts_channel_dim_and_uint8(labels):
    logits = np.random.default_rng(4).normal(size=(*labels.shape, C)).astype("float32")
    a = value(losses.cross_entropy(labels, logits))
    b = value(losses.cross_entropy(labels[..., None].astype("uint8"), logits))
    assert a == pytest.approx(b, rel=1e-6)


def test_get_loss_errors():
    with pytest.raises(ValueError, match="available losses: ce"):
        losses.get_loss("hinge")
    with pytest.raises(ValueError, match="needs class_weights"):
        losses.get_loss("weighted_ce")
    with pytest.raises(ValueError, match="does not use class_weights"):
        losses.get_loss("dice", class_weights=[1.0] * C)
    with pytest.raises(ValueError, match="8 finite non-negative"):
        losses.get_loss("ce", class_weights=[1.0] * 3)


def test_keras_wrapper_trains_and_serialises(labels):
    loss = losses.get_loss("ce_dice", class_weights=[1.0] * C, ignore_index=255)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, losses.SegmentationLoss)
    assert clone.get_config()["loss"] == "ce_dice" and clone.ignore_index == 255
    inputs = keras.Input((4, 6, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(C, 1)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss, run_eagerly=True)
    x = np.random.default_rng(5).normal(size=(2, 4, 6, 3)).astype("float32")
    first = model.train_on_batch(x, labels)
    for _ in range(5):
        last = model.train_on_batch(x, labels)
    assert last < first


def test_class_weights_from_frequencies():
    freq = np.array([0.5, 0.25, 0.25, 0, 0, 0, 0, 0])
    for method in losses.WEIGHT_METHODS:
        w = losses.class_weights_from_frequencies(freq, method)
        assert np.sum(freq * w) == pytest.approx(1.0)
        assert w[0] < w[1] == pytest.approx(w[2])
        assert (w[3:] == 0).all()
    w = losses.class_weights_from_frequencies(freq, "inverse")
    assert w[1] / w[0] == pytest.approx(2.0)
    w = losses.class_weights_from_frequencies(freq, "inverse_sqrt")
    assert w[1] / w[0] == pytest.approx(math.sqrt(2))
    w = losses.class_weights_from_frequencies(freq, "enet")
    assert w[1] / w[0] == pytest.approx(math.log(1.02 + 0.5) / math.log(1.02 + 0.25))
    with pytest.raises(ValueError, match="unknown class weight method"):
        losses.class_weights_from_frequencies(freq, "log")


def test_pixel_frequencies_over_batches():
    y1 = np.array([[[0, 0], [1, 255]]], "uint8")
    y2 = np.array([[[1, 1], [2, 255]]], "uint8")
    batches = [(np.zeros((1, 2, 2, 3)), y1), (np.zeros((1, 2, 2, 3)), y2)]
    freq = losses.pixel_frequencies(batches)
    np.testing.assert_allclose(freq, [2 / 6, 3 / 6, 1 / 6, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(losses.pixel_frequencies(np.concatenate([y1, y2])), freq)
    with pytest.raises(ValueError, match=r"found \[9\]"):
        losses.pixel_frequencies(np.array([[9]], "uint8"))


@pytest.mark.parametrize("name", losses.LOSSES)
def test_every_loss_fits_in_a_compiled_graph(name):
    # The trainer compiles with XLA when it can: every loss must trace (no numpy, no eager).
    from cityseg.evaluation.metrics import MeanIoU

    rng = np.random.default_rng(6)
    x = rng.normal(size=(4, 4, 6, 3)).astype("float32")
    y = rng.integers(0, C, (4, 4, 6)).astype("uint8")
    y[:, 0] = 255
    inputs = keras.Input((4, 6, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(C, 1)(inputs))
    weights = [1.0] * C if name == "weighted_ce" else None
    model.compile(
        optimizer="adam",
        loss=losses.get_loss(name, class_weights=weights, ignore_index=255),
        metrics=[MeanIoU()],
        jit_compile=True,
    )
    history = model.fit(x, y, batch_size=3, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert 0.0 <= history.history["miou"][-1] <= 1.0
