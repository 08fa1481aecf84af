"""Why is int8 LR-ASPP-MobileNetV3 slower than fp32 on this CPU, and is Lite0 int8 fast?

For each model (untrained weights: latency does not depend on them) at 512x256, batch 1:
exports LiteRT fp32 and int8 (as `cityseg export` does), times the interpreter with its default
XNNPACK delegate and without any delegate, and counts the ops of each graph, so the time can be
tied to the op types. `lraspp_mobilenetv3_minimal` is the same model on MobileNetV3-Small
`minimalistic=True` (no hard-swish, no squeeze-excite): the ablation of the suspects.

    .venv/bin/python scripts/int8_profile.py [--size 512x256] [--repeats 30]
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def build(name: str, size: tuple[int, int]):
    """A registry model, or the minimalistic MobileNetV3 ablation."""
    import keras

    from cityseg.models.registry import create_model

    if name != "lraspp_mobilenetv3_minimal":
        return create_model(name, input_size=size)
    original = keras.applications.MobileNetV3Small

    def minimal(*args, **kwargs):
        return original(*args, minimalistic=True, **kwargs)

    keras.applications.MobileNetV3Small = minimal
    try:
        return create_model("lraspp_mobilenetv3", input_size=size)
    finally:
        keras.applications.MobileNetV3Small = original


def convert(model, size: tuple[int, int], int8: bool, out: Path) -> Path:
    """LiteRT flatbuffer through cityseg's own exporter (`inference.export.to_litert`)."""
    from cityseg.inference.export import to_litert

    calibration = [
        np.random.default_rng(i).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        for i in range(8)
    ]
    data = to_litert(model, size, "int8" if int8 else "none", calibration=calibration)
    out.write_bytes(data)
    return out


def op_counts(path: Path) -> collections.Counter:
    """Op type -> count, read with the interpreter's op details."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    return collections.Counter(op["op_name"] for op in interp._get_ops_details())


def time_ms(path: Path, size: tuple[int, int], repeats: int, xnnpack: bool) -> float:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = Interpreter(model_path=str(path), num_threads=2, experimental_op_resolver_type=kind)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    x = np.random.default_rng(0).uniform(0, 255, inp["shape"]).astype(inp["dtype"])
    times = []
    for i in range(repeats + 3):
        interp.set_tensor(inp["index"], x)
        start = time.perf_counter()
        interp.invoke()
        if i >= 3:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="512x256")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument(
        "--models", default="lraspp_mobilenetv3,lraspp_mobilenetv3_minimal,lraspp_lite0"
    )
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            model = build(name, (width, height))
            paths = {
                p: convert(model, (width, height), p == "int8", Path(tmp) / f"{name}_{p}.tflite")
                for p in ("fp32", "int8")
            }
            for precision, path in paths.items():
                xnn = time_ms(path, (width, height), args.repeats, True)
                ref = time_ms(path, (width, height), args.repeats, False)
                print(
                    f"{name:28s} {precision}: {xnn:7.2f} ms with XNNPACK, "
                    f"{ref:7.2f} ms builtin kernels only ({1000 / xnn:5.1f} images/s)",
                    flush=True,
                )
            counts = op_counts(paths["int8"])
            print(f"{name:28s} int8 ops: {dict(counts.most_common())}", flush=True)


if __name__ == "__main__":
    main()
