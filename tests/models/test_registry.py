"""Every registered model: builds tiny, right shape/dtype, trains, round-trips, preprocesses."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from cityseg.models import encoders
from cityseg.models.layers import EncoderPreprocess
from cityseg.models.registry import (
    ModelSpec,
    create_model,
    get_spec,
    list_models,
    register,
    set_encoder_trainable,
)

# Small widths keep the whole file fast on 2 CPU cores; models not listed use their defaults.
TINY: dict[str, dict] = {
    "unet_mini": {"filters": (4, 8, 16)},
    "unet_vgg16": {"decoder_filters": (8, 8, 8, 8, 8)},
    "unet_mobilenetv2": {"alpha": 0.35, "decoder_filters": (8, 8, 8, 8, 8)},
    "fpn_efficientnetb0": {"pyramid_filters": 8, "segmentation_filters": 8},
    "deeplabv3plus": {"alpha": 0.35, "aspp_filters": 8, "decoder_filters": 8},
    "lraspp_mobilenetv3": {"alpha": 0.75, "head_filters": 8},
    "lraspp_lite0": {"head_filters": 8},
    "deeplabv3plus_lite0": {"aspp_filters": 8, "decoder_filters": 8},
}


def tiny_size(name: str) -> tuple[int, int]:
    """Smallest 2:1 input the model's divisor allows (at least 64x32)."""
    d = get_spec(name).divisor
    height = max(32, d)
    return 2 * height, height


def build(name: str, **kw) -> keras.Model:
    return create_model(name, input_size=tiny_size(name), **{**TINY.get(name, {}), **kw})


def raw_batch(name: str, n: int = 2, seed: int = 0) -> np.ndarray:
    width, height = tiny_size(name)
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, height, width, 3)).astype("float32")


@pytest.fixture(scope="module", params=list_models())
def built(request) -> tuple[str, keras.Model]:
    keras.utils.set_random_seed(0)
    return request.param, build(request.param)


def test_shape_dtype_and_first_layer(built):
    name, model = built
    width, height = tiny_size(name)
    out = model(raw_batch(name), training=False)
    assert tuple(out.shape) == (2, height, width, 8)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert isinstance(model.layers[1], EncoderPreprocess)
    assert model.layers[1].mode == get_spec(name).preprocessing
    assert np.isfinite(keras.ops.convert_to_numpy(out)).all()


def test_one_training_step_changes_weights(built):
    name, model = built
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,  # one step: tracing/XLA-compiling the graph would cost 10x more
    )
    x = raw_batch(name)
    y = np.random.default_rng(1).integers(0, 8, x.shape[:3]).astype("uint8")
    before = [w.copy() for w in model.get_weights()]
    logs = model.train_on_batch(x, y, return_dict=True)
    after = model.get_weights()
    assert np.isfinite(logs["loss"])
    changed = sum(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert changed > len(before) // 2


def test_keras_round_trip_identical(built, tmp_path: Path):
    name, model = built
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    x = raw_batch(name, seed=3)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(x, training=False)),
        keras.ops.convert_to_numpy(loaded(x, training=False)),
    )


def test_preprocess_equals_encoder_preprocess_input(built):
    name, model = built
    spec = get_spec(name)
    x = raw_batch(name, seed=5)
    ours = keras.ops.convert_to_numpy(model.layers[1](x))
    if spec.encoder is None:
        expected = x / 255.0
    else:
        expected = encoders.preprocess_input_fn(spec.encoder)(x.copy())
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocess_modes_match_imagenet_utils(mode):
    x = np.random.default_rng(0).uniform(0, 255, (1, 4, 4, 3)).astype("float32")
    expected = keras.applications.imagenet_utils.preprocess_input(x.copy(), mode=mode)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(EncoderPreprocess(mode)(x)), expected, rtol=1e-5, atol=1e-4
    )


def test_preprocess_layer_config_round_trip():
    layer = EncoderPreprocess("caffe", name="pre")
    clone = EncoderPreprocess.from_config(layer.get_config())
    assert clone.mode == "caffe" and clone.name == "pre"
    with pytest.raises(ValueError, match="mode 'bgr' unknown"):
        EncoderPreprocess("bgr")


def test_unknown_model_lists_available():
    with pytest.raises(KeyError, match="unet_mini"):
        create_model("unet_giant")


def test_indivisible_size_names_divisor():
    with pytest.raises(ValueError, match="multiples of 32"):
        create_model("unet_mobilenetv2", input_size=(100, 50))
    with pytest.raises(ValueError, match="multiples of 8"):
        create_model("unet_mini", input_size=(60, 30))


def test_default_size_and_params_budget():
    model = create_model("unet_mini")
    assert model.input_shape == (None, 128, 256, 3)
    assert model.count_params() < 1_000_000


def test_register_rejects_duplicates():
    spec = get_spec("unet_mini")
    register(spec)  # same object: idempotent
    clone = ModelSpec(**{**spec.__dict__})
    with pytest.raises(ValueError, match="already registered"):
        register(clone)


def test_set_encoder_trainable():
    model = build("unet_mobilenetv2")
    n_all = len(model.trainable_weights)
    assert set_encoder_trainable(model, False) > 0
    frozen = len(model.trainable_weights)
    assert 0 < frozen < n_all
    set_encoder_trainable(model, True)
    assert len(model.trainable_weights) == n_all
    with pytest.raises(ValueError, match="no pretrained encoder"):
        set_encoder_trainable(build("unet_mini"), False)


def test_frozen_encoder_is_not_updated():
    model = build("lraspp_mobilenetv3")
    set_encoder_trainable(model, False)
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True), run_eagerly=True
    )
    encoder = model.get_layer("encoder")
    before = [w.copy() for w in encoder.get_weights()]
    x = raw_batch("lraspp_mobilenetv3")
    model.train_on_batch(x, np.zeros(x.shape[:3], "uint8"))
    for a, b in zip(before, encoder.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_encoder_weights_from_path(tmp_path: Path):
    width, height = tiny_size("unet_mobilenetv2")
    keras.utils.set_random_seed(7)
    source = encoders.build_encoder("mobilenetv2", (height, width, 3), width=0.35)
    path = tmp_path / "enc.weights.h5"
    source.save_weights(path)
    keras.utils.set_random_seed(8)
    model = build("unet_mobilenetv2", encoder_weights=path)
    for a, b in zip(source.get_weights(), model.get_layer("encoder").get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_encoder_weights_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"nope\.h5"):
        build("unet_mobilenetv2", encoder_weights=tmp_path / "nope.h5")


def test_imagenet_download_failure_says_what_to_fetch(monkeypatch):
    def offline(fname, origin=None, *args, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] no network")

    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", offline)
    with pytest.raises(encoders.EncoderWeightsError) as info:
        create_model("unet_vgg16", input_size=(64, 32), encoder_weights="imagenet")
    message = str(info.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "~/.keras/models/" in message
    assert "https://storage.googleapis.com/" in message


def test_unet_mini_rejects_encoder_weights():
    with pytest.raises(ValueError, match="no pretrained encoder"):
        create_model("unet_mini", input_size=(64, 32), encoder_weights="imagenet")


@pytest.mark.slow
def test_deeplabv3plus_resnet50_backbone():
    model = build("deeplabv3plus", alpha=None, backbone="resnet50")
    assert model.layers[1].mode == "caffe"
    assert tuple(model(raw_batch("deeplabv3plus")).shape) == (2, 32, 64, 8)
    with pytest.raises(ValueError, match="backbone 'vgg' unknown"):
        build("deeplabv3plus", backbone="vgg")


@pytest.mark.parametrize("name", ["unet_mini", "deeplabv3plus"])
def test_logits_stay_float32_under_mixed_precision(name):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build(name)
        assert model.layers[-1].dtype_policy.compute_dtype == "float32"
        out = model(raw_batch(name), training=False)
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_imagenet_with_unsupported_width_keeps_keras_reason():
    with pytest.raises(encoders.EncoderWeightsError, match="alpha can be one of"):
        create_model(
            "lraspp_mobilenetv3", input_size=(64, 32), alpha=0.5, encoder_weights="imagenet"
        )


def test_corrupt_weights_file_is_named(tmp_path: Path):
    bad = tmp_path / "broken.weights.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(encoders.EncoderWeightsError, match=r"broken\.weights\.h5"):
        build("unet_mobilenetv2", encoder_weights=bad)
