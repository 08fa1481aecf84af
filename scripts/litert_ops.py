"""Why a LiteRT model is slow: its ops, their precision, and what XNNPACK takes.

    uv run python scripts/litert_ops.py MODEL.tflite [MODEL.tflite ...] [--json OUT]

For each model: the op histogram with the precision each op runs in (int8 when its first
input is int8, else float), the number of XNNPACK partitions (each partition boundary hands
tensors back to LiteRT's own kernels), the ops XNNPACK did not take, and the median
latency at batch 1 with the default XNNPACK delegate against LiteRT's built-in kernels alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np


def _interpreter(path: Path, xnnpack: bool, threads: int) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if not path.is_file():
        raise SystemExit(f"{path}: no such LiteRT model file")
    kind = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = Interpreter(
            model_path=str(path), num_threads=threads, experimental_op_resolver_type=kind
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        raise SystemExit(f"{path}: LiteRT cannot load it ({err})") from err
    return interpreter


def _median_ms(interpreter: Any, repeats: int) -> float:
    detail = interpreter.get_input_details()[0]
    x = np.zeros(detail["shape"], detail["dtype"])
    times = []
    for i in range(repeats + 3):
        interpreter.set_tensor(detail["index"], x)
        started = time.perf_counter()
        interpreter.invoke()
        if i >= 3:  # warm-up
            times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def analyse(path: Path, threads: int = 2, repeats: int = 20) -> dict[str, Any]:
    """Op histogram, precision, XNNPACK partitions and latency of one `.tflite` file."""
    plain = _interpreter(path, xnnpack=False, threads=threads)
    dtypes = {t["index"]: np.dtype(t["dtype"]).name for t in plain.get_tensor_details()}
    ops = plain._get_ops_details()
    histogram: Counter[str] = Counter()
    for op in ops:
        first = next((i for i in op["inputs"] if i >= 0), None)
        precision = "int8" if first is not None and dtypes.get(first) == "int8" else "float"
        histogram[f"{op['op_name']} ({precision})"] += 1
    delegated = _interpreter(path, xnnpack=True, threads=threads)
    nodes = delegated._get_ops_details()
    partitions = [n for n in nodes if n["op_name"] == "DELEGATE"]
    # A delegated op's outputs are internal to its partition; an op that XNNPACK left to
    # LiteRT still produces a tensor that some partition (or the model output) reads.
    partition_inputs = {i for n in partitions for i in n["inputs"]}
    outputs = {d["index"] for d in delegated.get_output_details()}
    produced_by_partition = {o for n in partitions for o in n["outputs"]}
    left: Counter[str] = Counter()
    for op in nodes:
        if op["op_name"] == "DELEGATE":
            continue
        outs = set(op["outputs"])
        if outs & (partition_inputs | outputs) and not outs & produced_by_partition:
            left[op["op_name"]] += 1
    return {
        "model": str(path),
        "ops": len(ops),
        "histogram": dict(sorted(histogram.items(), key=lambda kv: -kv[1])),
        "xnnpack_partitions": len(partitions),
        "left_to_litert": dict(left),
        "median_ms_xnnpack": round(_median_ms(delegated, repeats), 2),
        "median_ms_builtin": round(_median_ms(plain, repeats), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = [analyse(p, args.threads, args.repeats) for p in args.models]
    text = json.dumps(report, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
