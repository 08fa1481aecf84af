"""Blocky test scenes: random categories in square blocks, drawn in palette colours."""

from __future__ import annotations

import numpy as np

from cityseg.data.labels import NUM_CLASSES, colorize


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
