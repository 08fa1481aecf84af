"""Service settings: defaults here, overridden by `CITYSEG_*` environment variables or the CLI."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the service can be told; `CITYSEG_RUN=runs/x` sets `run`, and so on.

    Example:
        >>> Settings(run=Path("runs/unet_mini_256x128_ce"), api_key="secret").max_pixels
        40000000
    """

    model_config = SettingsConfigDict(env_prefix="CITYSEG_", extra="ignore")

    run: Path | None = None  # run folder or exported .tflite/.onnx; None = best run in runs_dir
    runs_dir: Path = Path("runs")  # where the best run is looked for when `run` is not given
    # Back end: auto (a run's fastest export that met parity, else Keras) | keras | litert | onnx
    runtime: str = "auto"
    manifest: Path | None = None  # split manifest for /v1/samples; None = from the run's config
    host: str = "127.0.0.1"  # bind address of `cityseg serve`
    port: int = Field(default=8000, ge=0, le=65535)  # bind port of `cityseg serve`
    api_key: str | None = None  # when set, /v1/* requires the header X-API-Key with this value
    cors_origins: list[str] = []  # origins allowed by CORS; empty = closed (same origin only)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, gt=0)  # larger bodies get 413
    max_pixels: int = Field(
        default=40_000_000, gt=0
    )  # larger images get 413 before any pixel is decoded
    max_regions: int = Field(
        default=20, ge=0
    )  # bounding boxes returned per category (largest first)
    max_queue: int = Field(
        default=32, gt=0
    )  # requests waiting for the model; more get 503 (retry later)
    max_batch: int = Field(
        default=4, ge=1
    )  # queued requests run through the model together at most
