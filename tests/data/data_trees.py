"""Hand-made tiny Cityscapes trees for the data tests (bad inputs need hand-made files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cityseg.data.labels import LABEL_IDS

VALID_IDS = np.array([i & 0xFF for i in LABEL_IDS], dtype=np.uint8)


def write_frame(
    root: Path,
    split: str,
    city: str,
    seq: int,
    frame: int,
    *,
    size: tuple[int, int] = (32, 16),
    rng: np.random.Generator | None = None,
    image: bool = True,
    label: bool = True,
) -> tuple[Path, Path]:
    """Write one random image + valid labelIds PNG (+ an ignored _color.png) in the layout."""
    rng = rng or np.random.default_rng(seq * 1000 + frame)
    stem = f"{city}_{seq:06d}_{frame:06d}"
    img_path = root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
    lab_path = root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"
    width, height = size
    if image:
        img_path.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(img_path)
    if label:
        lab_path.parent.mkdir(parents=True, exist_ok=True)
        ids = rng.choice(VALID_IDS, size=(height, width))
        Image.fromarray(ids.astype(np.uint8)).save(lab_path)
        Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(
            lab_path.with_name(f"{stem}_gtFine_color.png")
        )
    return img_path, lab_path


def make_tree(
    root: Path,
    cities: dict[str, list[str]] | None = None,
    frames: int = 3,
    size: tuple[int, int] = (32, 16),
) -> Path:
    """A valid tree: `cities` = {split: [city, ...]}, `frames` frames per city."""
    cities = cities or {"train": ["aachen", "bochum", "cologne", "dresden"], "val": ["frankfurt"]}
    for split, names in cities.items():
        for c, city in enumerate(names):
            for f in range(frames):
                write_frame(root, split, city, c, f, size=size)
    return root
