"""`cityseg bench latency`: batch-1 latency of every model x runtime x precision, as JSON.

Each measurement runs in its own fresh Python process, so its peak memory is that of the
runtime alone (an ONNX Runtime or LiteRT process never imports TensorFlow) and one back
end's threads or caches cannot slow the next. The main process counts the model's FLOPs
(TF profiler on the frozen graph, a multiply-add = 2 FLOPs) and measures this machine's
float32 matrix-multiply peak, so each result also says which fraction of the machine's
arithmetic the model actually uses.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cityseg.common.sizes import format_size

log = logging.getLogger(__name__)

# (runtime, precision) measured for each model and size; keras_predict is the baseline.
VARIANTS: tuple[tuple[str, str], ...] = (
    ("keras_predict", "fp32"),
    ("keras", "fp32"),
    ("onnx", "fp32"),
    ("litert", "fp32"),
    ("litert", "fp16"),
    ("litert", "int8"),
)
_QUANTIZE = {"fp32": "none", "fp16": "fp16", "int8": "int8"}
TARGET_IMAGES_PER_S = 20.0  # the deployed model at 512x256 on this 2-core CPU
TARGET_SPEEDUP = 3.0  # best runtime vs Keras `predict`


def matmul_peak_gflops(n: int = 2048, repeats: int = 10) -> float:
    """This machine's float32 matmul throughput (NumPy/BLAS, all cores), best of `repeats`."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: thread pool start and page faults
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def count_flops(model: Any, size: tuple[int, int]) -> int:
    """FLOPs of one forward pass at `size` (batch 1), from the TF profiler on the frozen graph."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec((1, size[1], size[0], 3), tf.float32)
    fn = tf.function(lambda x: model(x, training=False), autograph=False)
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(spec))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph=frozen.graph, options=options)
    return int(profile.total_float_ops)


def bench_latency(
    runs: Sequence[str | Path],
    sizes: Sequence[tuple[int, int]] | None = None,
    *,
    variants: Sequence[tuple[str, str]] = VARIANTS,
    warmup: int = 5,
    repeats: int = 30,
    export_missing: bool = True,
    export_kwargs: dict[str, Any] | None = None,
    tta: Sequence[str] = ("none",),
) -> dict[str, Any]:
    """Measure every run x size x variant (x test-time augmentation); the JSON-ready report.

    A `tta` mode other than "none" times `Predictor.predict_probabilities` (every view and
    their mean) on each runtime but Keras `predict`; its FLOPs count every model pass.
    """
    from cityseg.inference.runtime import Predictor, cpu_cores

    load_before = os.getloadavg()
    peak = matmul_peak_gflops()
    log.info("float32 matmul peak: %.1f GFLOP/s", peak)
    results: list[dict[str, Any]] = []
    for run in map(Path, runs):
        keras_predictor = Predictor.load(run, runtime="keras")
        for size in sizes or [keras_predictor.input_size]:
            model = keras_predictor.backend.model  # type: ignore[attr-defined]
            if size != keras_predictor.input_size:
                from cityseg.inference.export import model_at_size

                model = model_at_size(model, run, size)
            flops = count_flops(model, size)
            for runtime, precision in variants:
                target = _target(run, runtime, precision, size, export_missing, export_kwargs or {})
                if target is None:
                    continue
                for mode in tta:
                    if mode != "none" and runtime == "keras_predict":
                        continue  # TTA runs through a Predictor, never bare `model.predict`
                    row = _measure(target, runtime, size, warmup, repeats, mode)
                    work = flops * row["model_passes"] * row["images_per_s"] / 1e9
                    row.update(
                        run=str(run),
                        name=keras_predictor.name,
                        model=keras_predictor.metrics.get("model") or keras_predictor.name,
                        size=format_size(size),
                        precision=precision,
                        flops=flops,
                        achieved_gflops=work,
                        fraction_of_peak=work / peak,
                        **_parity_of(target),
                    )
                    results.append(row)
                    log.info(
                        "%s %s %s/%s tta=%s: %.1f ms median, %.1f img/s",
                        keras_predictor.name,
                        format_size(size),
                        runtime,
                        precision,
                        mode,
                        row["median_ms"],
                        row["images_per_s"],
                    )
    _add_speedups(results)
    return {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": cpu_cores(),
            "matmul_peak_gflops": peak,
            "python": platform.python_version(),
            # Other processes share these cores: the load says how quiet the machine was.
            "loadavg_1min_before_after": [load_before[0], os.getloadavg()[0]],
        },
        "notes": (
            "fraction_of_peak = model FLOPs x images/s / float32 matmul peak (NumPy, all "
            "cores, best of 10); int8 kernels are not bound by the float32 peak and can exceed 1."
        ),
        "settings": {"batch": 1, "warmup": warmup, "repeats": repeats, "tta": list(tta)},
        "results": results,
        "targets": _targets(results),
    }


def _target(
    run: Path,
    runtime: str,
    precision: str,
    size: tuple[int, int],
    export_missing: bool,
    export_kwargs: dict[str, Any],
) -> Path | None:
    """The file (or run folder) that one variant measures; exports it when missing."""
    from cityseg.inference.runtime import list_exports

    if runtime in ("keras", "keras_predict"):
        return run
    fmt = "onnx" if runtime == "onnx" else "litert"
    quantize = _QUANTIZE[precision]
    suffix = ".onnx" if fmt == "onnx" else ".tflite"
    for path, meta in list_exports(run):
        if (
            path.suffix == suffix
            and meta.get("quantize") == quantize
            and tuple(meta.get("input_size", ())) == size
            and meta.get("input", {}).get("dtype", "float32") == "float32"
        ):
            return path
    if not export_missing:
        log.warning("%s: no %s %s export at %s; skipped", run, fmt, precision, format_size(size))
        return None
    from cityseg.inference.export import export

    return export(run, fmt, quantize, size, **export_kwargs)


def _measure(
    target: Path,
    runtime: str,
    size: tuple[int, int],
    warmup: int,
    repeats: int,
    tta: str = "none",
) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter (see the module docstring)."""
    spec = {
        "target": str(target),
        "runtime": runtime,
        "size": list(size),
        "warmup": warmup,
        "repeats": repeats,
        "tta": tta,
    }
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-m", "cityseg.bench.latency", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"latency worker for {target} ({runtime}) failed:\n{done.stderr[-2000:]}"
        )
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return row


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Inside the fresh process: load, warm up, time `repeats` batch-1 calls."""
    import psutil

    target, runtime = Path(spec["target"]), spec["runtime"]
    width, height = spec["size"]
    x = np.random.default_rng(0).uniform(0, 255, (1, height, width, 3)).astype(np.float32)
    rss_before = psutil.Process().memory_info().rss
    mode, passes = spec.get("tta", "none"), 1
    if runtime == "keras_predict":
        from cityseg.inference.runtime import load_keras_model

        model = load_keras_model(target / "model.keras" if target.is_dir() else target)
        if tuple(model.input_shape[1:3]) != (height, width):
            from cityseg.inference.export import model_at_size

            model = model_at_size(model, target, (width, height))

        def call() -> Any:
            return model.predict(x, verbose=0)

        file_size = _size_mb(target / "model.keras" if target.is_dir() else target)
    else:
        from cityseg.inference.runtime import KerasBackend, Predictor

        predictor = Predictor.load(target, runtime=runtime)
        backend = predictor.backend
        if predictor.input_size != (width, height):
            from cityseg.inference.export import model_at_size

            backend = KerasBackend(model_at_size(backend.model, target, (width, height)))  # type: ignore[attr-defined]
        file_size = _size_mb(target / "model.keras" if target.is_dir() else target)
        timed = Predictor(backend, name=predictor.name, runtime=runtime, input_size=(width, height))
        timed.tta = mode
        passes = timed.passes_per_frame()

        def call() -> Any:
            return backend(x) if mode == "none" else timed.predict_probabilities(x)

    for _ in range(spec["warmup"]):
        call()
    times = []
    for _ in range(spec["repeats"]):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    peak_kb = _peak_rss_kb()
    median = float(np.median(times))
    return {
        "runtime": runtime,
        "tta": mode,
        "model_passes": passes,
        "file": str(target),
        "file_size_mb": file_size,
        "median_ms": median * 1000,
        "p90_ms": float(np.percentile(times, 90)) * 1000,
        "images_per_s": 1.0 / median,
        "peak_rss_mb": peak_kb / 1024,
        "rss_delta_mb": (peak_kb * 1024 - rss_before) / 2**20,
        # ONNX Runtime / LiteRT rows must not pay for TensorFlow: recorded, and tested.
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def _peak_rss_kb() -> int:
    """This process's peak RSS. VmHWM belongs to the address space, which exec replaces;
    `ru_maxrss` would carry over the parent's peak (the TensorFlow-laden bench process)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _size_mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def _parity_of(target: Path) -> dict[str, Any]:
    if target.is_dir():
        return {}
    from cityseg.inference.runtime import read_sidecar

    parity = read_sidecar(target).get("parity") or {}
    return {"parity": {k: parity[k] for k in ("pixel_agreement", "miou_delta") if k in parity}}


def _add_speedups(results: list[dict[str, Any]]) -> None:
    """Each row's speed-up over Keras `predict` on the same run and size, same session; a
    test-time-augmented row's cost is its time over the same variant's without it."""
    base = {
        (r["run"], r["size"]): r["median_ms"] for r in results if r["runtime"] == "keras_predict"
    }
    plain = {
        (r["run"], r["size"], r["runtime"], r["precision"]): r["median_ms"]
        for r in results
        if r.get("tta", "none") == "none"
    }
    for row in results:
        reference = base.get((row["run"], row["size"]))
        row["speedup_vs_keras_predict"] = reference / row["median_ms"] if reference else None
        if row.get("tta", "none") != "none":
            same = plain.get((row["run"], row["size"], row["runtime"], row["precision"]))
            row["tta_cost"] = row["median_ms"] / same if same else None


def _targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per run at 512x256: the fastest runtime meeting its parity bar against both targets."""
    from cityseg.inference.runtime import meets_parity

    checks = []
    for run in sorted({r["run"] for r in results}):
        rows = [
            r
            for r in results
            if r["run"] == run and r["size"] == "512x256" and r.get("tta", "none") == "none"
        ]
        passing = [
            r
            for r in rows
            if r["runtime"] in ("keras", "keras_predict")
            or meets_parity({"quantize": _QUANTIZE[r["precision"]], "parity": r.get("parity")})
        ]
        if not passing:
            continue
        best = max(passing, key=lambda r: r["images_per_s"])
        speedup = best.get("speedup_vs_keras_predict")
        checks.append(
            {
                "run": run,
                "best": f"{best['runtime']}/{best['precision']}",
                "images_per_s": best["images_per_s"],
                "meets_images_per_s": best["images_per_s"] >= TARGET_IMAGES_PER_S,
                "speedup_vs_keras_predict": speedup,
                # None when Keras predict was not measured in this session (see --variants).
                "meets_speedup": None if speedup is None else speedup >= TARGET_SPEEDUP,
            }
        )
    return checks


def write_json(report: dict[str, Any], path: str | Path) -> Path:
    """Write the report (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return path


if __name__ == "__main__":  # the per-measurement worker process (see `_measure`)
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
