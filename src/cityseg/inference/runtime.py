"""One `Predictor`, three interchangeable back ends: Keras, ONNX Runtime and LiteRT.

Every back end only maps a float32 batch of raw RGB (0..255) at the model's input size to
logits; the pre- and post-processing around it (letterbox, argmax, unletterbox with
nearest) is shared here, so a mask never depends on which runtime produced it beyond the
numerics of the model itself.

Example:
    >>> predictor = Predictor.load("runs/unet_mini_256x128_ce")          # Keras
    >>> predictor = Predictor.load("runs/x/export/model_int8.tflite")    # LiteRT
    >>> mask = predictor.predict(image)  # uint8 (H, W) categories at the image's size
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cityseg.data.labels import NUM_CLASSES
from cityseg.data.resize import letterbox, unletterbox
from cityseg.inference.parity import meets_parity

log = logging.getLogger(__name__)

RUNTIMES = ("keras", "onnx", "litert")
# Test-time augmentation, the mean softmax over several views of each frame:
# - "hflip": the frame and its mirror (a street is as likely mirrored; twice the model time);
# - "scales": the frame at each of `TTA_SCALES`; a zoomed frame larger than the model's input
#   is segmented in overlapping input-sized tiles (what mmsegmentation calls slide inference),
#   so every runtime, exported ones at a fixed shape included, can run it. Zooming in shows
#   poles, signs and people at more pixels. Cost: 1 + ~4 tiles per 1.5x zoom;
# - "hflip_scales": both (twice "scales").
TTA_MODES = ("none", "hflip", "scales", "hflip_scales")
# Zoom factors of "scales", chosen on the validation drive of the camvid recipes (0006R0),
# never on the test drive: with flipping, (1, 1.5) lifted h200_lite0_480_exposure_e30 from 0.631
# to 0.648, (0.75, 1, 1.25, 1.5) gave the same at twice the cost, (1, 1.5, 2) 0.655 at three
# times (14 tiles a view). The README has the commands.
TTA_SCALES = (1.0, 1.5)
_EXTENSIONS = {".keras": "keras", ".onnx": "onnx", ".tflite": "litert"}


class RuntimeLoadError(ValueError):
    """A model file or run folder cannot be loaded by the requested runtime."""


def cpu_cores() -> int:
    """CPU cores this process may use (affinity-aware), the thread count for every runtime."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def sidecar_path(model_file: str | Path) -> Path:
    """The JSON sidecar written next to an exported model: `<file>.json`."""
    model_file = Path(model_file)
    return model_file.with_name(model_file.name + ".json")


def read_sidecar(model_file: str | Path) -> dict[str, Any]:
    """Read the sidecar of an exported model; a missing or broken one is an error naming it."""
    path = sidecar_path(model_file)
    if not path.is_file():
        raise RuntimeLoadError(
            f"{model_file}: sidecar {path} not found (written by `cityseg export`)"
        )
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RuntimeLoadError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(meta, dict) or "input_size" not in meta:
        raise RuntimeLoadError(f"{path}: missing field 'input_size'")
    return meta


class Backend(Protocol):
    """What a runtime must provide: logits for a float32 batch at the model's input size."""

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------- back ends


class KerasBackend:
    """Calls the Keras model through a `tf.function` (no per-call `model.predict` overhead).

    Under another Keras back end (JAX, PyTorch) it calls `predict_on_batch`, compiled by Keras.
    """

    def __init__(self, model: Any) -> None:
        import keras

        self.model = model
        if keras.backend.backend() != "tensorflow":
            self._call = model.predict_on_batch
            return
        import tensorflow as tf

        # One trace for every batch size: the batch dimension is left open.
        spec = tf.TensorSpec((None, *model.input_shape[1:3], 3), tf.float32)
        self._call = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._call(batch), dtype=np.float32)


class OnnxBackend:
    """ONNX Runtime, CPU provider, one intra-op thread per core."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_cores()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise RuntimeLoadError(f"{path}: ONNX Runtime cannot load it ({err})") from err
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        # A fixed batch of 1 (as exported for the embedded target) is fed one image at a time.
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        self.input_dtype = np.int8 if "int8" in inp.type else np.float32

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.fixed_batch is None or self.fixed_batch == len(batch):
            return np.asarray(self.session.run(None, {self.input_name: batch})[0], np.float32)
        outs = [self.session.run(None, {self.input_name: x[None]})[0] for x in batch]
        return np.concatenate(outs).astype(np.float32)


class LiteRTBackend:
    """LiteRT interpreter (XNNPACK by default), quantising int8 inputs and dequantising outputs."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads or cpu_cores())
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise RuntimeLoadError(f"{path}: LiteRT cannot load it ({err})") from err
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def _one(self, image: np.ndarray) -> np.ndarray:
        x = image[None]
        dtype = self.input["dtype"]
        if dtype != np.float32:
            scale, zero = self.input["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        if self.output["dtype"] != np.float32:
            scale, zero = self.output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y[0]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        # Exported at batch 1 for the embedded target; the interpreter is invoked per image.
        return np.stack([self._one(x) for x in batch]).astype(np.float32)


class EnsembleBackend:
    """Several models as one: the mean of their softmax, returned as its logarithm.

    The log of a probability is a valid logit (its softmax is the probability itself), so
    the `Predictor` around it needs no change: argmax, TTA and pseudo-labels all see the
    ensemble's mean probabilities.

    Members may differ in input size if they share its aspect ratio (`ensemble_input_size`):
    the batch, at the ensemble's input size, is resized to each such member's own size (area
    when shrinking, bilinear when enlarging) and its softmax resized back (bilinear) before
    the mean. One letterbox then serves all: a 768x576 and a 640x480 model see the same photo.
    """

    def __init__(
        self, members: Sequence[Backend], sizes: Sequence[tuple[int, int] | None] | None = None
    ) -> None:
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 models, got {len(members)}")
        if sizes is not None and len(sizes) != len(members):
            raise ValueError(f"{len(members)} members but {len(sizes)} input sizes")
        self.members = list(members)
        self.sizes = list(sizes) if sizes is not None else [None] * len(self.members)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        total = np.zeros((*batch.shape[:3], NUM_CLASSES), np.float32)
        for member, size in zip(self.members, self.sizes, strict=True):
            total += at_size(_softmax_of(member), batch, size)
        total /= len(self.members)
        return np.log(np.maximum(total, np.finfo(np.float32).tiny))


def _softmax_of(backend: Backend) -> Callable[[np.ndarray], np.ndarray]:
    return lambda batch: _softmax(backend(batch))


def at_size(
    probabilities: Callable[[np.ndarray], np.ndarray],
    batch: np.ndarray,
    size: tuple[int, int] | None,
) -> np.ndarray:
    """`probabilities(batch)` computed at `size` = (w, h) (None: as the batch is): the batch
    resized to it, the answer resized back to the batch's own size."""
    own = (batch.shape[2], batch.shape[1])
    if size is None or tuple(size) == own:
        return probabilities(batch)
    return resize_batch(probabilities(resize_batch(batch, size)), own)


def resize_batch(batch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float batch `(B, H, W, C)` to `size` = (w, h): area averaging when shrinking
    (no aliasing), bilinear otherwise. Images and softmax alike (never labels: they are
    resized nearest, in `cityseg.data.resize`)."""
    import cv2

    width, height = size
    if batch.shape[1:3] == (height, width):
        return batch
    shrink = width * height < batch.shape[1] * batch.shape[2]
    method = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = [
        cv2.resize(np.ascontiguousarray(x), (width, height), interpolation=method) for x in batch
    ]
    # cv2 drops a trailing axis of length 1
    return np.stack(out).reshape(len(batch), height, width, batch.shape[3]).astype(np.float32)


# --------------------------------------------------------------------------- predictor


class Predictor:
    """Segment RGB frames with a trained model on any runtime.

    Args:
        backend: callable mapping float32 `(B, H, W, 3)` raw RGB to logits `(B, H, W, 8)`.
        name: the run's (or exported model's) name.
        runtime: "keras", "onnx" or "litert".
        input_size: the model's input `(width, height)`.
        metrics: the run's `metrics.json` (or the sidecar's copy plus parity); may be empty.
        source: the run folder or model file loaded.
        meta: the sidecar of an exported model (empty for Keras).
        tta: test-time augmentation, one of `TTA_MODES`.
        scales: zoom factors of the "scales" modes (each > 0; 1.0 is the frame as it is).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        name: str,
        runtime: str,
        input_size: tuple[int, int],
        metrics: dict[str, Any] | None = None,
        source: Path | None = None,
        meta: dict[str, Any] | None = None,
        tta: str = "none",
        scales: Sequence[float] = TTA_SCALES,
    ) -> None:
        self.tta = tta
        self.scales = scales
        self.backend = backend
        self.name = name
        self.runtime = runtime
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.metrics = metrics or {}
        self.source = source
        self.meta = meta or {}

    @property
    def tta(self) -> str:
        """Test-time augmentation, one of `TTA_MODES` (settable)."""
        return self._tta

    @tta.setter
    def tta(self, mode: str) -> None:
        if mode not in TTA_MODES:
            raise ValueError(f"tta {mode!r} is not one of {', '.join(TTA_MODES)}")
        self._tta = mode

    @property
    def scales(self) -> tuple[float, ...]:
        """Zoom factors of the "scales" TTA modes (settable)."""
        return self._scales

    @scales.setter
    def scales(self, values: Sequence[float]) -> None:
        scales = tuple(float(v) for v in values)
        if not scales or any(not (v > 0) or v == float("inf") for v in scales):
            raise ValueError(f"tta scales must be positive numbers, got {list(values)}")
        self._scales = scales

    def __repr__(self) -> str:
        tta = "" if self.tta == "none" else f", tta={self.tta!r}"
        if "scales" in self.tta:
            tta += f", scales={self.scales}"
        return (
            f"Predictor({self.name!r}, runtime={self.runtime!r}, input_size={self.input_size}{tta})"
        )

    @classmethod
    def load(cls, path: str | Path, runtime: str = "auto") -> Predictor:
        """Load a run folder (`model.keras`) or an exported `.tflite` / `.onnx` (+ sidecar)."""
        path = Path(path)
        if runtime not in ("auto", *RUNTIMES):
            raise ValueError(f"runtime {runtime!r} is not one of auto, {', '.join(RUNTIMES)}")
        if not path.exists():
            raise FileNotFoundError(f"model not found: {path}")
        if path.is_dir():
            if runtime in ("auto", "keras"):
                return cls._load_keras(path / "model.keras", run_dir=path)
            return cls.load(find_export(path, runtime), runtime)
        kind = _EXTENSIONS.get(path.suffix.lower())
        if kind is None:
            raise RuntimeLoadError(
                f"{path}: unknown model format {path.suffix!r}; expected a run folder, "
                ".keras, .onnx or .tflite"
            )
        if runtime not in ("auto", kind):
            raise RuntimeLoadError(f"{path}: a {path.suffix} file cannot run on {runtime!r}")
        if kind == "keras":
            return cls._load_keras(path, run_dir=path.parent)
        return cls._load_exported(path, kind)

    @classmethod
    def ensemble(cls, members: Sequence[Predictor]) -> Predictor:
        """One predictor averaging the softmax of `members` (each loaded with `load`).

        Each frame is letterboxed once, at the largest member's input size; members of another
        size with the same aspect ratio see it resized (`EnsembleBackend`). Members of
        different aspect ratios are refused, and the back end refuses fewer than 2.
        """
        size = ensemble_input_size(members, "ensemble members")
        backend = EnsembleBackend([m.backend for m in members], [m.input_size for m in members])
        runtimes = {m.runtime for m in members}
        return cls(
            backend,
            name="+".join(m.name for m in members),
            runtime=runtimes.pop() if len(runtimes) == 1 else "mixed",
            input_size=size,
            meta={"members": [str(m.source or m.name) for m in members]},
            tta=members[0].tta,
            scales=members[0].scales,
        )

    def probabilities_at(self, batch: np.ndarray) -> np.ndarray:
        """`predict_probabilities` of a batch at another size of the same aspect ratio (an
        ensemble's): resized to this model's input size and its softmax resized back."""
        return at_size(self.predict_probabilities, np.asarray(batch, np.float32), self.input_size)

    @classmethod
    def _load_keras(cls, model_path: Path, *, run_dir: Path) -> Predictor:
        if not model_path.is_file():
            raise RuntimeLoadError(f"{run_dir}: no model.keras in this run folder")
        model = load_keras_model(model_path)
        shape = model.input_shape
        size: tuple[int, int] | None = None
        if shape[1] is not None and shape[2] is not None:
            size = (int(shape[2]), int(shape[1]))
        config = _run_config(run_dir)
        if size is None and config:
            from cityseg.common.sizes import parse_size

            size = parse_size(config.get("data", {}).get("size", ""))
        if size is None:
            raise RuntimeLoadError(f"{model_path}: input size unknown (no fixed shape, no config)")
        metrics = _read_json(run_dir / "metrics.json")
        name = metrics.get("name") or config.get("name") or run_dir.name
        return cls(
            KerasBackend(model),
            name=str(name),
            runtime="keras",
            input_size=size,
            metrics=metrics,
            source=run_dir if model_path.name == "model.keras" else model_path,
        )

    @classmethod
    def _load_exported(cls, path: Path, kind: str) -> Predictor:
        meta = read_sidecar(path)
        backend: Backend = OnnxBackend(path) if kind == "onnx" else LiteRTBackend(path)
        size = meta["input_size"]
        metrics = dict(meta.get("metrics") or {})
        if meta.get("parity"):
            metrics["parity"] = meta["parity"]
        return cls(
            backend,
            name=str(meta.get("name") or path.stem),
            runtime=kind,
            input_size=(int(size[0]), int(size[1])),
            metrics=metrics,
            source=path,
            meta=meta,
        )

    # ----------------------------------------------------------------------- inference

    def predict_logits(self, batch: np.ndarray) -> np.ndarray:
        """Logits `(B, H, W, 8)` for a float32 batch `(B, H, W, 3)` of raw RGB at input_size."""
        batch = np.asarray(batch, dtype=np.float32)
        width, height = self.input_size
        if batch.ndim != 4 or batch.shape[1:] != (height, width, 3):
            raise ValueError(
                f"batch shape {batch.shape} does not match the model input (B, {height}, {width}, 3)"
            )
        logits = self.backend(np.ascontiguousarray(batch))
        if logits.shape != (*batch.shape[:3], NUM_CLASSES):
            raise RuntimeError(f"{self.source}: model returned {logits.shape}, expected logits")
        return logits

    def predict_probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Softmax `(B, H, W, 8)` for a batch at input_size, averaged over the `tta` views."""
        batch = np.asarray(batch, dtype=np.float32)
        scales, flips = self._views()
        total: np.ndarray | None = None
        for scale in scales:
            for flip in flips:
                view = np.ascontiguousarray(batch[:, :, ::-1]) if flip else batch
                probs = self._probabilities_at(view, scale)
                probs = probs[:, :, ::-1] if flip else probs
                total = probs if total is None else total + probs
        assert total is not None  # scales and flips are never empty
        return total / (len(scales) * len(flips))

    def passes_per_frame(self) -> int:
        """Model inputs one frame costs under the current `tta`: 1 without, 10 for the default
        `hflip_scales` ((1 + 4 tiles) x 2 flips)."""
        scales, flips = self._views()
        return len(flips) * sum(len(self._zoom(scale)[2]) for scale in scales)

    def _views(self) -> tuple[tuple[float, ...], tuple[bool, ...]]:
        """The zoom factors and mirrorings (False: as it is) that `tta` averages over."""
        scales = self.scales if "scales" in self.tta else (1.0,)
        return scales, (False, True) if "hflip" in self.tta else (False,)

    def _zoom(self, scale: float) -> tuple[int, int, list[tuple[int, int]]]:
        """The zoomed frame's (width, height) and the (y, x) of each input-sized tile the model
        sees of it: one at the top-left for a zoom of at most 1 (the frame fits the input)."""
        width, height = self.input_size
        zw, zh = max(1, round(width * scale)), max(1, round(height * scale))
        if scale <= 1:
            return zw, zh, [(0, 0)]
        return zw, zh, [(y, x) for y in _windows(zh, height) for x in _windows(zw, width)]

    def _probabilities_at(self, batch: np.ndarray, scale: float) -> np.ndarray:
        """Softmax of `batch` zoomed by `scale`, brought back to the input size (bilinear)."""
        if scale == 1.0:
            return _softmax(self.predict_logits(batch))
        import cv2

        width, height = self.input_size
        zw, zh, tiles = self._zoom(scale)
        shrink = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        zoomed = np.stack([cv2.resize(x, (zw, zh), interpolation=shrink) for x in batch])
        if scale < 1:  # on a zero canvas (the letterbox's fill), top-left
            canvas = np.zeros_like(batch)
            canvas[:, :zh, :zw] = zoomed
            probs = _softmax(self.predict_logits(canvas))[:, :zh, :zw]
        else:  # overlapping input-sized tiles, averaged where they overlap
            crops = np.stack([z[y : y + height, x : x + width] for z in zoomed for y, x in tiles])
            step = len(batch)  # tiles go through the model a batch at a time: memory stays bounded
            out = np.concatenate(
                [
                    _softmax(self.predict_logits(crops[i : i + step]))
                    for i in range(0, len(crops), step)
                ]
            ).reshape(len(batch), len(tiles), height, width, -1)
            probs = np.zeros((len(batch), zh, zw, out.shape[-1]), np.float32)
            counts = np.zeros((zh, zw, 1), np.float32)
            for k, (y, x) in enumerate(tiles):
                probs[:, y : y + height, x : x + width] += out[:, k]
                counts[y : y + height, x : x + width] += 1
            probs /= counts
        return np.stack(
            [cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR) for p in probs]
        )

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Categories `uint8 (H, W)` for an RGB `uint8 (H, W, 3)` image of any size."""
        return self.predict_many([image])[0]

    def predict_many(self, images: Iterable[np.ndarray], batch_size: int = 8) -> list[np.ndarray]:
        """`predict` over many images, run through the model `batch_size` at a time."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out: list[np.ndarray] = []
        pending: list[tuple[np.ndarray, Any, tuple[int, int]]] = []
        for image in images:
            pending.append(self.prepare(image))
            if len(pending) == batch_size:
                out.extend(self._finish(pending))
                pending = []
        if pending:  # the last partial batch is kept
            out.extend(self._finish(pending))
        return out

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, Any, tuple[int, int]]:
        """(canvas at the input size, letterbox box, the image's (width, height)): what the
        model is given, and what `unletterbox` needs to bring its answer back."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}"
            )
        canvas, box = letterbox(image, self.input_size)
        return canvas, box, (image.shape[1], image.shape[0])

    def _finish(
        self, pending: Sequence[tuple[np.ndarray, Any, tuple[int, int]]]
    ) -> list[np.ndarray]:
        batch = np.stack([canvas for canvas, _, _ in pending]).astype(np.float32)
        scores = (
            self.predict_logits(batch) if self.tta == "none" else self.predict_probabilities(batch)
        )
        classes = scores.argmax(axis=-1).astype(np.uint8)
        return [
            unletterbox(c, box, size) for c, (_, box, size) in zip(classes, pending, strict=True)
        ]


# --------------------------------------------------------------------------- helpers


def ensemble_input_size(predictors: Sequence[Predictor], what: str) -> tuple[int, int]:
    """The input size at which `predictors` are mixed: the largest of theirs (fewest pixels
    lost). Their sizes may differ only by a scale, so that one letterbox serves all: a
    ValueError listing each one's where two aspect ratios differ by more than 1 % (a squash;
    `what` names them: "ensemble members", "candidates")."""
    sizes = [p.input_size for p in predictors]
    if not sizes:
        raise ValueError(f"no {what}")
    width, height = max(sizes, key=lambda s: (s[0] * s[1], s))
    if any(abs(w * height - h * width) > 0.01 * w * height for w, h in sizes):
        listed = ", ".join(f"{p.source or p.name}: {p.input_size}" for p in predictors)
        raise ValueError(
            f"{what} differ in aspect ratio ({listed}): sizes may differ only by a scale, "
            "so that one letterbox serves them all"
        )
    return width, height


def _windows(length: int, window: int) -> list[int]:
    """Start offsets of windows of `window` covering `length`, overlapping by about 1/3 or more."""
    if length <= window:
        return [0]
    count = -(-3 * (length - window) // (2 * window)) + 1  # stride at most 2/3 of a window
    return [round(k * (length - window) / (count - 1)) for k in range(count)]


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last (class) axis, computed class-planes-first.

    NumPy reduces a short trailing axis slowly, and TTA pays this once per model pass: with
    `exp / exp.sum(-1)` a flipped and zoomed 480x352 frame took 871 ms, this way 695 ms
    (`cityseg bench latency --variants onnx/fp32 --tta hflip_scales`, LR-ASPP Lite0).
    """
    planes = np.ascontiguousarray(np.moveaxis(logits, -1, 0), dtype=np.float32)
    planes -= planes.max(axis=0)
    np.exp(planes, out=planes)
    planes /= planes.sum(axis=0)
    return np.ascontiguousarray(np.moveaxis(planes, 0, -1))


def load_keras_model(path: str | Path) -> Any:
    """Load a `.keras` file for inference, registering the model zoo's custom layers first."""
    import keras

    try:  # the registry registers its custom layers on import; absent until the zoo lands
        import cityseg.models.registry  # noqa: F401
    except ModuleNotFoundError as err:
        if err.name != "cityseg.models.registry":
            raise
    try:
        return keras.saving.load_model(str(path), compile=False)
    except Exception as err:  # Keras raises many types for a bad archive
        raise RuntimeLoadError(f"{path}: cannot load Keras model ({err})") from err


def find_export(run_dir: str | Path, runtime: str, quantize: str | None = None) -> Path:
    """The exported model for `runtime` in `<run>/export/` (the most recent if several)."""
    suffix = {"onnx": ".onnx", "litert": ".tflite"}[runtime]
    folder = Path(run_dir) / "export"
    found = sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else []
    if quantize is not None:
        found = [p for p in found if _read_json(sidecar_path(p)).get("quantize") == quantize]
    if not found:
        raise RuntimeLoadError(
            f"{run_dir}: no {suffix} export in {folder} (run `cityseg export --run {run_dir} "
            f"--format {runtime}`)"
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def list_exports(run_dir: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every exported model in `<run>/export/` with its sidecar, sorted by file name."""
    folder = Path(run_dir) / "export"
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.suffix in (".onnx", ".tflite"))
    return [(p, _read_json(sidecar_path(p))) for p in files if sidecar_path(p).is_file()]


def best_runtime(run_dir: str | Path) -> Path:
    """The fastest model file of a run whose parity meets the bar (falls back to Keras).

    Speed is the `latency_ms` the exporter measured on this machine and stored in the
    sidecar; exports without a parity or latency record are not considered.
    """
    run_dir = Path(run_dir)
    candidates = [
        (float(meta["latency_ms"]), path)
        for path, meta in list_exports(run_dir)
        if meets_parity(meta) and meta.get("latency_ms") is not None
    ]
    if not candidates:
        return run_dir
    return min(candidates)[1]


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RuntimeLoadError(f"{path}: not valid JSON ({err})") from err
    return data if isinstance(data, dict) else {}


def _run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    import yaml

    data = yaml.safe_load(path.read_text())
    return data if isinstance(data, dict) else {}
