"""Bounded memory and connections: admission before the body, timeouts, quiet aborts.

Each test runs a real uvicorn server (in a thread, fake model) and talks to it over sockets,
because what is tested is what a hostile client does with a connection.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import (
    FakePredictor,
    png_bytes,
    random_image,
    raw_request,
    read_status,
    running,
)

from cityseg.service import imaging
from cityseg.service.app import create_app
from cityseg.service.settings import Settings


class GatedPredictor(FakePredictor):
    """Holds every prediction until `gate` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.gate = threading.Event()

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Wait for the gate, then answer like FakePredictor."""
        self.started.set()
        self.gate.wait(30)
        return super().predict(image)


def test_overload_is_refused_before_the_body_is_read() -> None:
    # One request in the model, one waiting (1 active slot, room for 1): the third is answered
    # 503 at once, although its body never arrives; reading it first would wait forever.
    predictor = GatedPredictor()
    app = create_app(Settings(max_active=1, max_queue=1, max_batch=1), predictor=predictor)
    payload = png_bytes(random_image(8, 8))
    with running(app) as url, ThreadPoolExecutor(2) as pool:
        busy = pool.submit(httpx.post, f"{url}/v1/segment", content=payload, timeout=30)
        assert predictor.started.wait(10)  # the first request holds the only slot
        waiting = pool.submit(httpx.post, f"{url}/v1/segment", content=payload, timeout=30)
        time.sleep(0.5)  # the second one is admitted and waits
        try:
            started = time.monotonic()
            head = (
                "POST /v1/segment HTTP/1.1\nHost: x\nContent-Type: image/png\nContent-Length: 5000"
            )
            with raw_request(url, head) as sock:
                sock.settimeout(3.0)
                assert read_status(sock) == 503
            assert time.monotonic() - started < 3.0
        finally:
            predictor.gate.set()
        assert busy.result().status_code == waiting.result().status_code == 200


def test_at_most_max_active_images_are_held_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Count the decoded images alive at any time: admission must keep it at max_active
    # however many clients upload together.
    alive, peak, lock = [0], [0], threading.Lock()
    decode = imaging.decode_image

    def counting_decode(*args: object, **kwargs: object) -> np.ndarray:
        image = decode(*args, **kwargs)  # type: ignore[arg-type]
        with lock:
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])

        def freed() -> None:
            with lock:
                alive[0] -= 1

        weakref.finalize(image, freed)
        return image

    monkeypatch.setattr(imaging, "decode_image", counting_decode)
    app = create_app(Settings(max_active=2, max_queue=16), predictor=FakePredictor(delay_s=0.1))
    payload = png_bytes(random_image(64, 32))
    with running(app) as url, ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.post(f"{url}/v1/segment", content=payload, timeout=30),
                range(16),
            )
        )
    assert [a.status_code for a in answers] == [200] * 16
    assert peak[0] == 2


def test_pixel_limit_follows_the_memory_budget() -> None:
    from cityseg.service.settings import BYTES_PER_PIXEL

    settings = Settings(memory_budget_mb=1, max_active=2)
    assert settings.max_pixels == 2**20 // (2 * BYTES_PER_PIXEL) == 32768
    assert Settings(memory_budget_mb=1, max_active=2, max_pixels=10).max_pixels == 10
    app = create_app(settings, predictor=FakePredictor())
    with TestClient(app) as client:
        small = client.post("/v1/segment", content=png_bytes(random_image(160, 100)))
        large = client.post("/v1/segment", content=png_bytes(random_image(200, 200)))
    assert small.status_code == 200
    assert large.status_code == 413 and "32768" in large.json()["detail"]


def test_memory_budget_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from cityseg.service.settings import BYTES_PER_PIXEL

    monkeypatch.setenv("CITYSEG_MEMORY_BUDGET_MB", "64")
    monkeypatch.setenv("CITYSEG_MAX_ACTIVE", "1")
    assert Settings().max_pixels == 64 * 2**20 // BYTES_PER_PIXEL


def test_incomplete_body_times_out_with_408_and_closes() -> None:
    app = create_app(Settings(body_timeout_s=0.3), predictor=FakePredictor())
    with running(app) as url:
        head = "POST /v1/segment HTTP/1.1\nHost: x\nContent-Type: image/png\nContent-Length: 1000"
        sock = raw_request(url, head, b"\x89PNG\r\n")  # 1000 bytes announced, 6 sent
        sock.settimeout(3.0)
        with sock:
            assert read_status(sock) == 408
            while sock.recv(4096):  # the server closes the connection after its answer
                pass


def test_connections_beyond_the_limit_get_503() -> None:
    from cityseg.service.app import uvicorn_options

    settings = Settings(max_connections=3)
    options = uvicorn_options(settings)
    assert options["limit_concurrency"] == 3
    app = create_app(settings, predictor=FakePredictor())
    with running(app, limit_concurrency=options["limit_concurrency"]) as url:
        # uvicorn counts the connection asking too: 2 open ones leave no room for a third.
        idle = [raw_request(url, "GET /health HTTP/1.1\nHost: x") for _ in range(2)]
        for sock in idle:
            assert read_status(sock) == 200  # answered, and kept open (keep-alive)
        try:
            assert httpx.get(f"{url}/health", timeout=5).status_code == 503
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.2)
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200


def test_client_disconnecting_mid_upload_logs_one_quiet_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(Settings(), predictor=FakePredictor())
    with running(app) as url:
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            head = "POST /v1/segment HTTP/1.1\nHost: x\nContent-Type: image/png\nContent-Length: 100000"
            raw_request(url, head, b"\x89PNG" + b"\x00" * 2000).close()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                "disconnected" in r.getMessage() for r in caplog.records
            ):
                time.sleep(0.05)
            time.sleep(0.3)  # let any traceback that would follow arrive too
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    assert noisy == [], [r.getMessage() for r in noisy]
    about_it = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(about_it) == 1 and about_it[0].name.startswith("cityseg")
