"""Tiny CamVid folders in both source layouts, for the importer tests (never ../shared data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# The original release's label_colors.txt (32 classes), as Cambridge distributes it.
LABEL_COLORS = """64 128 64\tAnimal
192 0 128\tArchway
0 128 192\tBicyclist
0 128 64\tBridge
128 0 0\tBuilding
64 0 128\tCar
64 0 192\tCartLuggagePram
192 128 64\tChild
192 192 128\tColumn_Pole
64 64 128\tFence
128 0 192\tLaneMkgsDriv
192 0 64\tLaneMkgsNonDriv
128 128 64\tMisc_Text
192 0 192\tMotorcycleScooter
128 64 64\tOtherMoving
64 192 128\tParkingBlock
64 64 0\tPedestrian
128 64 128\tRoad
128 128 192\tRoadShoulder
0 0 192\tSidewalk
192 128 128\tSignSymbol
128 128 128\tSky
64 128 192\tSUVPickupTruck
0 0 64\tTrafficCone
0 64 64\tTrafficLight
192 64 128\tTrain
128 128 0\tTree
192 128 192\tTruck_Bus
64 0 64\tTunnel
192 192 0\tVegetationMisc
0 0 0\tVoid
64 192 0\tWall
"""
SIZE = (32, 24)  # 4:3 like CamVid's 480x360
# SegNet layout: folder -> frames (drive 0016E5 in both train and val, as in CamVid)
SEGNET_FRAMES = {
    "train": ["0001TP_006690", "0001TP_006720", "0006R0_f02370", "0016E5_00390"],
    "val": ["0016E5_07959", "0016E5_07961"],
}


def _photo(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)


def make_segnet(root: Path, seed: int = 0) -> Path:
    """SegNet 11-class layout; every annotation holds each index 0..11 (one row band each)."""
    rng = np.random.default_rng(seed)
    for folder, names in SEGNET_FRAMES.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / f"{folder}annot").mkdir(parents=True, exist_ok=True)
        for name in names:
            Image.fromarray(_photo(rng)).save(root / folder / f"{name}.png")
            index = (np.arange(SIZE[1])[:, None] // 2 % 12 * np.ones(SIZE[0], int)).astype(np.uint8)
            Image.fromarray(np.roll(index, int(rng.integers(12)), axis=0)).save(
                root / f"{folder}annot" / f"{name}.png"
            )
    return root


def colour_table() -> list[tuple[tuple[int, int, int], str]]:
    """(RGB, class name) of every line of LABEL_COLORS."""
    rows = []
    for line in LABEL_COLORS.strip().splitlines():
        r, g, b, name = line.split()
        rows.append(((int(r), int(g), int(b)), name))
    return rows


def make_colour(root: Path, names: tuple[str, ...] = ("0001TP_006690", "Seq05VD_f00000")) -> Path:
    """Original release: label_colors.txt, 701_StillsRaw_full/, LabeledApproved_full/*_L.png."""
    rng = np.random.default_rng(1)
    (root / "701_StillsRaw_full").mkdir(parents=True, exist_ok=True)
    (root / "LabeledApproved_full").mkdir(parents=True, exist_ok=True)
    (root / "label_colors.txt").write_text(LABEL_COLORS)
    colours = np.array([rgb for rgb, _ in colour_table()], np.uint8)
    for i, name in enumerate(names):
        Image.fromarray(_photo(rng)).save(root / "701_StillsRaw_full" / f"{name}.png")
        # every one of the 32 colours appears: one per pixel of the first row, cycling
        index = (np.arange(SIZE[0] * SIZE[1]).reshape(SIZE[1], SIZE[0]) + i) % len(colours)
        Image.fromarray(colours[index]).save(root / "LabeledApproved_full" / f"{name}_L.png")
    return root
