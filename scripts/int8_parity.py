"""What int8 parity depends on: calibration frames and the float logits tail, on a trained run.

For one run at one size, exports LiteRT int8 through cityseg's own exporter with several
calibration sets (the first N training frames, N spread over the split, all of them) and with
the logits tail kept float or not, then measures parity against the Keras model on every test
frame of the split: pixel agreement and the mIoU lost. One JSON line per variant.

    .venv/bin/python scripts/int8_parity.py --run runs/camvid/models/lraspp_lite0-imagenet-frozen12 \
        [--size 512x256] [--count 100] [--json bench/int8_parity.json]

About a minute per variant for Lite0 at 512x256 on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

# (name, which calibration frames, logits tail float)
VARIANTS: tuple[tuple[str, str, bool], ...] = (
    ("first_int8", "first", False),
    ("spread_int8", "spread", False),
    ("all_int8", "all", False),
    ("spread_float_tail", "spread", True),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--size", default="512x256")
    parser.add_argument("--count", type=int, default=100, help="calibration frames")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from cityseg.common.sizes import parse_size
    from cityseg.data.cityscapes import read_image
    from cityseg.inference.export import (
        float_ops,
        keras_predictor_at,
        load_parity_images,
        measure_parity,
        run_split_samples,
        sidecar_path,
        spread_evenly,
        to_litert,
    )
    from cityseg.inference.runtime import Predictor

    size = parse_size(args.size)
    if not (args.run / "model.keras").is_file():
        raise SystemExit(f"{args.run}: no model.keras in this run folder")
    keras_predictor = keras_predictor_at(args.run, size)
    model = keras_predictor.backend.model  # type: ignore[attr-defined]
    train = run_split_samples(args.run, "train", None)
    frames = {
        "first": train[: args.count],
        "spread": spread_evenly(train, args.count),
        "all": train,
    }
    parity = load_parity_images(args.run, 10**6)  # every test frame
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, which, float_logits in VARIANTS:
            started = time.perf_counter()
            calibration = [read_image(s.image) for s in frames[which]]
            path = Path(tmp) / f"{name}.tflite"
            path.write_bytes(
                to_litert(model, size, "int8", calibration=calibration, float_logits=float_logits)
            )
            sidecar_path(path).write_text(json.dumps({"input_size": list(size)}))
            measured = measure_parity(keras_predictor, Predictor.load(path), parity)
            row = {
                "variant": name,
                "calibration_frames": len(calibration),
                "float_ops": float_ops(path),
                "parity_frames": measured["images"],
                "pixel_agreement": measured["pixel_agreement"],
                "miou_keras": measured.get("miou_keras"),
                "miou_delta": measured.get("miou_delta"),
                "seconds": round(time.perf_counter() - started, 1),
            }
            print(json.dumps(row), flush=True)
            results.append(row)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"run": str(args.run), "size": args.size, "results": results}, indent=1)
        )


if __name__ == "__main__":
    main()
