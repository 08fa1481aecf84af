"""Aspect-preserving resizing shared by the loader and every runtime.

Images are resized bilinearly, label and prediction masks with nearest neighbour (a
bilinear label would invent classes on boundaries). A frame whose aspect differs from
the model's is never squashed: it is scaled to fit and padded (`letterbox`), and the
padding is cropped off the prediction again (`unletterbox`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB uint8 image (H, W, 3) to `size` = (width, height), bilinear."""
    if image.shape[1] == size[0] and image.shape[0] == size[1]:
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a label/category mask (H, W) to `size` = (width, height), nearest neighbour."""
    if mask.shape[1] == size[0] and mask.shape[0] == size[1]:
        return mask
    return np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))


@dataclass(frozen=True)
class Box:
    """Where the resized content sits inside the letterboxed canvas."""

    left: int
    top: int
    width: int
    height: int


def fit_box(image_size: tuple[int, int], canvas: tuple[int, int]) -> Box:
    """The largest box of the image's aspect inside `canvas`, centred. Sizes are (w, h)."""
    scale = min(canvas[0] / image_size[0], canvas[1] / image_size[1])
    width = max(1, min(canvas[0], round(image_size[0] * scale)))
    height = max(1, min(canvas[1], round(image_size[1] * scale)))
    return Box((canvas[0] - width) // 2, (canvas[1] - height) // 2, width, height)


def letterbox(image: np.ndarray, size: tuple[int, int], *, fill: int = 0) -> tuple[np.ndarray, Box]:
    """Scale `image` to fit `size` = (w, h) keeping its aspect; pad the rest with `fill`."""
    box = fit_box((image.shape[1], image.shape[0]), size)
    resized = (resize_image if image.ndim == 3 else resize_mask)(image, (box.width, box.height))
    if (box.width, box.height) == size:
        return resized, box
    canvas = np.full((size[1], size[0], *image.shape[2:]), fill, dtype=image.dtype)
    canvas[box.top : box.top + box.height, box.left : box.left + box.width] = resized
    return canvas, box


def unletterbox(mask: np.ndarray, box: Box, original: tuple[int, int]) -> np.ndarray:
    """Crop the padding off a mask predicted on a letterboxed canvas and resize it back."""
    crop = mask[box.top : box.top + box.height, box.left : box.left + box.width]
    return resize_mask(np.ascontiguousarray(crop), original)
