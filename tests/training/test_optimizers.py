"""The encoder learning-rate scale: the encoder moves `scale` times as far, the head as usual."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cityseg.training.optimizers import scale_encoder_learning_rate


def _model() -> keras.Model:
    inputs = keras.Input((4,))
    encoder = keras.Sequential([keras.layers.Dense(3)], name="encoder")
    outputs = keras.layers.Dense(2, name="head")(encoder(inputs))
    return keras.Model(inputs, outputs)


def _step(scale: float, optimizer: str = "sgd") -> tuple[np.ndarray, np.ndarray, keras.Model]:
    keras.utils.set_random_seed(0)
    model = _model()
    base = keras.optimizers.SGD(0.1) if optimizer == "sgd" else keras.optimizers.Adam(0.1)
    enc = model.get_layer("encoder")
    opt = scale_encoder_learning_rate(base, enc.trainable_variables, scale)
    model.compile(optimizer=opt, loss="mse")
    before = [w.copy() for w in model.get_weights()]
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = np.random.default_rng(1).normal(size=(8, 2)).astype("float32")
    model.train_on_batch(x, y)
    after = model.get_weights()
    moves = [a - b for a, b in zip(after, before, strict=True)]
    return moves[0], moves[2], model  # encoder kernel, head kernel


def test_encoder_moves_scale_times_as_far_with_sgd() -> None:
    enc_full, head_full, _ = _step(1.0)
    enc_tenth, head_tenth, model = _step(0.1)
    assert np.abs(enc_full).max() > 0
    np.testing.assert_allclose(enc_tenth, 0.1 * enc_full, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(head_tenth, head_full, rtol=1e-5)
    assert type(model.optimizer).__name__ == "EncoderScaledSGD"


def test_scale_zero_freezes_the_encoder_under_adam() -> None:
    enc, head, _ = _step(0.0, "adam")
    assert not enc.any() and np.abs(head).min() > 0


def test_scale_one_returns_the_optimizer_and_negative_is_refused() -> None:
    opt = keras.optimizers.Adam()
    assert scale_encoder_learning_rate(opt, [keras.Variable(1.0)], 1.0) is opt
    with pytest.raises(ValueError, match="encoder_lr_scale"):
        scale_encoder_learning_rate(opt, [keras.Variable(1.0)], -1.0)
