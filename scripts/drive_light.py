"""How bright is each drive? Mean pixel value and contrast of every city of a dataset root.

The light a camera sees differs between drives (CamVid's 0001TP was filmed at dusk); this
prints, per split and city, the frames counted, the mean RGB value (0..255), the mean
per-frame standard deviation, and the mean grey level (0..255) of the pixels labelled flat
(road, sidewalk) and sky, from every `step`-th frame. Run:
    .venv/bin/python scripts/drive_light.py data/camvid_imp [--step 5]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from cityseg.data.cityscapes import DataError, list_samples, read_sample
from cityseg.data.labels import CATEGORIES

SPLITS = ("train", "val", "test")
FLAT, SKY = CATEGORIES.index("flat"), CATEGORIES.index("sky")


def _grey_of(grey: list[np.ndarray], categories: list[np.ndarray], category: int) -> float:
    """Mean grey level of the pixels of `category` over all frames (nan if none)."""
    values = [g[c == category] for g, c in zip(grey, categories, strict=True)]
    pixels = np.concatenate(values) if values else np.zeros(0)
    return float(pixels.mean()) if pixels.size else float("nan")


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
            pairs = [read_sample(s) for s in frames[:: args.step]]
            images = [image.astype(np.float32) for image, _ in pairs]
            rgb = np.mean([im.reshape(-1, 3).mean(0) for im in images], axis=0)
            contrast = np.mean([im.std() for im in images])
            grey = [im.mean(axis=2) for im in images]
            cats = [c for _, c in pairs if c is not None]
            if len(cats) < len(grey):  # a split without labels: no per-category light
                flat = sky = float("nan")
            else:
                flat, sky = _grey_of(grey, cats, FLAT), _grey_of(grey, cats, SKY)
            print(
                f"{split:6} {city:11} {len(frames):6}  {np.array2string(rgb, precision=1):22}"
                f" {rgb.mean():5.1f} {contrast:9.1f} {flat:6.1f} {sky:6.1f}"
            )


if __name__ == "__main__":
    main()
