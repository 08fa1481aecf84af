"""Build the FastAPI app: settings, model loading (lifespan), routers, errors, static page.

Example:
    >>> from cityseg.service.app import create_app
    >>> from cityseg.service.settings import Settings
    >>> app = create_app(Settings(run="runs/unet_mini_256x128_ce"))  # uvicorn.run(app)
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.requests import ClientDisconnect

from cityseg.service.admission import Admission
from cityseg.service.imaging import ImageError
from cityseg.service.samples import SampleStore, manifest_for
from cityseg.service.security import SecurityHeadersMiddleware, swagger_assets_dir
from cityseg.service.settings import Settings
from cityseg.service.state import STATIC_DIR, ServiceState
from cityseg.service.worker import InferenceWorker, PredictorLike, QueueFullError

log = logging.getLogger(__name__)

DESCRIPTION = """
Segment a street-scene image into the 8 Cityscapes categories (void, flat, construction,
object, nature, sky, human, vehicle). The mask always comes back at the image's own size,
in its displayed orientation (EXIF rotation applied).

* **Formats**: PNG, JPEG, WebP, BMP, GIF (greyscale, palette, alpha and 16-bit are converted
  to RGB). Animated images (APNG, WebP, GIF), TIFF, PDF, HEIC and the rest: 415.
* **Limits**: 20 MB per file and 33.5 megapixels per image by default (413), the pixel limit
  following from `CITYSEG_MEMORY_BUDGET_MB`; the pixel count is read from the header, before
  any pixel is decoded. The body must arrive within `CITYSEG_BODY_TIMEOUT_S` (408).
* **Errors** are JSON `{"detail": "..."}`: 400 empty / not an image / truncated, 401 API key,
  408 body too slow, 413 too large, 415 unsupported or animated, 422 bad parameter, 503 model
  loading or server full (answered before the body is read; retry after `Retry-After`).
* **API key**: when `CITYSEG_API_KEY` is set, `/v1/*` needs the header `X-API-Key`.
"""


# Longest text of one input echoed back in a 422: a 100 KB path must not come back whole.
MAX_ECHO_CHARS = 120


class NoModelError(RuntimeError):
    """No model to serve: none given and no finished run found."""


def run_score(metrics: dict[str, Any]) -> float | None:
    """The mIoU a run is ranked by: its validation mIoU only (test never chooses anything)."""
    scores = metrics.get("val")
    if isinstance(scores, dict) and isinstance(scores.get("miou"), int | float):
        value = float(scores["miou"])
        return None if math.isnan(value) else value
    return None


def find_best_run(runs_dir: Path) -> Path | None:
    """The run folder under `runs_dir` with the highest validation mIoU and a model."""
    best: tuple[float, str, Path] | None = None
    if not runs_dir.is_dir():
        return None
    for metrics_file in sorted(runs_dir.glob("*/metrics.json")):
        run = metrics_file.parent
        if not (run / "model.keras").is_file():
            continue
        try:
            score = run_score(json.loads(metrics_file.read_text()))
        except (json.JSONDecodeError, OSError) as err:
            log.warning("skipping %s: %s", metrics_file, err)
            continue
        if score is not None and (best is None or (score, run.name) > best[:2]):
            best = (score, run.name, run)
    return None if best is None else best[2]


def resolve_model_path(settings: Settings) -> Path:
    """The run folder or exported file to serve; `NoModelError` says how to make one."""
    if settings.run is not None:
        if not settings.run.exists():
            raise NoModelError(f"model not found: {settings.run} (CITYSEG_RUN / --run)")
        return settings.run
    best = find_best_run(settings.runs_dir)
    if best is None:
        raise NoModelError(
            f"no finished run under {settings.runs_dir}/ (a folder with model.keras and a "
            "metrics.json holding its val miou). Make one with `cityseg demo`, or "
            "`cityseg train --config configs/...`, or pass --run PATH."
        )
    log.info("serving the best run under %s: %s", settings.runs_dir, best)
    return best


def serving_path(path: Path, runtime: str) -> Path:
    """What to load for `path`: with runtime "auto", a run folder's fastest export that met its
    parity bar (`cityseg export` records both in the sidecar), else the run's Keras model."""
    from cityseg.inference.runtime import best_runtime

    if runtime != "auto" or not path.is_dir():
        return path
    chosen = best_runtime(path)
    if chosen != path:
        log.info("%s: serving its fastest export that met parity, %s", path, chosen.name)
    return chosen


def _load_predictor(path: Path, runtime: str, tta: str) -> PredictorLike:
    from cityseg.inference.runtime import Predictor

    predictor = Predictor.load(serving_path(path, runtime), runtime=runtime)
    predictor.tta = tta
    return predictor


def _load_samples(state: ServiceState) -> SampleStore:
    manifest = state.settings.manifest or manifest_for(state.model_path)
    if manifest is None or not manifest.is_file():
        log.warning("no split manifest (%s): /v1/samples will be empty", manifest)
        return SampleStore.empty()
    try:
        return SampleStore.from_manifest(manifest)
    except Exception as err:  # a broken manifest must not take the model down with it
        log.warning("cannot read the split manifest %s: %s", manifest, err)
        return SampleStore.empty()


def _read_metrics(state: ServiceState) -> dict[str, Any]:
    recorded = getattr(state.predictor, "metrics", None)
    if isinstance(recorded, dict) and recorded:
        return recorded
    path = state.model_path
    if path is None:
        return {}
    metrics_file = (path if path.is_dir() else path.parent) / "metrics.json"
    try:
        return json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    except json.JSONDecodeError:
        return {}


async def _start(state: ServiceState, predictor: PredictorLike | None, load_samples: bool) -> None:
    """Load the model off the event loop, so /health can answer 503 meanwhile."""
    try:
        if predictor is None:
            assert state.model_path is not None
            log.info("loading %s (runtime %s)", state.model_path, state.settings.runtime)
            predictor = await asyncio.to_thread(
                _load_predictor, state.model_path, state.settings.runtime, state.settings.tta
            )
            # The first call traces the graph (about a second); pay it before /health says ok.
            width, height = predictor.input_size
            await asyncio.to_thread(predictor.predict, np.zeros((height, width, 3), np.uint8))
        state.predictor = predictor
        state.metrics = _read_metrics(state)
        if load_samples:
            state.samples = await asyncio.to_thread(_load_samples, state)
        settings = state.settings
        state.admission = Admission(settings.max_active, settings.max_queue)
        # Only requests in an active slot reach the model, so its queue never overflows.
        state.worker = InferenceWorker(
            predictor, max_queue=settings.max_active, max_batch=settings.max_batch
        )
        log.info("model %s ready (%s)", predictor.name, predictor.runtime)
    except Exception as err:  # reported by /health; the process stays up to say why
        log.exception("model failed to load")
        state.error = f"{type(err).__name__}: {err}"


def create_app(
    settings: Settings | None = None,
    *,
    predictor: PredictorLike | None = None,
    samples: SampleStore | None = None,
) -> FastAPI:
    """The service app. Tests inject `predictor` (and `samples`) instead of loading a run."""
    from cityseg.service import routes

    settings = settings or Settings()
    model_path = settings.run if predictor is not None else resolve_model_path(settings)
    state = ServiceState(settings=settings, model_path=model_path)
    if samples is not None:
        state.samples = samples

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_start(state, predictor, load_samples=samples is None))
        if predictor is not None:
            await task  # nothing slow to wait for: be ready at once
        try:
            yield
        finally:
            task.cancel()
            if state.worker is not None:
                await asyncio.to_thread(state.worker.close)
                state.worker = None

    app = FastAPI(
        title="cityseg",
        summary="Semantic segmentation of street scenes into the 8 Cityscapes categories.",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below from local files, not from a CDN
        redoc_url=None,
    )
    app.state.service = state
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key"],
            expose_headers=["X-Model", "X-Inference-Ms", "X-Batch-Size"],
        )
    _add_error_handlers(app)
    app.include_router(routes.health_router)
    app.include_router(routes.model_router)
    app.include_router(routes.segment_router)
    app.include_router(routes.samples_router)
    app.include_router(routes.page_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_assets_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        """Swagger UI, from this server's own files."""
        return FileResponse(STATIC_DIR / "docs.html", media_type="text/html")

    return app


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How `cityseg serve` runs uvicorn: address, connection cap and keep-alive timeout."""
    return {
        "host": settings.host,
        "port": settings.port,
        # Beyond this many open connections uvicorn answers 503 at once.
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": settings.keep_alive_s,
    }


def _capped(value: Any) -> Any:
    """`value` as JSON, its strings cut to MAX_ECHO_CHARS and its lists to 8 items."""
    if isinstance(value, str):
        if len(value) <= MAX_ECHO_CHARS:
            return value
        return f"{value[:MAX_ECHO_CHARS]}… ({len(value)} characters)"
    if isinstance(value, dict):
        return {_capped(str(k)): _capped(v) for k, v in list(value.items())[:8]}
    if isinstance(value, list | tuple):
        return [_capped(v) for v in list(value)[:8]]
    return value


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI echoes each bad input whole; cap it, so the answer stays small.
        errors = jsonable_encoder(exc.errors()[:8])
        return JSONResponse({"detail": _capped(errors)}, status_code=422)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
        # Anyone can abort an upload: one quiet line, not two tracebacks per abort.
        client = request.client.host if request.client else "client"
        log.info("%s disconnected during %s %s", client, request.method, request.url.path)
        return Response(status_code=400)  # nobody is left to read it

    @app.exception_handler(ImageError)
    async def image_error(request: Request, exc: ImageError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(QueueFullError)
    async def queue_full(request: Request, exc: QueueFullError) -> JSONResponse:
        return JSONResponse(
            {"detail": f"server busy: {exc}; retry shortly"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, HTTPException):  # pragma: no cover - handled by FastAPI first
            raise exc
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)
