"""Seconds per training step of several models, measured side by side (alternating steps).

Other jobs share this CPU, so absolute times drift; alternating one step of each model per
round makes the ratio fair. Batch 8 at 256x128, AdamW, cross-entropy, as the cpu profile.

    .venv/bin/python scripts/train_step_ratio.py [--models a,b] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="lraspp_mobilenetv3,lraspp_lite0,lraspp_lite0:imagenet")
    parser.add_argument("--size", default="256x128")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    import keras

    from cityseg.models.registry import create_model

    width, height = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.batch, height, width, 3)).astype("float32")
    y = rng.integers(0, 8, (args.batch, height, width)).astype("uint8")
    models = {}
    for item in args.models.split(","):
        name, _, weights = item.partition(":")
        model = create_model(name, input_size=(width, height), encoder_weights=weights or None)
        model.compile(
            optimizer=keras.optimizers.AdamW(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=False,
        )
        for _ in range(3):  # trace + warm up
            model.train_on_batch(x, y)
        models[item] = model
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.rounds):
        for key, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times[key].append(time.perf_counter() - start)
    base = statistics.median(next(iter(times.values())))
    print(f"load average {os.getloadavg()[0]:.1f} (shared CPU)")
    for key, values in times.items():
        med = statistics.median(values)
        print(f"{key:28s} {med:6.3f} s/step (x{med / base:.2f} of the first), batch {args.batch}")


if __name__ == "__main__":
    main()
