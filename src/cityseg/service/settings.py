"""Service settings: defaults here, overridden by `CITYSEG_*` environment variables or the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Peak bytes one request holds per pixel while it is decoded, segmented and rendered: Pillow's
# 4-byte RGB and the array copied out of it, the mask, its colours and the PNG being encoded.
# Measured with `cityseg bench serve` (worst-case phase) and `tests/service/test_service_memory.py`.
BYTES_PER_PIXEL = 16


def pixel_limit(memory_budget_mb: int, max_active: int) -> int:
    """The largest image `max_active` requests can hold at once within `memory_budget_mb`."""
    return memory_budget_mb * 2**20 // (max_active * BYTES_PER_PIXEL)


class Settings(BaseSettings):
    """Everything the service can be told; `CITYSEG_RUN=runs/x` sets `run`, and so on.

    Example:
        >>> Settings(run=Path("runs/unet_mini_256x128_ce"), api_key="secret").max_pixels
        33554432
    """

    model_config = SettingsConfigDict(env_prefix="CITYSEG_", extra="ignore")

    run: Path | None = None  # run folder or exported .tflite/.onnx; None = best run in runs_dir
    runs_dir: Path = Path("runs")  # where the best run is looked for when `run` is not given
    # Back end: auto (a run's fastest export that met parity, else Keras) | keras | litert | onnx
    runtime: str = "auto"
    # Test-time augmentation: none | hflip (each frame and its mirror, twice the model time) |
    # scales (the frame zoomed by each of TTA_SCALES, tiled; ~5x the model time) | hflip_scales
    tta: Literal["none", "hflip", "scales", "hflip_scales"] = "none"
    manifest: Path | None = None  # split manifest for /v1/samples; None = from the run's config
    host: str = "127.0.0.1"  # bind address of `cityseg serve`
    port: int = Field(default=8000, ge=0, le=65535)  # bind port of `cityseg serve`
    # When set, /v1/* requires the header X-API-Key with this value; set but empty is refused.
    api_key: str | None = None
    cors_origins: list[str] = []  # origins allowed by CORS; empty = closed (same origin only)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, gt=0)  # larger bodies get 413
    # Memory the images in flight may take (MiB); sets the default pixel limit.
    memory_budget_mb: int = Field(default=2048, gt=0)
    # Requests decoding, segmenting or rendering at once; admitted ones beyond it wait with
    # only their compressed body (at most max_upload_bytes) in memory.
    max_active: int = Field(default=4, gt=0)
    # Larger images get 413 before any pixel is decoded; None = memory_budget_mb / max_active.
    max_pixels: int | None = Field(default=None, gt=0)
    max_regions: int = Field(
        default=20, ge=0
    )  # bounding boxes returned per category (largest first)
    max_queue: int = Field(
        default=32, ge=0
    )  # requests admitted beyond max_active, waiting unread; more get 503 at once
    max_batch: int = Field(
        default=4, ge=1
    )  # queued requests run through the model together at most
    body_timeout_s: float = Field(default=60.0, gt=0)  # whole body within this, else 408
    max_connections: int = Field(default=64, gt=0)  # open connections; more get 503 (uvicorn)
    keep_alive_s: int = Field(default=5, gt=0)  # idle keep-alive connections closed after

    @field_validator("api_key")
    @classmethod
    def _key_not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError(
                "CITYSEG_API_KEY is set but empty, which would turn authentication off: "
                "give it a secret value, or unset it to serve without a key"
            )
        return value

    @model_validator(mode="after")
    def _default_pixel_limit(self) -> Self:
        if self.max_pixels is None:
            self.max_pixels = pixel_limit(self.memory_budget_mb, self.max_active)
        return self

    @property
    def pixel_limit(self) -> int:
        """`max_pixels` as set, or as derived from the memory budget."""
        assert self.max_pixels is not None  # filled in by the validator
        return self.max_pixels
