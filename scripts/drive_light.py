"""How bright is each drive? Mean pixel value and contrast of every city of a dataset root.

The light a camera sees differs between drives (CamVid's 0001TP was filmed at dusk); this
prints, per split and city, the frames counted, the mean RGB value (0..255), the mean
per-frame standard deviation, and the mean grey level (0..255) of the pixels labelled flat
(road, sidewalk) and sky, from every `step`-th frame (`cityseg.data.synth_stats.drive_light`).
Run:
    .venv/bin/python scripts/drive_light.py data/camvid_imp [--step 5]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from cityseg.data.cityscapes import DataError, list_samples
from cityseg.data.synth_stats import drive_light

SPLITS = ("train", "val", "test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="dataset root in the Cityscapes layout")
    parser.add_argument("--step", type=int, default=5, help="read every step-th frame")
    args = parser.parse_args()
    if not (Path(args.root) / "leftImg8bit").is_dir():
        raise SystemExit(f"{args.root}: no leftImg8bit/ folder: not a dataset root")
    print("split  city        frames  mean RGB               mean  contrast   flat    sky")
    for split in SPLITS:
        by_city = defaultdict(list)
        try:
            samples = list_samples(args.root, split)
        except DataError:  # this split holds no frames (CamVid has no official test)
            continue
        for sample in samples:
            by_city[sample.city].append(sample)
        for city, frames in sorted(by_city.items()):
            light = drive_light(frames[:: args.step])
            rgb = "[" + " ".join(f"{c:5.1f}" for c in light["rgb"]) + "]"
            flat, sky = (float("nan") if light[k] is None else light[k] for k in ("flat", "sky"))
            print(
                f"{split:6} {city:11} {len(frames):6}  {rgb:22}"
                f" {light['mean']:5.1f} {light['contrast']:9.1f} {flat:6.1f} {sky:6.1f}"
            )


if __name__ == "__main__":
    main()
