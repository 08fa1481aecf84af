"""Export to LiteRT / ONNX: measured parity against Keras, sidecars, clear failures."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import blocky
import numpy as np
import pytest

from cityseg.data.labels import CATEGORIES, IGNORE_INDEX, NUM_CLASSES, PALETTE
from cityseg.evaluation.metrics import confusion_matrix as confusion
from cityseg.evaluation.metrics import eval_category_miou as miou
from cityseg.inference.export import ExportError, ParityImage, export
from cityseg.inference.runtime import Predictor, best_runtime, meets_parity, sidecar_path

SIZE = (48, 24)  # (width, height), 2:1 like Cityscapes


def scene(
    rng: np.random.Generator, height: int = 24, width: int = 48
) -> tuple[np.ndarray, np.ndarray]:
    """A blocky scene: categories in 6x6 blocks, coloured by palette plus noise."""
    return blocky.scene(rng, height, width, block=6)


def tiny_segmenter(size: tuple[int, int] = SIZE):
    """A small encoder-decoder with its normalisation inside, like the zoo's models."""
    import keras

    inputs = keras.Input((size[1], size[0], 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    a = keras.layers.Conv2D(12, 3, padding="same")(x)
    a = keras.layers.BatchNormalization(momentum=0.9)(a)  # settles within the few steps
    a = keras.layers.ReLU()(a)
    b = keras.layers.MaxPooling2D()(a)
    b = keras.layers.SeparableConv2D(16, 3, padding="same", activation="relu")(b)
    u = keras.layers.UpSampling2D(interpolation="bilinear")(b)
    c = keras.layers.Concatenate()([u, a])
    outputs = keras.layers.Conv2D(NUM_CLASSES, 1)(c)
    return keras.Model(inputs, outputs, name="tiny_segmenter")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A run folder with a tiny model trained for a few hundred steps on blocky scenes."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    pairs = [scene(rng) for _ in range(64)]
    x = np.stack([p[0] for p in pairs]).astype(np.float32)
    y = np.stack([p[1] for p in pairs])
    model = tiny_segmenter()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, batch_size=16, epochs=25, verbose=0)
    run = tmp_path_factory.mktemp("runs") / "tiny_run"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "metrics.json").write_text(json.dumps({"name": "tiny_run", "model": "tiny_segmenter"}))
    return run


@pytest.fixture(scope="module")
def calibration() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [scene(rng)[0] for _ in range(24)]


@pytest.fixture(scope="module")
def parity() -> list[ParityImage]:
    """Held-out scenes, some at a different size and aspect (letterboxed on the way in)."""
    rng = np.random.default_rng(2)
    items = []
    for i in range(6):
        height, width = ((24, 48), (48, 96), (36, 36))[i % 3]
        image, cats = scene(rng, height, width)
        truth = cats.copy()
        truth[cats == 0] = IGNORE_INDEX  # void is not scored, as in the official view
        items.append(ParityImage(image, truth, name=f"test:{i}"))
    return items


def test_trained_model_learned_the_task(trained_run: Path, parity: list[ParityImage]) -> None:
    # The parity numbers below mean something only if the model is not a coin toss.
    predictor = Predictor.load(trained_run)
    cm = sum(confusion(p.truth, predictor.predict(p.image)) for p in parity)
    assert miou(cm) > 0.7, miou(cm)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["litert", "onnx"])
def test_float_export_agrees_with_keras(trained_run, calibration, parity, fmt) -> None:
    out = export(trained_run, fmt, "none", parity=parity, latency_runs=3)
    assert (
        out.parent == trained_run / "export"
        and out.suffix == {"litert": ".tflite", "onnx": ".onnx"}[fmt]
    )
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["parity"]["pixel_agreement"] >= 0.999, meta["parity"]
    assert abs(meta["parity"]["miou_delta"]) <= 0.001
    assert meta["input_size"] == list(SIZE)
    assert meta["categories"] == list(CATEGORIES)
    assert meta["palette"] == PALETTE.tolist()
    assert meta["quantize"] == "none" and meta["format"] == fmt
    assert meta["latency_ms"] > 0

    exported = Predictor.load(out)
    keras_predictor = Predictor.load(trained_run)
    assert exported.runtime == fmt and exported.input_size == SIZE
    batch = np.stack(
        [np.asarray(p.image, np.float32) for p in parity if p.image.shape == (24, 48, 3)]
    )
    np.testing.assert_allclose(
        exported.predict_logits(batch), keras_predictor.predict_logits(batch), atol=1e-3, rtol=1e-3
    )
    # The run folder + runtime name finds the export too.
    assert Predictor.load(trained_run, runtime=fmt).source == out


@pytest.mark.slow
def test_fp16_loses_at_most_a_tenth_of_a_point(trained_run, parity) -> None:
    out = export(trained_run, "litert", "fp16", parity=parity, latency_runs=3)
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["parity"]["miou_delta"] <= 0.001, meta["parity"]
    assert meta["input"]["dtype"] == "float32"
    from ai_edge_litert.interpreter import Interpreter

    # The weights are stored as float16 (dequantised on load), not left at float32.
    dtypes = {d["dtype"] for d in Interpreter(model_path=str(out)).get_tensor_details()}
    assert np.float16 in dtypes


def _independent_parity(run: Path, exported_file: Path, parity: list[ParityImage]) -> dict:
    """Parity recomputed here, from both runtimes' masks, with IoU written out by hand."""
    keras_predictor, exported = Predictor.load(run), Predictor.load(exported_file)
    agree = total = 0
    inter = {"keras": np.zeros(NUM_CLASSES), "export": np.zeros(NUM_CLASSES)}
    union = {"keras": np.zeros(NUM_CLASSES), "export": np.zeros(NUM_CLASSES)}
    for item in parity:
        masks = {
            "keras": keras_predictor.predict(item.image),
            "export": exported.predict(item.image),
        }
        agree += int((masks["keras"] == masks["export"]).sum())
        total += item.truth.size
        scored = item.truth != IGNORE_INDEX
        for name, mask in masks.items():
            for c in range(1, NUM_CLASSES):  # the 7 official categories, void excluded
                t, p = (item.truth == c) & scored, (mask == c) & scored
                inter[name][c] += (t & p).sum()
                union[name][c] += (t | p).sum()
    miou = {
        name: float(
            np.mean([inter[name][c] / union[name][c] for c in range(1, 8) if union[name][c]])
        )
        for name in inter
    }
    return {
        "pixel_agreement": agree / total,
        "miou_keras": miou["keras"],
        "miou_export": miou["export"],
    }


@pytest.mark.slow
def test_int8_loses_at_most_one_point(trained_run, calibration, parity) -> None:
    out = export(
        trained_run, "litert", "int8", calibration=calibration, parity=parity, latency_runs=3
    )
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["parity"]["miou_delta"] <= 0.01, meta["parity"]
    assert meta["input"]["dtype"] == "float32"  # float in/out unless --int8-io
    assert meta["float_ops"] == ["CONV_2D"]  # only the classifier: argmax over float logits
    # The recorded parity is the export's against Keras, not Keras against itself: it equals
    # an independent measurement, and int8 really does move some pixels.
    mine = _independent_parity(trained_run, out, parity)
    recorded = meta["parity"]
    assert recorded["pixel_agreement"] == pytest.approx(mine["pixel_agreement"], abs=1e-12)
    assert recorded["pixel_agreement"] < 1.0
    assert recorded["miou_keras"] == pytest.approx(mine["miou_keras"], abs=1e-9)
    assert recorded["miou_export"] == pytest.approx(mine["miou_export"], abs=1e-9)
    # The sign: the mIoU LOST by the export, Keras minus export.
    assert recorded["miou_delta"] == pytest.approx(mine["miou_keras"] - mine["miou_export"])


@pytest.mark.slow
def test_int8_io_records_scale_and_zero_point(trained_run, calibration, parity) -> None:
    out = export(
        trained_run,
        "litert",
        "int8",
        int8_io=True,
        calibration=calibration,
        parity=parity,
        latency_runs=3,
    )
    meta = json.loads(sidecar_path(out).read_text())
    assert out.name.endswith("int8_io.tflite")
    assert meta["input"]["dtype"] == "int8"
    assert meta["input"]["scale"] > 0 and -128 <= meta["input"]["zero_point"] <= 127
    assert meta["input"]["output_dtype"] == "int8"
    assert meta["float_ops"] == []  # int8 out means int8 logits: nothing stays float
    assert meta["parity"]["miou_delta"] <= 0.01, meta["parity"]
    # The Predictor quantises the raw image with the recorded scale and zero-point.
    image = parity[0].image
    np.testing.assert_array_equal(Predictor.load(out).predict(image).shape, image.shape[:2])


@pytest.mark.slow
def test_best_runtime_reads_recorded_parity(trained_run, parity) -> None:
    export(trained_run, "onnx", "none", parity=parity, latency_runs=3)
    best = best_runtime(trained_run)
    assert best.suffix in (".onnx", ".tflite")
    meta = json.loads(sidecar_path(best).read_text())
    # The chosen export meets its own precision's bar, measured here independently of the sidecar.
    mine = _independent_parity(trained_run, best, parity)
    if meta["quantize"] == "none":
        assert mine["pixel_agreement"] >= 0.999, mine
    else:
        limit = {"fp16": 0.001, "int8": 0.01}[meta["quantize"]]
        assert mine["miou_keras"] - mine["miou_export"] <= limit, mine
    # ... and no export that is faster on record was passed over.
    for other in (trained_run / "export").glob("*.json"):
        record = json.loads(other.read_text())
        if record.get("latency_ms") is not None and record["latency_ms"] < meta["latency_ms"]:
            assert not meets_parity(record), other.name


@pytest.mark.slow
def test_service_serves_the_fastest_passing_export(trained_run, parity) -> None:
    from fastapi.testclient import TestClient

    from cityseg.service.app import create_app, serving_path
    from cityseg.service.settings import Settings

    export(trained_run, "onnx", "none", parity=parity, latency_runs=3)
    best = best_runtime(trained_run)
    assert serving_path(trained_run, "auto") == best != trained_run
    assert serving_path(trained_run, "keras") == trained_run
    for runtime, expected in (("auto", _EXTENSION_RUNTIME[best.suffix]), ("keras", "keras")):
        app = create_app(Settings(run=trained_run, runtime=runtime))
        with TestClient(app) as client:
            for _ in range(600):  # the model loads and warms up in the background
                if client.get("/health").status_code == 200:
                    break
                time.sleep(0.1)
            assert client.get("/v1/model").json()["runtime"] == expected


_EXTENSION_RUNTIME = {".onnx": "onnx", ".tflite": "litert"}


def _bessel_model():
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="cityseg_test")
    class Bessel(keras.layers.Layer):
        """A layer whose op (BesselI0e) has neither a LiteRT builtin nor an ONNX equivalent."""

        def call(self, x):
            return tf.math.bessel_i0e(x)

    inputs = keras.Input((SIZE[1], SIZE[0], 3))
    outputs = keras.layers.Conv2D(NUM_CLASSES, 1)(Bessel(name="odd_layer")(inputs))
    return keras.Model(inputs, outputs, name="odd")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["litert", "onnx"])
def test_unsupported_op_is_named(tmp_path: Path, parity, fmt) -> None:
    run = tmp_path / "odd_run"
    run.mkdir()
    _bessel_model().save(run / "model.keras")
    with pytest.raises(ExportError, match="BesselI0e") as info:
        export(run, fmt, "none", parity=parity, latency_runs=0)
    if fmt == "litert":
        assert "odd_layer" in str(info.value)


def test_bad_options_are_named(trained_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="--format"):
        export(trained_run, "coreml")
    with pytest.raises(ExportError, match="--quantize"):
        export(trained_run, "litert", "int4")
    with pytest.raises(ExportError, match="float32 only"):
        export(trained_run, "onnx", "int8")
    with pytest.raises(ExportError, match="--int8-io"):
        export(trained_run, "litert", "fp16", int8_io=True)
    with pytest.raises(ExportError, match=r"no model\.keras"):
        export(tmp_path, "litert")


def test_miou_ignores_void_and_unscored() -> None:
    truth = np.array([[1, 1, 255, 0]], np.uint8)
    pred = np.array([[1, 2, 3, 0]], np.uint8)
    cm = confusion(truth, pred)
    assert cm.sum() == 3  # the ignored pixel is not counted
    # flat: tp 1, union 2 -> 0.5; construction: tp 0, union 1 -> 0; void is not a category.
    assert miou(cm) == pytest.approx(0.25)


# ----------------------------------------------------------------------------- model zoo


def _zoo_params() -> list[Any]:
    """Every registered model; the pretrained-encoder ones take ~30 s each to convert, so they
    run when CITYSEG_EXPORT_ZOO=1 (unet_mini always runs)."""
    import os

    from cityseg.models.registry import list_models

    full = os.environ.get("CITYSEG_EXPORT_ZOO") == "1"
    skip = pytest.mark.skipif(not full, reason="set CITYSEG_EXPORT_ZOO=1 to export the whole zoo")
    return [
        pytest.param(name, marks=[pytest.mark.slow] + ([] if name == "unet_mini" else [skip]))
        for name in list_models()
    ]


@pytest.mark.parametrize("name", _zoo_params())
def test_every_registered_model_exports_to_both_formats(name: str, tmp_path: Path) -> None:
    from cityseg.models.registry import create_model, get_spec

    side = max(get_spec(name).divisor, 32)
    size = (2 * side, side)
    run = tmp_path / name
    run.mkdir()
    model = create_model(name, input_size=size)
    model.save(run / "model.keras")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(2)]
    keras_predictor = Predictor.load(run)
    batch = np.stack(images).astype(np.float32)
    reference = keras_predictor.predict_logits(batch)
    for fmt in ("litert", "onnx"):
        out = export(run, fmt, "none", parity=[ParityImage(i) for i in images], latency_runs=0)
        logits = Predictor.load(out).predict_logits(batch)
        spread = float(np.abs(reference).max()) + 1e-6
        assert np.abs(logits - reference).max() / spread < 1e-3, (name, fmt)
        meta = json.loads(sidecar_path(out).read_text())
        assert meta["parity"]["pixel_agreement"] >= 0.99, (name, fmt, meta["parity"])


# ----------------------------------------------------------------------------- CLI, real split


@pytest.mark.slow
def test_cli_export_reads_calibration_and_parity_from_the_run_split(
    synth_root: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from cityseg.cli import app
    from cityseg.data.split import make_split
    from cityseg.training.config import from_dict

    manifest = make_split(synth_root, seed=0).save(tmp_path / "split.json")
    run = tmp_path / "runs" / "cli_run"
    run.mkdir(parents=True)
    config = from_dict(
        {
            "name": "cli_run",
            "data": {"root": str(synth_root), "manifest": str(manifest), "size": "48x24"},
        }
    )
    config.save(run / "config.yaml")
    tiny_segmenter().save(run / "model.keras")

    args = ["export", "--run", str(run), "--quantize", "int8"]
    result = CliRunner().invoke(app, [*args, "--calibration-images", "4", "--parity-images", "3"])
    assert result.exit_code == 0, result.output
    assert "pixel agreement" in result.output
    meta = json.loads((run / "export" / "cli_run_48x24_int8.tflite.json").read_text())
    assert meta["parity"]["images"] == 3 and meta["parity"]["sources"] == ["test"]
    assert meta["parity"]["scored_images"] == 3  # synth test frames carry labels: mIoU measured
    assert meta["source_run"] == str(run)

    missing = CliRunner().invoke(app, ["export", "--run", str(tmp_path / "nope")])
    assert missing.exit_code == 1
    assert "nope" in missing.output


@pytest.mark.slow
def test_int8_without_float_logits_is_int8_throughout(trained_run, calibration) -> None:
    from cityseg.inference.export import float_ops, to_litert

    model = Predictor.load(trained_run).backend.model
    for float_logits, expected in ((False, []), (True, ["CONV_2D"])):
        path = trained_run / f"whole_int8_{float_logits}.tflite"
        path.write_bytes(
            to_litert(model, SIZE, "int8", calibration=calibration, float_logits=float_logits)
        )
        assert float_ops(path) == expected


def test_calibration_and_parity_frames_are_spread_over_the_split() -> None:
    from cityseg.inference.export import spread_evenly

    assert spread_evenly(list(range(10)), 4) == [0, 3, 6, 9]
    assert spread_evenly(list(range(10)), 1) == [0]
    assert spread_evenly(list(range(3)), 5) == [0, 1, 2]
    assert spread_evenly([], 5) == []
