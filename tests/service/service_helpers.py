"""Helpers shared by the service tests: a fake predictor and image encoders."""

from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image


class FakePredictor:
    """Category = red channel // 32, so every image has a known, image-specific mask."""

    name = "fake_model"
    runtime = "fake"
    input_size = (64, 32)

    def __init__(self, delay_s: float = 0.0) -> None:
        self.metrics = {"name": "fake_model", "test": {"miou": 0.5}}
        self.delay_s = delay_s
        self.calls = 0

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Categories from the red channel."""
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        return expected_mask(image)


def expected_mask(image: np.ndarray) -> np.ndarray:
    """What FakePredictor answers for `image`."""
    return (image[..., 0] // 32).astype(np.uint8)


def png_bytes(array: np.ndarray, **save: object) -> bytes:
    """Encode an array (or use mode as given) as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **save)
    return buffer.getvalue()


def random_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Random RGB uint8 (H, W, 3)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
