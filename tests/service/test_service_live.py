"""Against a real uvicorn server: 8 concurrent clients, and the load-test client of the bench."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from service_helpers import expected_mask, png_bytes, random_image

from cityseg.bench.serve import load_test, percentiles, run_bench


def test_eight_concurrent_clients_each_get_their_own_mask(live_server: str) -> None:
    images = [random_image(40 + i, 20 + i, seed=100 + i) for i in range(8)]

    def segment(image: np.ndarray) -> tuple[np.ndarray, int]:
        response = httpx.post(
            f"{live_server}/v1/segment?format=categories",
            files={"file": ("x.png", png_bytes(image), "image/png")},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        mask = np.asarray(Image.open(io.BytesIO(response.content)))
        return mask, int(response.headers["X-Batch-Size"])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(segment, images))
    for image, (mask, _) in zip(images, results, strict=True):
        np.testing.assert_array_equal(mask, expected_mask(image))


def test_load_test_reports_latency_and_throughput(live_server: str) -> None:
    payload = png_bytes(random_image(32, 16))
    result = load_test(live_server, payload, requests=12, concurrency=3, timeout_s=30)
    assert result["completed"] == 12 and result["errors"] == 0
    assert result["throughput_rps"] > 0
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]


def test_load_test_counts_errors(live_server: str) -> None:
    result = load_test(live_server, b"junk", requests=4, concurrency=2, timeout_s=30)
    assert result["completed"] == 0 and result["errors"] == 4
    assert result["error_kinds"] == {"400": 4}


def test_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    stats = percentiles(values)
    assert stats["p50"] == 50.5 and stats["max"] == 100.0 and stats["p99"] == 99.01
    assert percentiles([])["p50"] is None


def test_run_bench_starts_measures_and_stops_a_server(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"")  # the fake factory never opens it
    helpers = str(Path(__file__).parent)
    pythonpath = os.pathsep.join(p for p in (helpers, os.environ.get("PYTHONPATH")) if p)
    report = run_bench(
        run=run,
        requests=8,
        concurrency=2,
        size=(64, 32),
        factory="service_helpers:create_fake_app",
        # A small budget: 8 MiB over 4 active requests = 131072 pixels per image at most.
        env={"PYTHONPATH": pythonpath, "CITYSEG_MEMORY_BUDGET_MB": "8"},
        startup_timeout_s=60,
        worst_case_uploads=16,
    )
    assert report["model"] == "fake_model" and report["completed"] == 8 and report["errors"] == 0
    assert report["image"] == {"source": "synthetic JPEG", "width": 64, "height": 32,
                               "bytes": report["image"]["bytes"]}  # fmt: skip
    assert report["throughput_rps"] > 0 and report["latency_ms"]["p50"] > 0
    assert report["server_peak_rss_mb"] > 10
    assert report["server_peak_rss_mb"] >= report["server_sampled_peak_rss_mb"] * 0.99
    worst = report["worst_case"]
    assert worst["uploads"] == 16 and worst["statuses"] == {"200": 16}
    assert 131072 - 362 < worst["image"]["pixels"] <= 131072  # at the server's pixel limit
    assert worst["image"]["bytes"] < 5_000  # a few bytes that decode to the most memory
    assert worst["peak_rss_mb"] >= worst["idle_rss_mb"] > 10


def test_worst_case_png_is_a_flat_image_at_the_limit() -> None:
    from cityseg.bench.serve import worst_case_png

    data, width, height = worst_case_png(10_000)
    image = np.asarray(Image.open(io.BytesIO(data)))
    assert image.shape == (100, 100, 3) == (height, width, 3)
    assert (image == (90, 80, 90)).all()
    assert worst_case_png(10_001)[1:] == (100, 100)
