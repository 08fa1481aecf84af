"""Export a trained run to LiteRT (float, fp16, int8) or ONNX, with a sidecar and measured parity.

The exported graph has a FIXED input of batch 1 at the run's input size and takes raw RGB
0..255 like the Keras model: the encoder's normalisation stays inside the graph. LiteRT is
restricted to builtin ops (no Flex / SELECT_TF_OPS), so the file runs on the bare LiteRT
interpreter of the embedded target; an op outside that set fails the export with its name.

Next to `<file>` the exporter writes `<file>.json`: input size and dtype (with the int8
scale / zero-point), categories and colours, source run, quantisation, the parity measured
against the Keras model on held-out images, and the latency measured on this machine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cityseg.common.sizes import format_size, parse_size
from cityseg.data.labels import CATEGORIES, NUM_CLASSES, PALETTE
from cityseg.data.resize import letterbox
from cityseg.inference.parity import ParityImage, parity_from_masks
from cityseg.inference.runtime import (
    KerasBackend,
    Predictor,
    cpu_cores,
    sidecar_path,
)

log = logging.getLogger(__name__)

FORMATS = ("litert", "onnx")
QUANTIZATIONS = ("none", "fp16", "int8")
ONNX_OPSET = 17
_SUFFIX = {"litert": ".tflite", "onnx": ".onnx"}


class ExportError(RuntimeError):
    """A model cannot be exported (unsupported op or layer, missing data, bad option)."""


# --------------------------------------------------------------------------- public API


def export(
    run_dir: str | Path,
    fmt: str = "litert",
    quantize: str = "none",
    size: tuple[int, int] | str | None = None,
    *,
    out: str | Path | None = None,
    int8_io: bool = False,
    calibration: Sequence[np.ndarray] | None = None,
    parity: Sequence[ParityImage] | None = None,
    data_root: str | Path | None = None,
    num_calibration: int = 100,
    num_parity: int = 50,
    latency_runs: int = 20,
) -> Path:
    """Export `run_dir/model.keras` to `fmt`, write the sidecar with measured parity, return the file.

    Calibration images (int8) default to `num_calibration` training images spread over the
    run's split, parity images to `num_parity` test images spread the same way; pass them
    explicitly (`calibration`, `parity`) to export without the dataset.
    """
    run_dir = Path(run_dir)
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if quantize not in QUANTIZATIONS:
        raise ExportError(f"--quantize {quantize!r} is not one of {', '.join(QUANTIZATIONS)}")
    if fmt == "onnx" and quantize != "none":
        raise ExportError("ONNX export is float32 only: use --format litert for fp16 / int8")
    if int8_io and quantize != "int8":
        raise ExportError("--int8-io needs --quantize int8")
    if not (run_dir / "model.keras").is_file():
        raise ExportError(f"{run_dir}: no model.keras in this run folder")

    keras_predictor = keras_predictor_at(run_dir, parse_size(size) if size is not None else None)
    model = keras_predictor.backend.model  # type: ignore[attr-defined]
    size = keras_predictor.input_size

    out = (
        Path(out)
        if out
        else default_export_path(run_dir, keras_predictor.name, fmt, quantize, size, int8_io)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if parity is None:
        parity = load_parity_images(run_dir, num_parity, data_root=data_root)

    started = time.perf_counter()
    if fmt == "litert":
        if quantize == "int8" and calibration is None:
            calibration = load_calibration_images(run_dir, num_calibration, data_root=data_root)
        out.write_bytes(to_litert(model, size, quantize, calibration=calibration, int8_io=int8_io))
    else:
        to_onnx(model, size, out)
    convert_s = time.perf_counter() - started
    log.info("exported %s in %.1f s (%.2f MB)", out, convert_s, out.stat().st_size / 1e6)

    meta = _sidecar(run_dir, keras_predictor, fmt, quantize, size, out, convert_s)
    sidecar_path(out).write_text(json.dumps(meta, indent=2))
    exported = Predictor.load(out)
    meta["input"] = _input_description(exported)
    if fmt == "litert" and quantize == "int8":
        meta["float_ops"] = float_ops(out)
    meta["parity"] = measure_parity(keras_predictor, exported, parity)
    meta["latency_ms"], meta["latency_threads"] = _latency_ms(exported, latency_runs), cpu_cores()
    sidecar_path(out).write_text(json.dumps(meta, indent=2))
    log.info("parity %s", meta["parity"])
    return out


def default_export_path(
    run_dir: Path, name: str, fmt: str, quantize: str, size: tuple[int, int], int8_io: bool = False
) -> Path:
    """`<run>/export/<name>_<WxH>_<precision>.<ext>`, where the runtime looks for exports."""
    precision = {"none": "fp32"}.get(quantize, quantize) + ("_io" if int8_io else "")
    return run_dir / "export" / f"{name}_{format_size(size)}_{precision}{_SUFFIX[fmt]}"


def to_litert(
    model: Any,
    size: tuple[int, int],
    quantize: str = "none",
    *,
    calibration: Sequence[np.ndarray] | None = None,
    int8_io: bool = False,
    float_logits: bool = True,
) -> bytes:
    """Convert a Keras model to a LiteRT flatbuffer at batch 1, builtin ops only.

    int8 keeps the logits tail in float unless `float_logits=False` or `int8_io`: the ops after
    the last feature map (the 1x1 classifiers, their sum and the upsampling, every op whose
    output has one channel per category) run on dequantised features. With int8 logits two
    categories whose logits round to the same step tie, and argmax then always picks the
    lower category id: a bias against the late ids (human, vehicle) that cost the CamVid
    Lite0 model half a point of mIoU (1.31 -> 0.78 lost, `scripts/int8_parity.py`), for a
    tail that is a small part of the compute.
    """
    import tensorflow as tf

    converter_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with tempfile.TemporaryDirectory() as saved_model:
        _write_saved_model(model, size, saved_model)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        float_tail: list[str] = []
        if quantize == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "int8":
            if not calibration:
                raise ExportError("int8 quantisation needs calibration images (none given)")
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = _representative(calibration, size)
            converter_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if int8_io:
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
            elif float_logits:
                float_tail = _logits_tail(saved_model, int(model.outputs[0].shape[-1]))
        converter.target_spec.supported_ops = converter_ops
        try:
            if not float_tail:
                return bytes(converter.convert())
            # Selective quantisation is offered through the quantisation debugger: the
            # denylisted tensors stay float, everything else is calibrated int8 as above.
            converter.target_spec.supported_ops = [*converter_ops, tf.lite.OpsSet.TFLITE_BUILTINS]
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                debug_dataset=converter.representative_dataset,
                debug_options=tf.lite.experimental.QuantizationDebugOptions(
                    denylisted_nodes=float_tail
                ),
            )
            return bytes(debugger.get_nondebug_quantized_model())
        except Exception as err:  # the converter raises ConverterError and friends
            raise ExportError(_litert_failure(model, err)) from err


def _logits_tail(saved_model: str, num_classes: int) -> list[str]:
    """Output tensor names of the graph's last ops whose outputs have `num_classes` channels.

    Read from a float conversion of the same SavedModel (a few seconds): its tensors carry the
    names the quantiser uses. The tail stops at the first op, walking back from the output,
    whose output has another channel count (the last feature map).
    """
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    tail: list[str] = []
    for _, outputs in reversed(_ops(Interpreter(model_content=converter.convert()))):
        if not outputs or any(
            len(t["shape"]) != 4 or t["shape"][-1] != num_classes for t in outputs
        ):
            break
        tail += [t["name"] for t in outputs]
    return tail


def _ops(interpreter: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    """A LiteRT interpreter's ops in execution order: (op name, its output tensors' details)."""
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    return [
        (op["op_name"], [tensors[i] for i in op["outputs"]])
        for op in interpreter._get_ops_details()
    ]


def to_onnx(model: Any, size: tuple[int, int], out: Path, opset: int = ONNX_OPSET) -> Path:
    """Convert a Keras model to ONNX (tf2onnx, opset >= 13) at batch 1; unsupported ops fail.

    The graph goes through the same SavedModel as the LiteRT export rather than
    `tf2onnx.convert.from_function`: the latter turns constants that a layer built eagerly
    (e.g. EfficientNet's Normalization mean/variance) into extra, unfed graph inputs.
    """
    import onnx
    import tf2onnx
    from tf2onnx import tf_loader

    with tempfile.TemporaryDirectory() as saved_model, _numpy2_shims():
        _write_saved_model(model, size, saved_model)
        try:
            graph_def, inputs, outputs = tf_loader.from_saved_model(
                saved_model, None, None, tag="serve", signatures=["serving_default"]
            )
            proto, _ = tf2onnx.convert.from_graph_def(
                graph_def, input_names=inputs, output_names=outputs, opset=opset
            )
        except Exception as err:  # tf2onnx raises bare Exceptions and ValueErrors alike
            raise ExportError(
                f"{model.name}: tf2onnx failed ({type(err).__name__}: {err})"
            ) from err
    unknown = [
        (node.op_type, node.name)
        for node in proto.graph.node
        if not onnx.defs.has(node.op_type, node.domain or "")
    ]
    if unknown:
        listed = ", ".join(f"{op} (in {name})" for op, name in unknown[:5])
        raise ExportError(f"{model.name}: ops with no ONNX opset-{opset} equivalent: {listed}")
    if len(proto.graph.input) != 1:
        names = [i.name for i in proto.graph.input]
        raise ExportError(f"{model.name}: ONNX graph has inputs {names}, expected only the image")
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    return out


def keras_predictor_at(run_dir: Path, size: tuple[int, int] | None = None) -> Predictor:
    """The run's Keras predictor, rebuilt at `size` when that differs from its own."""
    predictor = Predictor.load(run_dir, runtime="keras")
    if size is None or size == predictor.input_size:
        return predictor
    model = model_at_size(predictor.backend.model, run_dir, size)  # type: ignore[attr-defined]
    return Predictor(
        KerasBackend(model),
        name=predictor.name,
        runtime="keras",
        input_size=size,
        metrics=predictor.metrics,
        source=run_dir,
    )


def model_at_size(model: Any, run_dir: Path, size: tuple[int, int]) -> Any:
    """The run's model rebuilt at another input size with the same weights (fully convolutional)."""
    from cityseg.inference.runtime import _run_config

    config = _run_config(run_dir).get("model", {})
    try:
        from cityseg.models.registry import create_model
    except ModuleNotFoundError as err:
        raise ExportError(f"{run_dir}: --size needs cityseg.models.registry ({err})") from err
    if not config.get("name"):
        raise ExportError(f"{run_dir}/config.yaml: no model.name, cannot rebuild at {size}")
    try:
        resized = create_model(
            config["name"], input_size=size, num_classes=NUM_CLASSES, **(config.get("kwargs") or {})
        )
        resized.set_weights(model.get_weights())
    except (ValueError, TypeError) as err:
        raise ExportError(
            f"{run_dir}: model {config['name']!r} cannot run at {format_size(size)} ({err})"
        ) from err
    return resized


# --------------------------------------------------------------------------- data


def load_calibration_images(
    run_dir: Path, count: int, *, data_root: str | Path | None = None
) -> list[np.ndarray]:
    """`count` training images spread evenly over the run's sorted training split.

    Sorted, so exports are repeatable; spread, so that a split sorted by drive or city is
    calibrated on all of it, not on its first few hundred consecutive frames.
    """
    from cityseg.data.cityscapes import read_image

    samples = spread_evenly(run_split_samples(run_dir, "train", data_root), count)
    return [read_image(sample.image) for sample in samples]


def spread_evenly(samples: list[Any], count: int) -> list[Any]:
    """`count` of `samples` evenly spaced, first and last included (all if fewer)."""
    if count >= len(samples):
        return samples
    return [samples[round(i)] for i in np.linspace(0, len(samples) - 1, count)]


def load_parity_images(
    run_dir: Path, count: int, *, data_root: str | Path | None = None
) -> list[ParityImage]:
    """`count` test images spread over the run's split, with their eval-view categories.

    Spread like the calibration images: the first frames of a test set sorted by drive are
    one stretch of road, and parity measured there says little about the rest.
    """
    from cityseg.data.cityscapes import read_image, read_label
    from cityseg.data.labels import to_eval_categories

    split = "test"
    samples = spread_evenly(run_split_samples(run_dir, split, data_root), count)
    if not samples:
        split = "val"
        samples = spread_evenly(run_split_samples(run_dir, split, data_root), count)
    if not samples:
        raise ExportError(f"{run_dir}: no test or val images in the split for the parity check")
    return [
        ParityImage(
            read_image(s.image),
            # Unlabelled frames still count for pixel agreement, not for the mIoU delta.
            to_eval_categories(read_label(s.label), source=str(s.label)) if s.label else None,
            name=f"{split}:{Path(s.image).name}",
        )
        for s in samples
    ]


def run_split_samples(run_dir: Path, split: str, data_root: str | Path | None) -> list[Any]:
    """A run's `split` samples (its own manifest, or `data_root`'s), sorted by image path."""
    from cityseg.data.split import default_manifest_path, load_manifest
    from cityseg.inference.runtime import _run_config

    data = _run_config(run_dir).get("data", {})
    root = Path(data_root or data.get("root") or "")
    manifest = Path(data.get("manifest") or "") if not data_root else Path()
    if not manifest.name:
        manifest = default_manifest_path(root)
    if not manifest.is_file():
        raise ExportError(
            f"{run_dir}: split manifest {manifest} not found (dataset root {root!s}); "
            "pass --data ROOT"
        )
    samples = list(getattr(load_manifest(manifest), split))
    return sorted(samples, key=lambda s: str(s.image))


def _representative(images: Sequence[np.ndarray], size: tuple[int, int]) -> Any:
    def generate() -> Iterator[list[np.ndarray]]:
        for image in images:
            # Letterboxed exactly as at inference so the calibrated ranges match what runs.
            canvas, _ = letterbox(np.asarray(image, np.uint8), size)
            yield [canvas[None].astype(np.float32)]

    return generate


# --------------------------------------------------------------------------- parity


def measure_parity(
    reference: Predictor, exported: Predictor, images: Sequence[ParityImage]
) -> dict[str, Any]:
    """Pixel agreement with the Keras masks and the mIoU lost against ground truth."""
    if not images:
        raise ExportError("parity check needs at least one image")
    return parity_from_masks(
        (reference.predict(item.image), exported.predict(item.image), item.truth, item.name)
        for item in images
    )


def _latency_ms(predictor: Predictor, runs: int) -> float | None:
    if runs <= 0:
        return None
    width, height = predictor.input_size
    x = np.random.default_rng(0).uniform(0, 255, (1, height, width, 3)).astype(np.float32)
    for _ in range(3):  # warm-up: first calls allocate and pack weights
        predictor.predict_logits(x)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        predictor.predict_logits(x)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


# --------------------------------------------------------------------------- sidecar


def _sidecar(
    run_dir: Path,
    keras_predictor: Predictor,
    fmt: str,
    quantize: str,
    size: tuple[int, int],
    out: Path,
    convert_s: float,
) -> dict[str, Any]:
    metrics = keras_predictor.metrics
    return {
        "name": keras_predictor.name,
        "format": fmt,
        "file": out.name,
        "file_size_mb": out.stat().st_size / 1e6,
        "quantize": quantize,
        "input_size": list(size),
        "layout": "NHWC, batch 1",
        "preprocessing": "raw RGB 0..255, letterboxed to input_size (aspect kept, zero padding); "
        "normalisation is inside the graph",
        "output": "logits (1, H, W, 8); category = argmax",
        "categories": list(CATEGORIES),
        "palette": PALETTE.tolist(),
        "source_run": str(run_dir),
        "model": metrics.get("model") or keras_predictor.name,
        "metrics": {k: metrics[k] for k in ("val", "test") if k in metrics},
        "opset": ONNX_OPSET if fmt == "onnx" else None,
        "builtin_ops_only": fmt == "litert",
        "convert_s": round(convert_s, 2),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def float_ops(path: str | Path) -> list[str]:
    """The ops of a LiteRT file that compute in float (quantise / dequantise not counted)."""
    from ai_edge_litert.interpreter import Interpreter

    return [
        name
        for name, outputs in _ops(Interpreter(model_path=str(path)))
        if name not in ("QUANTIZE", "DEQUANTIZE") and any(t["dtype"] == np.float32 for t in outputs)
    ]


def _input_description(predictor: Predictor) -> dict[str, Any]:
    backend = predictor.backend
    if predictor.runtime == "litert":
        detail = backend.input  # type: ignore[attr-defined]
        out_detail = backend.output  # type: ignore[attr-defined]
        scale, zero = detail["quantization"]
        oscale, ozero = out_detail["quantization"]
        return {
            "dtype": np.dtype(detail["dtype"]).name,
            "scale": float(scale) if scale else None,
            "zero_point": int(zero) if scale else None,
            "output_dtype": np.dtype(out_detail["dtype"]).name,
            "output_scale": float(oscale) if oscale else None,
            "output_zero_point": int(ozero) if oscale else None,
        }
    return {"dtype": "float32", "scale": None, "zero_point": None, "output_dtype": "float32"}


# --------------------------------------------------------------------------- internals


def _write_saved_model(model: Any, size: tuple[int, int], path: str) -> None:
    import keras
    import tensorflow as tf

    spec = tf.TensorSpec((1, size[1], size[0], 3), tf.float32, name="image")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve", lambda image: model(image, training=False), input_signature=[spec]
    )
    archive.write_out(path, verbose=False)


def _litert_failure(model: Any, err: Exception) -> str:
    text = str(err)
    ops = re.findall(r"(?:Flex|Custom|Select TF) ops?: ([\w, ]+)", text)
    # MLIR locations read `fused["Op:", "model_1/layer_1/op/Op@fn"]`: map scopes back to layers
    # (Keras suffixes name scopes with `_1`).
    names = {layer.name for layer in model.layers}
    layers = sorted(
        {
            name
            for path in re.findall(r'fused\["\w+:", "([^"@]+)', text)
            for scope in path.split("/")[1:]
            for name in (scope, re.sub(r"_\d+$", "", scope))
            if name in names
        }
    )
    if ops or layers:
        return (
            f"{model.name}: not convertible to LiteRT with builtin ops only; "
            f"unsupported op(s): {', '.join(ops) or '?'}; in layer(s): {', '.join(layers) or '?'}"
        )
    first = next((line for line in text.splitlines() if "error" in line.lower()), text[:300])
    return f"{model.name}: LiteRT conversion failed: {first.strip()}"


@contextlib.contextmanager
def _numpy2_shims() -> Iterator[None]:
    """Aliases NumPy 2 removed but some tf2onnx releases still use, only while converting.

    tf2onnx <= 1.16 calls `np.cast` in constant folding (onnx/tensorflow-onnx#2373) and
    `np.object` in places; 1.17 fixed `np.cast`. Restored afterwards so nothing leaks.
    """
    added = []
    for alias, value in (("object", object), ("bool", bool), ("cast", _np_cast)):
        if alias not in np.__dict__:
            setattr(np, alias, value)
            added.append(alias)
    try:
        yield
    finally:
        for alias in added:
            delattr(np, alias)


class _NpCast(dict):
    """`np.cast[dtype](x)` as in NumPy 1."""

    def __missing__(self, dtype: Any) -> Any:
        return lambda x: np.asarray(x, dtype=dtype)


_np_cast = _NpCast()


def export_all(run_dir: str | Path, specs: Iterable[tuple[str, str]], **kw: Any) -> list[Path]:
    """Export one run to several `(format, quantize)` pairs (e.g. for the benchmark)."""
    return [export(run_dir, fmt, quantize, **kw) for fmt, quantize in specs]
