"""A 4:3 model (CamVid's 480x360 at 64x48): no padding for 4:3 frames, letterbox for others,
and its exports keep the aspect, with parity measured on 4:3 frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cityseg.data.labels import IGNORE_INDEX
from cityseg.data.resize import Box, fit_box
from cityseg.inference.export import ParityImage, export
from cityseg.inference.runtime import Predictor, sidecar_path

SIZE = (64, 48)  # (width, height), 4:3 like CamVid


def brightness_model(size: tuple[int, int]):  # type: ignore[no-untyped-def]
    """Per-pixel rule at `size`: bright pixels -> category 5 (sky), dark -> 1 (flat)."""
    import keras

    inputs = keras.Input((size[1], size[0], 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    conv = keras.layers.Conv2D(8, 1)
    outputs = conv(x)
    kernel = np.zeros((1, 1, 3, 8), np.float32)
    kernel[0, 0, :, 5], kernel[0, 0, :, 1] = 1.0, -1.0
    conv.set_weights([kernel, np.zeros(8, np.float32)])
    return keras.Model(inputs, outputs, name="brightness")


@pytest.fixture(scope="module")
def run_4x3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with a trained-from-nothing tiny model at 64x48 (4:3)."""
    run = tmp_path_factory.mktemp("run43")
    brightness_model(SIZE).save(run / "model.keras")
    (run / "metrics.json").write_text(json.dumps({"name": "run43", "model": "tiny"}))
    return run


def test_a_4x3_frame_fills_a_4x3_input_and_a_2x1_frame_is_letterboxed() -> None:
    assert fit_box((480, 360), SIZE) == Box(0, 0, 64, 48)  # same aspect: no padding
    box = fit_box((2048, 1024), SIZE)  # Cityscapes 2:1 into 4:3: bars above and below
    assert (box.left, box.width) == (0, 64) and box.height == 32 and box.top == 8


def test_predictions_come_back_at_each_frame_size(run_4x3: Path) -> None:
    predictor = Predictor.load(run_4x3)
    assert predictor.input_size == SIZE
    rng = np.random.default_rng(0)
    for height, width in ((360, 480), (60, 80), (50, 100)):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        assert predictor.predict(image).shape == (height, width)


@pytest.mark.parametrize(("height", "width"), [(360, 480), (64, 128), (90, 60)])
def test_the_geometry_survives_the_letterbox(run_4x3: Path, height: int, width: int) -> None:
    """A bright rectangle comes back where it was, for 4:3, 2:1 and portrait frames."""
    predictor = Predictor.load(run_4x3)
    image = np.zeros((height, width, 3), np.uint8)
    top, left = height // 4, width // 3
    image[top : 3 * top, left : 2 * left] = 255
    truth = np.where(image[..., 0] > 0, 5, 1)
    agreement = (predictor.predict(image) == truth).mean()
    assert agreement > 0.97, agreement  # only the rectangle's edges may move by a pixel


@pytest.mark.slow
def test_onnx_export_of_a_4x3_model_keeps_its_aspect_and_parity(run_4x3: Path) -> None:
    rng = np.random.default_rng(3)
    parity = []
    for i, (height, width) in enumerate(((48, 64), (360, 480), (32, 64))):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        truth = rng.integers(0, 8, (height, width)).astype(np.uint8)
        truth[truth == 0] = IGNORE_INDEX
        parity.append(ParityImage(image, truth, name=f"p{i}"))
    out = export(run_4x3, "onnx", "none", parity=parity, latency_runs=2)
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["input_size"] == list(SIZE)
    assert meta["parity"]["pixel_agreement"] >= 0.999, meta["parity"]
    exported = Predictor.load(out)
    assert exported.input_size == SIZE
    image = parity[1].image  # a 480x360 frame
    keras_pred = Predictor.load(run_4x3, runtime="keras").predict(image)
    assert exported.predict(image).shape == (360, 480)
    assert (exported.predict(image) == keras_pred).mean() >= 0.999
