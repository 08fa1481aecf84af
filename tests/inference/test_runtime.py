"""Predictor behaviour on a hand-built Keras model whose answer is known in advance."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import blocky
import numpy as np
import pytest

from cityseg.data.labels import NUM_CLASSES, PALETTE, colorize
from cityseg.inference.runtime import (
    TTA_SCALES,
    Backend,
    Predictor,
    RuntimeLoadError,
    best_runtime,
    meets_parity,
    sidecar_path,
)

SIZE = (32, 16)  # (width, height)


def palette_model(size: tuple[int, int] = SIZE):
    """A 1x1 conv scoring each pixel by closeness to each category colour.

    logit_c = 2 x.p_c - |p_c|^2 = |x|^2 - |x - p_c|^2, so argmax is the nearest palette
    colour: `predict(colorize(c)) == c` exactly, a result known before running it.
    """
    import keras

    palette = PALETTE.astype("float32")
    inputs = keras.Input((size[1], size[0], 3))
    conv = keras.layers.Conv2D(NUM_CLASSES, 1, name="palette")
    outputs = conv(inputs)
    model = keras.Model(inputs, outputs, name="palette_model")
    conv.set_weights([(2 * palette.T)[None, None], -(palette**2).sum(axis=1)])
    return model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder holding the palette model plus a metrics.json."""
    run = tmp_path_factory.mktemp("runs") / "palette_run"
    run.mkdir()
    palette_model().save(run / "model.keras")
    (run / "metrics.json").write_text(json.dumps({"name": "palette_run", "test": {"miou": 1.0}}))
    return run


@pytest.fixture(scope="module")
def predictor(run_dir: Path) -> Predictor:
    return Predictor.load(run_dir)


def _blocks(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Categories in 8x8 blocks of random classes (large enough to survive resizing)."""
    return blocky.blocks(np.random.default_rng(seed), height // 8, width // 8, block=8)


def test_load_run_folder_attributes(predictor: Predictor, run_dir: Path) -> None:
    assert predictor.runtime == "keras"
    assert predictor.name == "palette_run"
    assert predictor.input_size == SIZE
    assert predictor.metrics["test"]["miou"] == 1.0
    assert predictor.source == run_dir


def test_predict_recovers_categories_at_model_size(predictor: Predictor) -> None:
    truth = _blocks(SIZE[1], SIZE[0])
    mask = predictor.predict(colorize(truth))
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, truth)


def test_predict_other_size_and_aspect_returns_original_size(predictor: Predictor) -> None:
    # A square frame is letterboxed (not squashed) and the answer comes back at its size.
    truth = _blocks(64, 64, seed=1)
    mask = predictor.predict(colorize(truth))
    assert mask.shape == (64, 64)
    # Block interiors survive the down/up round trip; only block edges may move a pixel
    # (measured 0.996 for this frame).
    agree = (mask == truth).mean()
    assert agree >= 0.99, agree
    # The padding (black, read as void) is cropped off: a frame without void gets none back.
    no_void = 1 + truth % 7
    mask = predictor.predict(colorize(no_void))
    assert 0 not in mask
    assert (mask == no_void).mean() >= 0.95


def test_letterbox_not_squash() -> None:
    # A square frame must reach the model as a centred 16x16 picture padded with zeros,
    # never stretched to 32x16; a spy back end sees exactly what the model would.
    seen, spy = _spy(lambda batch: np.zeros((*batch.shape[:3], NUM_CLASSES), np.float32))
    predictor = Predictor(spy, name="spy", runtime="keras", input_size=SIZE)
    image = np.full((40, 40, 3), 200, np.uint8)
    mask = predictor.predict(image)
    assert mask.shape == (40, 40)
    (canvas,) = seen[0]
    assert canvas.shape == (16, 32, 3)
    np.testing.assert_array_equal(canvas[:, 8:24], 200)  # content keeps its aspect
    np.testing.assert_array_equal(canvas[:, :8], 0)  # padding left and right
    np.testing.assert_array_equal(canvas[:, 24:], 0)


def test_predict_many_matches_predict_with_partial_batch(predictor: Predictor) -> None:
    images = [colorize(_blocks(16 * (1 + i % 2), 32, seed=i)) for i in range(5)]
    many = predictor.predict_many(images, batch_size=2)
    assert len(many) == 5  # 2 + 2 + 1: the last partial batch is kept
    for image, mask in zip(images, many, strict=True):
        np.testing.assert_array_equal(mask, predictor.predict(image))


def test_predict_logits_shape_and_values(predictor: Predictor) -> None:
    batch = np.full((3, SIZE[1], SIZE[0], 3), 128.0, np.float32)
    logits = predictor.predict_logits(batch)
    assert logits.shape == (3, SIZE[1], SIZE[0], NUM_CLASSES)
    palette = PALETTE.astype(np.float64)
    expected = 2 * 128.0 * palette.sum(axis=1) - (palette**2).sum(axis=1)
    np.testing.assert_allclose(logits[0, 0, 0], expected, rtol=1e-5)


def _lopsided(batch: np.ndarray) -> np.ndarray:
    """Logits that see the content (red -> 1, else 2) but lean to category 3 on the left."""
    logits = np.zeros((*batch.shape[:3], NUM_CLASSES), np.float32)
    logits[..., 1] = (batch[..., 0] > 128) * 2.0
    logits[..., 2] = (batch[..., 0] <= 128) * 2.0
    logits[..., 3] = np.linspace(3.0, -3.0, batch.shape[2])[None, None, :]
    return logits


def _spy(answer: Backend = _lopsided) -> tuple[list[np.ndarray], Backend]:
    """A back end answering like `answer` that keeps a copy of every batch it is given."""
    seen: list[np.ndarray] = []

    def spy(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.copy())
        return answer(batch)

    return seen, spy


def test_hflip_tta_averages_the_mirrored_view() -> None:
    seen, spy = _spy()
    predictor = Predictor(spy, name="spy", runtime="keras", input_size=SIZE, tta="hflip")
    image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    image[:, : SIZE[0] // 4, 0] = 255  # a red band on the left only: not symmetric
    batch = image[None].astype(np.float32)
    probs = predictor.predict_probabilities(batch)
    assert len(seen) == 2
    np.testing.assert_array_equal(seen[1], seen[0][:, :, ::-1])  # the model saw the mirror
    plain = _lopsided(batch)
    soft = np.exp(plain) / np.exp(plain).sum(-1, keepdims=True)
    mirrored = _lopsided(batch[:, :, ::-1])
    soft_m = (np.exp(mirrored) / np.exp(mirrored).sum(-1, keepdims=True))[:, :, ::-1]
    np.testing.assert_allclose(probs, (soft + soft_m) / 2, rtol=1e-5)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    # The left lean cancels: category 3 is gone, the content decides on both sides.
    mask = predictor.predict(image)
    expected = np.where(image[..., 0] > 128, 1, 2)
    np.testing.assert_array_equal(mask, expected)
    predictor.tta = "none"
    assert (predictor.predict(image) == 3).any()  # without TTA the lean shows


def test_tta_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="tta 'vflip' is not one of none, hflip"):
        Predictor(_lopsided, name="x", runtime="keras", input_size=SIZE, tta="vflip")
    predictor = Predictor(_lopsided, name="x", runtime="keras", input_size=SIZE)
    with pytest.raises(ValueError, match="tta"):
        predictor.tta = "flip"
    assert predictor.tta == "none" and "tta" not in repr(predictor)
    for bad in ((), (0.0,), (1.0, -1.5), (float("inf"),), (float("nan"),)):
        with pytest.raises(ValueError, match="tta scales must be positive"):
            predictor.scales = bad
    assert predictor.scales == TTA_SCALES
    predictor.tta = "hflip_scales"
    assert f"scales={TTA_SCALES}" in repr(predictor)


@pytest.mark.parametrize(
    ("length", "window", "starts"),
    [(16, 16, [0]), (10, 16, [0]), (24, 16, [0, 8]), (48, 32, [0, 16]), (720, 480, [0, 240]),
     (100, 16, [0, 10, 21, 32, 42, 52, 63, 74, 84])],
)  # fmt: skip
def test_windows_cover_the_length_with_a_third_overlap(length, window, starts) -> None:
    from cityseg.inference.runtime import _windows

    got = _windows(length, window)
    assert got == starts
    assert got[0] == 0 and got[-1] + window >= length and got[-1] + window <= max(length, window)
    assert all(b - a <= window * 2 / 3 + 1 for a, b in itertools.pairwise(got))  # rounded


def test_scales_tta_tiles_the_zoomed_frame_at_the_model_input() -> None:
    """At 1.5x a 32x16 input becomes 48x24, seen as four overlapping 32x16 tiles."""
    import cv2

    seen, spy = _spy()
    predictor = Predictor(spy, name="spy", runtime="keras", input_size=SIZE, tta="scales")
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (2, SIZE[1], SIZE[0], 3)).astype(np.float32)
    probs = predictor.predict_probabilities(batch)
    assert probs.shape == (2, SIZE[1], SIZE[0], NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    # scale 1, then the 2 x 4 tiles, never more at once than the batch the caller gave
    assert [b.shape for b in seen] == [(2, 16, 32, 3)] * 5
    np.testing.assert_array_equal(seen[0], batch)
    tiles = np.concatenate(seen[1:])
    zoomed = cv2.resize(batch[1], (48, 24), interpolation=cv2.INTER_LINEAR)
    for k, (y, x) in enumerate([(0, 0), (0, 16), (8, 0), (8, 16)]):
        np.testing.assert_allclose(tiles[4 + k], zoomed[y : y + 16, x : x + 32], atol=1e-4)


@pytest.mark.parametrize(
    ("mode", "scales", "passes"),
    [("none", TTA_SCALES, 1), ("hflip", TTA_SCALES, 2), ("scales", (1.0, 1.5), 5),
     ("hflip_scales", (1.0, 1.5), 10), ("scales", (0.5, 1.0, 2.0), 11)],
)  # fmt: skip
def test_passes_per_frame_counts_what_the_model_sees(mode, scales, passes) -> None:
    seen, spy = _spy()
    predictor = Predictor(spy, name="s", runtime="keras", input_size=SIZE, tta=mode, scales=scales)
    assert predictor.passes_per_frame() == passes
    predictor.predict(np.zeros((SIZE[1], SIZE[0], 3), np.uint8))
    assert sum(len(b) for b in seen) == passes  # one frame: every model input it cost


def test_scales_tta_agrees_with_the_plain_model_where_views_agree() -> None:
    """A frame of one colour looks the same at any zoom: every mode gives the plain softmax."""

    def pixelwise(batch: np.ndarray) -> np.ndarray:  # depends on the colour only
        logits = np.zeros((*batch.shape[:3], NUM_CLASSES), np.float32)
        logits[..., 5] = batch[..., 2] / 64.0
        logits[..., 2] = batch[..., 0] / 64.0
        return logits

    batch = np.full((1, SIZE[1], SIZE[0], 3), (200, 10, 90), np.float32)
    plain = Predictor(pixelwise, name="p", runtime="keras", input_size=SIZE)
    expected = plain.predict_probabilities(batch)
    for mode in ("scales", "hflip_scales"):
        for scales in ((1.0, 1.5), (0.5, 1.0, 2.0), (0.75,)):
            zoomed = Predictor(
                pixelwise, name="p", runtime="keras", input_size=SIZE, tta=mode, scales=scales
            )
            np.testing.assert_allclose(zoomed.predict_probabilities(batch), expected, rtol=1e-5)


def test_scales_tta_below_one_pads_like_the_letterbox() -> None:
    """At 0.5x the model sees the shrunk frame top-left on a zero canvas; only that is kept."""

    def red(batch: np.ndarray) -> np.ndarray:
        logits = np.zeros((*batch.shape[:3], NUM_CLASSES), np.float32)
        logits[..., 1] = (batch[..., 0] > 128) * 2.0  # red
        logits[..., 2] = (batch[..., 0] <= 128) * 2.0  # the zero padding, if it leaked
        return logits

    seen, spy = _spy(red)
    predictor = Predictor(
        spy, name="s", runtime="keras", input_size=SIZE, tta="scales", scales=(0.5,)
    )
    batch = np.full((1, SIZE[1], SIZE[0], 3), 255, np.float32)
    probs = predictor.predict_probabilities(batch)
    assert len(seen) == 1
    assert (seen[0][0, :8, :16] == 255).all() and (seen[0][0, 8:] == 0).all()
    assert (seen[0][0, :, 16:] == 0).all()
    assert (probs.argmax(-1) == 1).all()  # only the kept corner, all red, counts


def _soft(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def test_ensemble_averages_the_members_softmax(predictor: Predictor) -> None:
    seen, spy = _spy()
    lopsided = Predictor(spy, name="lopsided", runtime="onnx", input_size=SIZE)
    ensemble = Predictor.ensemble([predictor, lopsided])
    assert ensemble.name == "palette_run+lopsided" and ensemble.runtime == "mixed"
    assert ensemble.input_size == SIZE and ensemble.metrics == {}
    assert ensemble.meta["members"] == [str(predictor.source), "lopsided"]
    batch = colorize(_blocks(SIZE[1], SIZE[0], seed=3))[None].astype(np.float32)
    mean = (_soft(predictor.predict_logits(batch)) + _soft(_lopsided(batch))) / 2
    # Its logits are the log of the mean softmax: the softmax gives the mean back exactly.
    np.testing.assert_allclose(ensemble.predict_probabilities(batch), mean, rtol=1e-4, atol=1e-6)
    mask = ensemble.predict(batch[0].astype(np.uint8))
    np.testing.assert_array_equal(mask, mean[0].argmax(-1))
    # Each member sees each batch once, and TTA views go through all of them alike.
    assert len(seen) == 2
    ensemble.tta = "hflip"
    flipped = ensemble.predict_probabilities(batch)
    mirrored = (
        _soft(predictor.predict_logits(batch[:, :, ::-1])) + _soft(_lopsided(batch[:, :, ::-1]))
    ) / 2
    np.testing.assert_allclose(flipped, (mean + mirrored[:, :, ::-1]) / 2, rtol=1e-4, atol=1e-6)


def test_ensemble_of_one_model_equals_the_model(predictor: Predictor) -> None:
    twice = Predictor.ensemble([predictor, predictor])
    for seed in range(3):
        image = colorize(_blocks(48, 64, seed=seed))
        np.testing.assert_array_equal(twice.predict(image), predictor.predict(image))


def test_ensemble_members_are_checked(predictor: Predictor) -> None:
    with pytest.raises(ValueError, match="at least 2 models, got 1"):
        Predictor.ensemble([predictor])
    other = Predictor(_lopsided, name="wide", runtime="keras", input_size=(64, 16))
    with pytest.raises(ValueError, match=r"differ in aspect ratio .*wide: \(64, 16\)"):
        Predictor.ensemble([predictor, other])
    # 3 % off the lead's aspect is already a squash: refused too
    near = Predictor(_lopsided, name="near", runtime="keras", input_size=(64, 31))
    with pytest.raises(ValueError, match=r"differ in aspect ratio .*near: \(64, 31\)"):
        Predictor.ensemble([predictor, near])


def test_ensemble_of_two_sizes_mixes_at_the_larger(predictor: Predictor) -> None:
    """Members of one aspect but two sizes: the frame is letterboxed once at the larger size,
    the smaller member sees it shrunk and its softmax is enlarged back before the mean."""
    import cv2

    seen, spy = _spy()
    large = Predictor(spy, name="large", runtime="keras", input_size=(64, 32))
    ensemble = Predictor.ensemble([predictor, large])  # the palette model is 32x16
    assert ensemble.input_size == (64, 32)
    batch = colorize(_blocks(32, 64, seed=4))[None].astype(np.float32)
    probs = ensemble.predict_probabilities(batch)
    assert [b.shape for b in seen] == [(1, 32, 64, 3)]  # the large member: the frame as it is
    small = cv2.resize(batch[0], SIZE, interpolation=cv2.INTER_AREA)[None]
    enlarged = cv2.resize(_soft(predictor.predict_logits(small))[0], (64, 32))[None]
    np.testing.assert_allclose(probs, (enlarged + _soft(_lopsided(batch))) / 2, atol=1e-5)
    # The same model at two sizes finds the frame's categories wherever the small one can
    # still see them: 16-pixel blocks, 5 pixels wide in its letterbox (only edges may move).
    twice = Predictor.ensemble([predictor, _palette_at((64, 32))])
    for seed in range(3):
        truth = np.kron(_blocks(24, 32, seed=seed), np.ones((2, 2), np.uint8))
        mask = twice.predict(colorize(truth))
        assert mask.shape == truth.shape == (48, 64)
        assert (mask == truth).mean() >= 0.9, (mask == truth).mean()


def _palette_at(size: tuple[int, int]) -> Predictor:
    from cityseg.inference.runtime import KerasBackend

    return Predictor(KerasBackend(palette_model(size)), name="p", runtime="keras", input_size=size)


def test_keras_backend_outside_tensorflow_calls_the_compiled_predict(monkeypatch) -> None:
    """Under KERAS_BACKEND=jax or torch there is no `tf.function`: `predict_on_batch` instead."""
    import keras

    from cityseg.inference.runtime import KerasBackend

    model = palette_model()
    batch = colorize(_blocks(SIZE[1], SIZE[0]))[None].astype(np.float32)
    expected = KerasBackend(model)(batch)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    other = KerasBackend(model)
    assert other._call == model.predict_on_batch
    np.testing.assert_allclose(other(batch), expected, rtol=1e-5, atol=1e-3)


def test_predict_logits_rejects_wrong_size(predictor: Predictor) -> None:
    with pytest.raises(ValueError, match="does not match"):
        predictor.predict_logits(np.zeros((1, 8, 8, 3), np.float32))


def test_predict_rejects_non_rgb(predictor: Predictor) -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        predictor.predict(np.zeros((16, 32), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        predictor.predict(np.zeros((16, 32, 3), np.float32))


def test_unknown_format_names_file(tmp_path: Path) -> None:
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"x")
    with pytest.raises(RuntimeLoadError, match=r"model\.pt"):
        Predictor.load(bad)


def test_missing_path_and_empty_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        Predictor.load(tmp_path / "nope")
    with pytest.raises(RuntimeLoadError, match=r"no model\.keras"):
        Predictor.load(tmp_path)
    with pytest.raises(RuntimeLoadError, match=r"no \.onnx export"):
        Predictor.load(tmp_path, runtime="onnx")
    with pytest.raises(ValueError, match="runtime"):
        Predictor.load(tmp_path, runtime="tensorrt")


def test_corrupt_exports_name_file(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"not a flatbuffer")
    with pytest.raises(RuntimeLoadError, match=r"m\.tflite\.json"):
        Predictor.load(model)  # no sidecar
    sidecar_path(model).write_text(json.dumps({"input_size": [32, 16]}))
    with pytest.raises(RuntimeLoadError, match=r"m\.tflite"):
        Predictor.load(model)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"junk")
    sidecar_path(onnx).write_text("{broken")
    with pytest.raises(RuntimeLoadError, match=r"m\.onnx\.json"):
        Predictor.load(onnx)


def test_wrong_runtime_for_file(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    with pytest.raises(RuntimeLoadError, match="cannot run on 'litert'"):
        Predictor.load(model, runtime="litert")


def test_meets_parity_bars() -> None:
    assert meets_parity({"quantize": "none", "parity": {"pixel_agreement": 0.9995}})
    assert not meets_parity({"quantize": "none", "parity": {"pixel_agreement": 0.99}})
    assert meets_parity(
        {"quantize": "fp16", "parity": {"pixel_agreement": 0.9, "miou_delta": 0.0005}}
    )
    assert not meets_parity(
        {"quantize": "int8", "parity": {"pixel_agreement": 1, "miou_delta": 0.02}}
    )
    assert not meets_parity({"quantize": "none"})


def test_best_runtime_picks_fastest_passing(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    records = {
        "a.onnx": {"quantize": "none", "parity": {"pixel_agreement": 1.0}, "latency_ms": 9.0},
        "b.tflite": {
            "quantize": "int8",
            "parity": {"pixel_agreement": 0.9, "miou_delta": 0.05},
            "latency_ms": 2.0,
        },
        "c.tflite": {
            "quantize": "fp16",
            "parity": {"pixel_agreement": 0.99, "miou_delta": 0.0},
            "latency_ms": 5.0,
        },
    }
    for name, meta in records.items():
        (export / name).write_bytes(b"")
        sidecar_path(export / name).write_text(json.dumps({"input_size": [32, 16], **meta}))
    assert best_runtime(tmp_path) == export / "c.tflite"  # b is faster but fails parity
    assert best_runtime(tmp_path / "elsewhere") == tmp_path / "elsewhere"
