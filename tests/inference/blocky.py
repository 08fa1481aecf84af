"""Blocky test scenes: random categories in square blocks, drawn in palette colours."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from cityseg.data.cityscapes import Sample
from cityseg.data.labels import NUM_CLASSES, PALETTE, categories_to_label_ids, colorize


def blocks(rng: np.random.Generator, rows: int, cols: int, block: int) -> np.ndarray:
    """Categories `uint8 (rows * block, cols * block)`: one random category per block."""
    coarse = rng.integers(0, NUM_CLASSES, size=(rows, cols), dtype=np.uint8)
    return np.kron(coarse, np.ones((block, block), np.uint8))


def scene(
    rng: np.random.Generator, height: int, width: int, block: int, noise: float = 12.0
) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image, categories) of `height x width`: blocks in palette colours plus noise.

    Blocks are drawn to cover the frame and cut to it when `block` does not divide it.
    """
    cats = blocks(rng, -(-height // block), -(-width // block), block)[:height, :width]
    image = np.clip(colorize(cats) + rng.normal(0, noise, size=(height, width, 3)), 0, 255)
    return image.astype(np.uint8), cats


def palette_truth(batch: np.ndarray) -> np.ndarray:
    """Each pixel's category, read back from its palette colour."""
    distance = ((batch[..., None, :] - PALETTE.astype(np.float32)) ** 2).sum(-1)
    return distance.argmin(-1)


def half_right(left: bool) -> Callable[[np.ndarray], np.ndarray]:
    """A back end sure and right on one half of the frame, unsure and wrong on the other."""

    def backend(batch: np.ndarray) -> np.ndarray:
        truth = palette_truth(batch)
        wrong = (truth + 1) % NUM_CLASSES
        columns = np.arange(batch.shape[2]) < batch.shape[2] // 2
        sure = columns if left else ~columns
        answer = np.where(sure[None, None, :], truth, wrong)
        strength = np.where(sure, 10.0, 1.0)[None, None, :, None]
        return (np.eye(NUM_CLASSES, dtype=np.float32)[answer] * strength).astype(np.float32)

    return backend


def labelled_frames(root: Path, size: tuple[int, int], count: int = 4) -> list[Sample]:
    """`count` blocky frames of `size` (width, height) in palette colours, with their labelIds."""
    rng = np.random.default_rng(0)
    out = []
    for k in range(count):
        cats = blocks(rng, size[1] // 4, size[0] // 4, block=4)
        stem = f"x_000000_{k:06d}"
        image, label = root / f"{stem}_leftImg8bit.png", root / f"{stem}_gtFine_labelIds.png"
        Image.fromarray(colorize(cats)).save(image)
        Image.fromarray(categories_to_label_ids(cats).astype(np.uint8)).save(label)
        out.append(Sample(image=image, label=label, city="x", split="val", stem=stem))
    return out
