"""Helpers shared by the service tests: a fake predictor and image encoders."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


def street_scene(width: int = 384, height: int = 192, shift: int = 0) -> np.ndarray:
    """A cartoon street whose red channel // 32 is the fake model's category."""
    image = np.zeros((height, width, 3), np.uint8)
    image[: height * 2 // 5] = (170, 200, 235)  # sky (5)
    image[height * 2 // 5 : height * 3 // 5] = (80, 80, 85)  # construction (2)
    image[height * 3 // 5 :] = (40, 40, 48)  # flat (1)
    image[height * 3 // 10 : height * 3 // 5, : width // 6] = (140, 170, 90)  # nature (4)
    image[height // 2 : height * 4 // 5, width // 2 + shift : width * 3 // 4 + shift] = (
        240,
        30,
        40,
    )  # vehicle (7)
    image[height * 2 // 5 : height * 4 // 5, width // 4 : width // 4 + 12] = (
        205,
        120,
        100,
    )  # human (6)
    return image


def create_fake_app() -> Any:
    """App factory for a server subprocess: the fake predictor instead of TensorFlow."""
    from cityseg.service.app import create_app
    from cityseg.service.settings import Settings

    return create_app(Settings(), predictor=FakePredictor())


@contextmanager
def running(app: Any, **options: Any) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread (uvicorn `options` added); yields its base URL.

    `log_config=None` leaves logging alone, so that pytest's caplog sees uvicorn's records.
    """
    import httpx
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="info", log_config=None, **options
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    else:
        raise RuntimeError("server did not start")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def raw_request(url: str, head: str, body: bytes = b"") -> socket.socket:
    """Open a socket to `url`, send the request line and headers `head` and `body`, no more."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body)
    return sock


def read_status(sock: socket.socket) -> int:
    """The HTTP status of the response arriving on `sock` (raises on timeout)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed before a status line: {data!r}")
        data += chunk
    return int(data.split(b" ", 2)[1])
