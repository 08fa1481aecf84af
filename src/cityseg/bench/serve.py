"""`cityseg bench serve`: throughput, latency percentiles and memory of the running service.

The server runs in its own process (uvicorn, 127.0.0.1, a free port) so that its peak
memory is its own; N requests are sent by C concurrent httpx clients, bounded in count
and in time. A last phase sends the worst case at once: K uploads of a flat PNG at the
server's pixel limit (a few kilobytes each, the most memory per byte) asking for the overlay,
and reports the server's peak RSS against its idle RSS.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles(values: list[float]) -> dict[str, float | None]:
    """mean, p50, p95, p99 and max of latencies in ms (None when there are none)."""
    if not values:
        return {"mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    array = np.asarray(values, dtype=np.float64)
    p50, p95, p99 = np.percentile(array, [50, 95, 99])
    return {
        "mean": round(float(array.mean()), 2),
        "p50": round(float(p50), 2),
        "p95": round(float(p95), 2),
        "p99": round(float(p99), 2),
        "max": round(float(array.max()), 2),
    }


async def _load(
    url: str,
    payload: bytes,
    content_type: str,
    requests: int,
    concurrency: int,
    timeout_s: float,
    max_seconds: float,
    headers: dict[str, str],
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    inference: list[float] = []
    batch_sizes: list[int] = []
    errors: Counter[str] = Counter()
    next_index = 0
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:

        async def one_client() -> None:
            nonlocal next_index
            while next_index < requests and time.monotonic() < deadline:
                next_index += 1
                started = time.perf_counter()
                try:
                    response = await client.post(
                        f"{url}/v1/segment?format=categories",
                        content=payload,
                        headers={"Content-Type": content_type, **headers},
                    )
                except httpx.HTTPError as err:
                    errors[type(err).__name__] += 1
                    continue
                elapsed = (time.perf_counter() - started) * 1000.0
                if response.status_code != 200:
                    errors[str(response.status_code)] += 1
                    continue
                latencies.append(elapsed)
                inference.append(float(response.headers.get("X-Inference-Ms", "nan")))
                batch_sizes.append(int(response.headers.get("X-Batch-Size", "1")))

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {
        "requests": requests,
        "concurrency": concurrency,
        "sent": next_index,
        "completed": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "wall_s": round(wall, 3),
        "throughput_rps": round(len(latencies) / wall, 3) if wall > 0 else None,
        "latency_ms": percentiles(latencies),
        "server_inference_ms_mean": round(float(np.nanmean(inference)), 2) if inference else None,
        "mean_batch_size": round(float(np.mean(batch_sizes)), 2) if batch_sizes else None,
    }


def load_test(
    url: str,
    payload: bytes,
    content_type: str = "image/png",
    *,
    requests: int = 100,
    concurrency: int = 4,
    timeout_s: float = 60.0,
    max_seconds: float = 600.0,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Send `requests` POSTs of `payload` to `url`/v1/segment from `concurrency` clients."""
    if requests < 1 or concurrency < 1:
        raise ValueError("requests and concurrency must be >= 1")
    return asyncio.run(
        _load(
            url,
            payload,
            content_type,
            requests,
            concurrency,
            timeout_s,
            max_seconds,
            headers or {},
        )
    )


class PeakMemory:
    """Samples the RSS of a process (and its children) every 50 ms; also reads VmHWM."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()

    def _sample(self) -> None:
        import psutil

        try:
            rss = self.process.memory_info().rss
            for child in self.process.children(recursive=True):
                rss += child.memory_info().rss
        except psutil.Error:
            return
        self.peak_bytes = max(self.peak_bytes, rss)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def high_water_mark(self) -> int | None:
        """The kernel's own peak RSS of the process (Linux VmHWM), exact between samples."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None


def worst_case_png(max_pixels: int) -> tuple[bytes, int, int]:
    """A flat RGB PNG of about `max_pixels` pixels (not more), made row by row: tiny to send,
    as big as the server allows once decoded."""
    width = max(1, math.isqrt(max_pixels))
    height = max(1, max_pixels // width)
    row = b"\x00" + bytes((90, 80, 90)) * width  # filter byte + one row of road grey
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes((8, 2, 0, 0, 0))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
    return png + chunk(b"IEND", b""), width, height


def reset_high_water_mark(pid: int) -> bool:
    """Reset the kernel's peak RSS of `pid` (Linux clear_refs 5); False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def worst_case(
    url: str, pid: int, max_pixels: int, uploads: int, timeout_s: float, headers: dict[str, str]
) -> dict[str, Any]:
    """`uploads` flat PNGs at the pixel limit, all at once, format=overlay; server RSS peak."""
    import psutil

    payload, width, height = worst_case_png(max_pixels)
    time.sleep(0.5)  # let the load phase's buffers go
    idle = psutil.Process(pid).memory_info().rss
    exact = reset_high_water_mark(pid)
    with PeakMemory(pid) as memory:

        async def send_all() -> list[tuple[int | str, float]]:
            import httpx

            limits = httpx.Limits(max_connections=uploads)
            async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:

                async def one() -> tuple[int | str, float]:
                    started = time.perf_counter()
                    try:
                        response = await client.post(
                            f"{url}/v1/segment?format=overlay",
                            content=payload,
                            headers={"Content-Type": "image/png", **headers},
                        )
                    except httpx.HTTPError as err:
                        return type(err).__name__, time.perf_counter() - started
                    return response.status_code, time.perf_counter() - started

                return await asyncio.gather(*(one() for _ in range(uploads)))

        started = time.perf_counter()
        answers = asyncio.run(send_all())
        wall = time.perf_counter() - started
        hwm = memory.high_water_mark() if exact else None
    peak = max(hwm or 0, memory.peak_bytes)
    statuses = Counter(str(status) for status, _ in answers)
    return {
        "uploads": uploads,
        "format": "overlay",
        "image": {
            "width": width,
            "height": height,
            "pixels": width * height,
            "bytes": len(payload),
        },
        "statuses": dict(sorted(statuses.items())),
        "wall_s": round(wall, 2),
        "latency_s_max": round(max(seconds for _, seconds in answers), 2),
        "idle_rss_mb": round(idle / 2**20, 1),
        "peak_rss_mb": round(peak / 2**20, 1),
        "peak_over_idle_mb": round((peak - idle) / 2**20, 1),
        "peak_method": "VmHWM reset before the phase" if exact else "psutil sampled every 50 ms",
    }


def bench_image(model_path: Path, size: tuple[int, int]) -> tuple[bytes, str, dict[str, Any]]:
    """The request payload: the first test sample of the run, else a synthetic street-like JPEG."""
    from PIL import Image

    from cityseg.service.samples import SampleStore, manifest_for

    manifest = manifest_for(model_path)
    if manifest is not None and manifest.is_file():
        try:
            store = SampleStore.from_manifest(manifest)
        except Exception as err:  # fall through to the synthetic image, saying why
            log.warning("cannot read %s (%s): using a synthetic image", manifest, err)
        else:
            if len(store):
                ref = store.refs[0]
                data = ref.image.read_bytes()
                with Image.open(ref.image) as image:
                    width, height = image.size
                info = {"source": f"test sample {ref.name}", "width": width, "height": height}
                return data, "image/png", {**info, "bytes": len(data)}
    width, height = size
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    cols = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    sky, road = np.array([110, 150, 200]), np.array([90, 80, 90])
    image = np.where(rows < 0.5, sky, road) * (0.7 + 0.3 * cols)
    buffer = io.BytesIO()
    Image.fromarray(image.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    info = {"source": "synthetic JPEG", "width": width, "height": height, "bytes": len(data)}
    return data, "image/jpeg", info


def _wait_ready(url: str, process: subprocess.Popen, timeout_s: float) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} while starting")
        try:
            response = httpx.get(f"{url}/health", timeout=2)
            if response.status_code == 200:
                return httpx.get(f"{url}/v1/model", timeout=5).json()
            if response.json().get("status") == "error":
                raise RuntimeError(f"the server failed to load the model: {response.text}")
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the server was not ready within {timeout_s:.0f} s")


def run_bench(
    *,
    run: Path | None = None,
    requests: int = 200,
    concurrency: int = 4,
    size: tuple[int, int] = (1024, 512),
    timeout_s: float = 60.0,
    max_seconds: float = 600.0,
    startup_timeout_s: float = 180.0,
    factory: str = "cityseg.service.app:create_app",
    env: dict[str, str] | None = None,
    worst_case_uploads: int = 16,
    worst_case_timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Start the service in a subprocess on a free port, load it, stop it, report.

    After the load test, `worst_case_uploads` concurrent worst-case uploads (0: skipped)
    measure the server's peak memory against idle.

    `factory` (module:function returning the app) and `env` exist for tests, which start a
    server with a fake model instead of TensorFlow.
    """
    from cityseg.service.app import resolve_model_path
    from cityseg.service.settings import Settings

    model_path = resolve_model_path(Settings(run=run))
    payload, content_type, image_info = bench_image(model_path, size)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_env = {**os.environ, **(env or {}), "CITYSEG_RUN": str(model_path)}
    command = [
        sys.executable, "-m", "uvicorn", factory, "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    load_before = os.getloadavg()  # other jobs on the machine skew every figure: say so
    process = subprocess.Popen(command, env=server_env)
    try:
        with PeakMemory(process.pid) as memory:
            started = time.perf_counter()
            model = _wait_ready(url, process, startup_timeout_s)
            startup_s = time.perf_counter() - started
            # One untimed request: the first call traces the model graph.
            warm = load_test(
                url, payload, content_type, requests=1, concurrency=1, timeout_s=timeout_s
            )
            result = load_test(
                url, payload, content_type, requests=requests, concurrency=concurrency,
                timeout_s=timeout_s, max_seconds=max_seconds,
            )  # fmt: skip
            hwm = memory.high_water_mark()
        peak = hwm if hwm is not None else memory.peak_bytes
        worst = None
        if worst_case_uploads > 0:
            max_pixels = int(model.get("limits", {}).get("max_pixels") or 40_000_000)
            worst = worst_case(
                url, process.pid, max_pixels, worst_case_uploads, worst_case_timeout_s, {}
            )
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return {
        "benchmark": "serve",
        "model": model.get("name"),
        "runtime": model.get("runtime"),
        "input_size": model.get("input_size"),
        "model_path": str(model_path),
        "image": image_info,
        "startup_s": round(startup_s, 2),
        "warmup_ms": warm["latency_ms"]["max"],
        **result,
        "server_peak_rss_mb": round(peak / 2**20, 1),
        "server_peak_rss_method": "VmHWM" if hwm is not None else "psutil sampled every 50 ms",
        "server_sampled_peak_rss_mb": round(memory.peak_bytes / 2**20, 1),
        "worst_case": worst,
        "cpu_cores": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "machine": platform.machine(),
        "python": platform.python_version(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }
