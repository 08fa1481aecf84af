"""FeatureStyle: per-frame channel statistics re-drawn while training, identity otherwise."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cityseg.models.layers import FeatureStyle
from cityseg.models.registry import create_model


def _features() -> np.ndarray:
    rng = np.random.default_rng(0)
    # Eight frames whose channels differ in mean and spread, as frames of different styles.
    means = rng.normal(0.0, 3.0, (8, 1, 1, 4))
    stds = rng.uniform(0.5, 4.0, (8, 1, 1, 4))
    return (means + stds * rng.normal(size=(8, 6, 5, 4))).astype("float32")


def _standardised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean((1, 2), keepdims=True)) / x.std((1, 2), keepdims=True)


@pytest.mark.parametrize("mode", ["dsu", "mixstyle"])
def test_training_moves_the_statistics_and_keeps_the_pattern(mode: str) -> None:
    x = _features()
    y = np.asarray(FeatureStyle(mode, p=1.0, seed=3)(x, training=True))
    # Each frame's spatial pattern is kept: only its per-channel mean and std change.
    np.testing.assert_allclose(_standardised(y), _standardised(x), atol=1e-3)
    moved = np.abs(y.mean((1, 2)) - x.mean((1, 2)))
    assert moved.mean() > 0.05, moved


def test_mixstyle_stays_within_the_batch_styles() -> None:
    x = _features()
    y = np.asarray(FeatureStyle("mixstyle", p=1.0, seed=5)(x, training=True))
    # A mixture of two frames' means lies between the batch's extremes, channel by channel.
    lo, hi = x.mean((1, 2)).min(0), x.mean((1, 2)).max(0)
    assert np.all(y.mean((1, 2)) >= lo - 1e-4) and np.all(y.mean((1, 2)) <= hi + 1e-4)


def test_inference_and_p_zero_are_the_identity() -> None:
    x = _features()
    np.testing.assert_array_equal(np.asarray(FeatureStyle("dsu")(x, training=False)), x)
    np.testing.assert_array_equal(np.asarray(FeatureStyle("dsu", p=0.0)(x, training=True)), x)


def test_p_chooses_the_share_of_restyled_frames() -> None:
    x = np.concatenate([_features()] * 16)  # 128 frames
    y = np.asarray(FeatureStyle("dsu", p=0.25, seed=0)(x, training=True))
    restyled = np.abs(y - x).reshape(len(x), -1).max(1) > 1e-5
    assert 0.1 < restyled.mean() < 0.4, restyled.mean()


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="mode 'fourier' unknown"):
        FeatureStyle("fourier")
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        FeatureStyle("dsu", p=1.5)


def test_model_with_feature_style_saves_and_predicts_as_without(tmp_path) -> None:
    keras.utils.set_random_seed(0)
    model = create_model("lraspp_lite0", input_size=(64, 64), feature_style="dsu")
    assert {"style_high", "style_low"} <= {layer.name for layer in model.layers}
    plain = create_model("lraspp_lite0", input_size=(64, 64))
    plain.set_weights(model.get_weights())  # the style layers hold no weights
    images = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    expected = plain.predict(images, verbose=0)
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-5)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), expected, atol=1e-5)
    # Training sees other features than inference does.
    trained = np.asarray(model(images, training=True))
    assert np.abs(trained - expected).max() > 1e-4
