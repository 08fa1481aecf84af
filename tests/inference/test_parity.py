"""Parity numbers and bars: checked by hand, at the boundary, with the sign of the loss pinned."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cityseg.data.labels import IGNORE_INDEX, NUM_CLASSES
from cityseg.inference.export import ExportError, measure_parity
from cityseg.inference.parity import PARITY_BARS, ParityImage, meets_parity, parity_from_masks
from cityseg.inference.runtime import Predictor, best_runtime

ABOVE, BELOW = math.inf, -math.inf


def _meta(quantize: str, agreement: float = 1.0, delta: float | None = None) -> dict:
    parity: dict = {"pixel_agreement": agreement}
    if delta is not None:
        parity["miou_delta"] = delta
    return {"quantize": quantize, "parity": parity}


def test_bars_are_the_documented_ones() -> None:
    assert PARITY_BARS == {
        "none": ("pixel_agreement", 0.999),
        "fp16": ("miou_delta", 0.001),
        "int8": ("miou_delta", 0.01),
    }


def test_float_export_bar_on_pixel_agreement_at_the_boundary() -> None:
    assert meets_parity(_meta("none", 0.999))
    assert not meets_parity(_meta("none", float(np.nextafter(0.999, BELOW))))
    assert meets_parity(_meta("none", 1.0))
    # A float export is judged on agreement alone, whatever its mIoU delta says.
    assert not meets_parity(_meta("none", 0.99, delta=-0.5))
    assert meets_parity({"parity": {"pixel_agreement": 0.9995}})  # quantize defaults to none


@pytest.mark.parametrize(("quantize", "limit"), [("fp16", 0.001), ("int8", 0.01)])
def test_quantised_bar_on_miou_lost_at_the_boundary(quantize: str, limit: float) -> None:
    assert meets_parity(_meta(quantize, 0.5, delta=limit))
    assert not meets_parity(_meta(quantize, 0.5, delta=float(np.nextafter(limit, ABOVE))))
    assert not meets_parity(_meta(quantize, 1.0, delta=2 * limit))
    # miou_delta is the mIoU LOST: an export that scores better than Keras passes.
    assert meets_parity(_meta(quantize, 0.5, delta=-0.2))
    assert meets_parity(_meta(quantize, 0.5, delta=0.0))


def test_missing_records_never_pass() -> None:
    assert not meets_parity({"quantize": "none"})
    assert not meets_parity({"quantize": "none", "parity": None})
    assert not meets_parity({"quantize": "int8", "parity": {"pixel_agreement": 1.0}})  # no delta
    assert not meets_parity({"quantize": "fp16", "parity": {"miou_delta": 0.0}})  # no agreement
    assert not meets_parity(_meta("int8", 1.0, delta=None))
    assert not meets_parity({**_meta("int4", 1.0, delta=0.0)})  # no bar for an unknown precision
    assert not meets_parity(
        {"quantize": "int8", "parity": {"pixel_agreement": 1.0, "miou_delta": None}}
    )


def test_parity_from_masks_by_hand() -> None:
    # Two images. Truth (eval view): flat=1, construction=2, ignored=255.
    truth_a = np.array([[1, 1, 2, 2]], np.uint8)
    keras_a = np.array([[1, 1, 2, 2]], np.uint8)  # perfect
    export_a = np.array([[1, 2, 2, 2]], np.uint8)  # one flat pixel called construction
    truth_b = np.array([[1, IGNORE_INDEX]], np.uint8)
    keras_b = np.array([[1, 5]], np.uint8)
    export_b = np.array([[1, 7]], np.uint8)  # disagrees on an ignored pixel: agreement only
    keras_c = np.array([[2, 2]], np.uint8)  # Keras wrong here: its mIoU needs every image
    truth_c = np.array([[2, 1]], np.uint8)
    record = parity_from_masks(
        [
            (keras_a, export_a, truth_a, "test:a"),
            (keras_b, export_b, truth_b, "test:b"),
            (keras_b, keras_b, None, "val:c"),  # unlabelled: agreement only
            (keras_c, keras_c, truth_c, "test:d"),  # both wrong alike
        ]
    )
    assert record["images"] == 4 and record["scored_images"] == 3
    assert record["sources"] == ["test", "val"]
    assert record["pixel_agreement"] == pytest.approx(8 / 10)  # 3/4 + 1/2 + 2/2 + 2/2 pixels
    # One matrix over the 3 labelled images. Keras: flat tp 3, fn 1 -> 3/4; construction
    # tp 3, fp 1 -> 3/4. Export: flat tp 2, fn 2 -> 2/4; construction tp 3, fp 2 -> 3/5.
    # Only categories present count (1 and 2).
    assert record["miou_keras"] == pytest.approx(3 / 4)
    assert record["miou_export"] == pytest.approx((2 / 4 + 3 / 5) / 2)
    assert record["miou_delta"] == pytest.approx(3 / 4 - 0.55)  # positive: the export LOST
    assert record["miou_delta"] == pytest.approx(record["miou_keras"] - record["miou_export"])


def test_parity_pools_pixels_over_images_not_an_average_of_ratios() -> None:
    big = np.zeros((1, 9), np.uint8)
    small = np.zeros((1, 1), np.uint8)
    record = parity_from_masks([(big, big, None, ""), (small, small + 1, None, "")])
    assert record["pixel_agreement"] == pytest.approx(9 / 10)  # not (1 + 0) / 2
    assert "miou_delta" not in record and record["sources"] == []


def test_parity_from_masks_rejects_nothing_and_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"^parity check needs at least one image$"):
        parity_from_masks([])
    a = np.zeros((2, 2), np.uint8)
    with pytest.raises(ValueError, match=r"^test:7: mask shapes \(2, 2\) != \(1, 2\)$"):
        parity_from_masks([(a, a[:1], None, "test:7")])
    with pytest.raises(ValueError, match=r"^parity image: mask shapes"):
        parity_from_masks([(a, a[:1], None, "")])


def _one_hot_backend(classes_of):
    """A back end whose argmax is `classes_of(batch)`: a model with a known answer."""

    def backend(batch: np.ndarray) -> np.ndarray:
        classes = classes_of(batch)
        return np.eye(NUM_CLASSES, dtype=np.float32)[classes]

    return backend


def test_measure_parity_compares_the_export_with_keras_not_keras_with_itself() -> None:
    size = (8, 4)
    # Keras reads the category from the red channel; the "export" gets sky (5) wrong as sky's
    # neighbour in value, nature (4), on every pixel.
    keras_backend = _one_hot_backend(lambda b: b[..., 0].astype(np.int64))
    export_backend = _one_hot_backend(lambda b: np.where(b[..., 0] == 5, 4, b[..., 0]).astype(int))
    keras_p = Predictor(keras_backend, name="k", runtime="keras", input_size=size)
    export_p = Predictor(export_backend, name="e", runtime="onnx", input_size=size)
    cats = np.array([[1, 1, 5, 5, 4, 4, 2, 2]] * 4, np.uint8)
    image = np.zeros((4, 8, 3), np.uint8)
    image[..., 0] = cats
    record = measure_parity(keras_p, export_p, [ParityImage(image, cats, "test:0")])
    assert record["pixel_agreement"] == pytest.approx(0.75)
    # Keras is perfect (4 categories, IoU 1). Export: sky 0, nature 8/16 = 0.5, others 1.
    assert record["miou_keras"] == pytest.approx(1.0)
    assert record["miou_export"] == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    assert record["miou_delta"] == pytest.approx(1 - 2.5 / 4)
    assert not meets_parity({"quantize": "int8", "parity": record})
    with pytest.raises(ExportError, match="at least one image"):
        measure_parity(keras_p, export_p, [])


def test_best_runtime_skips_a_faster_export_that_lost_too_much(tmp_path) -> None:
    import json

    from cityseg.inference.runtime import sidecar_path

    export = tmp_path / "export"
    export.mkdir()
    records = {
        "fp32.onnx": {**_meta("none", 0.999), "latency_ms": 9.0},
        "fp16.tflite": {**_meta("fp16", 0.99, delta=0.0011), "latency_ms": 5.0},  # just over
        "int8.tflite": {**_meta("int8", 0.98, delta=0.01), "latency_ms": 3.0},  # at the bar
        "unmeasured.tflite": {**_meta("int8", 1.0, delta=0.0)},  # no latency: not considered
    }
    for name, meta in records.items():
        (export / name).write_bytes(b"")
        sidecar_path(export / name).write_text(json.dumps({"input_size": [8, 4], **meta}))
    assert best_runtime(tmp_path) == export / "int8.tflite"
    records["int8.tflite"]["parity"]["miou_delta"] = 0.0101
    sidecar_path(export / "int8.tflite").write_text(
        json.dumps({"input_size": [8, 4], **records["int8.tflite"]})
    )
    assert best_runtime(tmp_path) == export / "fp32.onnx"
