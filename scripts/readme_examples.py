"""Render the example grid of the README: synthetic frames | colour masks, several cities.

Run: `uv run python scripts/readme_examples.py [--out docs/figures/synth_examples.png]`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from cityseg.data.synth import COLOR_LUT, city_plan, frame_seed, render_frame


def main() -> None:
    """Render two frames of each of six cities (4 train, 1 val, 1 test) into one PNG grid."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/figures/synth_examples.png"))
    parser.add_argument("--size", default="512x256", help="frame size WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cities", type=int, default=8)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    plan = city_plan(args.cities, args.seed)
    # four training cities and the held-out val and test cities (shown with their content labels)
    styles = plan["train"][:4] + plan["val"][:1] + plan["test"][:1]
    rows = []
    for style in styles:
        for frame in range(2):
            image, label_ids, _ = render_frame(
                style, frame_seed(args.seed, style.index, frame), (width, height)
            )
            rows.append(np.concatenate([image, COLOR_LUT[label_ids][..., :3]], axis=1))
    pairs = [np.concatenate(rows[i : i + 2], axis=1) for i in range(0, len(rows), 2)]
    grid = np.concatenate(pairs, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(args.out, optimize=True)
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]}): {[s.name for s in styles]}")


if __name__ == "__main__":
    main()
