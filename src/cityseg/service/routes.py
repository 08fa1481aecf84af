"""HTTP routes, one router per resource: health, model, segment, samples, page."""

from __future__ import annotations

import asyncio
import base64
import secrets
from enum import StrEnum
from functools import partial
from typing import Annotated, Any

import anyio
import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from starlette.datastructures import UploadFile

from cityseg.data import labels
from cityseg.service import analysis, imaging
from cityseg.service.samples import SampleRef
from cityseg.service.state import STATIC_DIR, ServiceState
from cityseg.service.worker import PredictorLike, Result

# ----------------------------------------------------------------------------- dependencies


def get_state(request: Request) -> ServiceState:
    """The app's shared state."""
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def require_api_key(state: StateDep, key: Annotated[str | None, Depends(_api_key_header)]) -> None:
    """When CITYSEG_API_KEY is set, /v1/* needs the same value in the X-API-Key header."""
    expected = state.settings.api_key
    if expected and not (key and secrets.compare_digest(key.encode(), expected.encode())):
        raise HTTPException(
            401, "missing or wrong X-API-Key header", {"WWW-Authenticate": "APIKey"}
        )


def ready_state(state: StateDep) -> ServiceState:
    """The state, once the model is loaded (503 before)."""
    if not state.ready:
        raise HTTPException(
            503, state.error or "model is loading; retry shortly", {"Retry-After": "2"}
        )
    return state


ReadyDep = Annotated[ServiceState, Depends(ready_state)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "API key required and missing or wrong"},
    503: {"description": "model still loading, or too many requests waiting"},
}

# ----------------------------------------------------------------------------- health

health_router = APIRouter(tags=["health"])


@health_router.get("/health", responses={503: {"description": "model not loaded (yet, or failed)"}})
def health(state: StateDep) -> JSONResponse:
    """200 once the model is loaded and serving; 503 while loading or after a failed load."""
    if state.ready:
        assert state.predictor is not None
        return JSONResponse({"status": "ok", "model": state.predictor.name})
    status = "error" if state.error else "loading"
    return JSONResponse({"status": status, "detail": state.error}, status_code=503)


# ----------------------------------------------------------------------------- model

model_router = APIRouter(prefix="/v1", tags=["model"], dependencies=[Depends(require_api_key)])


def _categories() -> list[dict[str, Any]]:
    return [
        {"id": cid, "name": name, "color": [int(v) for v in labels.PALETTE[cid]]}
        for cid, name in enumerate(labels.CATEGORIES)
    ]


@model_router.get("/model", responses=_ERRORS)
def model_info(state: ReadyDep) -> dict[str, Any]:
    """The served model: name, categories and colours, input size, runtime, recorded metrics,
    and the upload limits."""
    predictor = state.predictor
    assert predictor is not None
    width, height = predictor.input_size
    return {
        "name": predictor.name,
        "runtime": predictor.runtime,
        "tta": getattr(predictor, "tta", "none"),
        "input_size": [width, height],
        "categories": _categories(),
        "metrics": state.metrics,
        "limits": {
            "max_upload_bytes": state.settings.max_upload_bytes,
            "max_pixels": state.settings.pixel_limit,
            "memory_budget_mb": state.settings.memory_budget_mb,
            "max_active": state.settings.max_active,
        },
    }


# ----------------------------------------------------------------------------- segment

segment_router = APIRouter(prefix="/v1", tags=["segment"], dependencies=[Depends(require_api_key)])


class OutputFormat(StrEnum):
    """What `/v1/segment` returns."""

    color = "color"
    categories = "categories"
    labelIds = "labelIds"
    overlay = "overlay"
    json = "json"


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "The image: multipart field `file`, or the raw bytes with an image "
        "content type. PNG, JPEG, WebP, BMP or a still GIF; at most 20 MB and 33.5 megapixels "
        "by default.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            **{media: _BINARY for media in imaging.ACCEPTED_MEDIA_TYPES},
            "application/octet-stream": _BINARY,
        },
    }
}
_SEGMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "PNG mask at the input's size (or JSON for format=json)",
        "content": {"image/png": {}, "application/json": {}},
    },
    400: {"description": "empty body, not an image, or truncated / corrupt data"},
    408: {"description": "the body did not arrive within the body timeout"},
    413: {"description": "file larger than the byte limit or image larger than the pixel limit"},
    415: {"description": "unsupported image format or content type, or an animated image"},
    **_ERRORS,
}
# Multipart framing around the file: headers and boundaries, never megabytes.
_MULTIPART_SLACK = 64 * 1024


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The raw body, at most `limit` bytes (413) and within `timeout_s` seconds (408)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError as err:
        # A lying Content-Length or a trickle must not hold the connection: close it.
        raise HTTPException(
            408,
            f"body not received within {timeout_s:g} s ({size} bytes arrived)",
            {"Connection": "close"},
        ) from err
    return b"".join(chunks)


async def read_upload(request: Request, limit: int, timeout_s: float = 60.0) -> tuple[bytes, str]:
    """The uploaded file's bytes and a name for messages; 400/408/413/415 on a bad request."""
    body = await read_body(request, limit + _MULTIPART_SLACK, timeout_s)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "multipart/form-data":
        data, name = await _multipart_file(request, body)
    elif media.startswith("image/") or media in ("application/octet-stream", ""):
        data, name = body, "body"
    else:
        raise HTTPException(
            415,
            f"content type {media!r}: send multipart/form-data with a field 'file', or the "
            "raw image bytes with an image/* content type",
        )
    if len(data) > limit:
        raise HTTPException(413, f"{name}: {len(data)} bytes exceeds the limit of {limit} bytes")
    if not data:
        raise HTTPException(400, f"{name}: empty; send an image (PNG, JPEG, WebP, BMP or GIF)")
    return data, name


async def _multipart_file(request: Request, body: bytes) -> tuple[bytes, str]:
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=16)
    except Exception as err:  # python-multipart raises several types for a broken body
        raise HTTPException(400, f"malformed multipart body ({err})") from err
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise HTTPException(400, "multipart body has no file field named 'file'")
    data = await upload.read()
    return data, upload.filename or "file"


def _headers(predictor: PredictorLike, result: Result) -> dict[str, str]:
    name = predictor.name.encode("ascii", "replace").decode()
    return {
        "X-Model": name,
        "X-Inference-Ms": f"{result.inference_ms:.1f}",
        "X-Batch-Size": str(result.batch_size),
    }


class _Handoff:
    """An image handed to one thread call, which lets go of it there.

    anyio keeps a call's arguments and result until after the awaiting request has resumed,
    so an image passed or returned directly could outlive its request's active slot: 3 and
    4 decoded images were alive at once with 2 slots.
    """

    def __init__(self) -> None:
        self._image: np.ndarray | None = None

    def put(self, image: np.ndarray) -> None:
        self._image = image

    def take(self) -> np.ndarray:
        image, self._image = self._image, None
        if image is None:
            raise RuntimeError("no image was handed over")
        return image


def _decode(handoff: _Handoff, data: bytes, max_pixels: int, name: str) -> tuple[int, int]:
    """Decode into `handoff`; returns (height, width)."""
    image = imaging.decode_image(data, max_pixels=max_pixels, name=name)
    handoff.put(image)
    return image.shape[0], image.shape[1]


def _json_body(state: ServiceState, size: tuple[int, int], result: Result) -> dict[str, Any]:
    assert state.predictor is not None
    categories = result.categories
    return {
        "model": state.predictor.name,
        "width": int(size[1]),
        "height": int(size[0]),
        "inference_ms": round(result.inference_ms, 2),
        "categories": analysis.describe(categories, state.settings.max_regions),
        "mask_png": base64.b64encode(imaging.encode_png(categories)).decode("ascii"),
        "mask_encoding": "single-channel PNG of category ids 0..7, base64",
    }


def _render(fmt: OutputFormat, handoff: _Handoff, categories: np.ndarray, alpha: float) -> bytes:
    image = handoff.take()
    if fmt is OutputFormat.categories:
        return imaging.encode_png(categories)
    if fmt is OutputFormat.labelIds:
        return imaging.encode_png(labels.categories_to_label_ids(categories))
    if fmt is OutputFormat.overlay:
        return imaging.encode_png(imaging.overlay(image, categories, alpha))
    return imaging.encode_png(labels.colorize(categories))


async def _segment(state: ServiceState, image: np.ndarray) -> Result:
    assert state.worker is not None
    result = await state.worker.submit(image)
    if result.categories.shape != image.shape[:2]:
        raise RuntimeError(
            f"model returned a {result.categories.shape} mask for a {image.shape[:2]} image"
        )
    return result


@segment_router.post("/segment", openapi_extra=_UPLOAD_BODY, responses=_SEGMENT_RESPONSES)
async def segment(
    request: Request,
    state: ReadyDep,
    fmt: Annotated[
        OutputFormat,
        Query(alias="format", description="color, categories, labelIds, overlay or json"),
    ] = OutputFormat.color,
    alpha: Annotated[float, Query(ge=0.0, le=1.0, description="mask opacity for overlay")] = 0.5,
) -> Response:
    """Segment one image; the mask comes back at the image's own size and orientation."""
    settings, admission = state.settings, state.admission
    assert admission is not None and state.predictor is not None
    # Admitted (or 503) before a byte is read; the image is decoded in an active slot only.
    async with admission.admit():
        data, name = await read_upload(request, settings.max_upload_bytes, settings.body_timeout_s)
        async with admission.active():
            # The decoded image lives in this slot only: it goes to the threads through a
            # handoff, and its last reference here is dropped before the slot is released.
            handoff = _Handoff()
            decode = partial(_decode, handoff, max_pixels=settings.pixel_limit, name=name)
            size = await anyio.to_thread.run_sync(decode, data)
            del data, decode  # the compressed bytes are not needed past decoding
            image = handoff.take()
            result = await _segment(state, image)
            headers = _headers(state.predictor, result)
            response: Response
            if fmt is OutputFormat.json:
                del image
                body = await anyio.to_thread.run_sync(_json_body, state, size, result)
                response = JSONResponse(body, headers=headers)
            else:
                handoff.put(image)
                del image
                render = partial(_render, fmt, handoff, result.categories, alpha)
                response = Response(
                    await anyio.to_thread.run_sync(render), media_type="image/png", headers=headers
                )
            del result
    return response


# ----------------------------------------------------------------------------- samples

samples_router = APIRouter(prefix="/v1", tags=["samples"], dependencies=[Depends(require_api_key)])

SampleId = Annotated[
    str, PathParam(pattern=r"^[0-9a-f]{12}$", description="opaque id from GET /v1/samples")
]


def _sample(state: ServiceState, sid: str) -> SampleRef:
    ref = state.samples.get(sid)
    if ref is None:
        raise HTTPException(404, f"no test sample with id {sid!r}")
    return ref


def _summary(ref: SampleRef) -> dict[str, Any]:
    return {
        "id": ref.id,
        "name": ref.name,
        "city": ref.city,
        "has_ground_truth": ref.label is not None,
        "image_url": f"/v1/samples/{ref.id}/image",
        "ground_truth_url": f"/v1/samples/{ref.id}/ground_truth" if ref.label else None,
    }


@samples_router.get("/samples")
def list_samples(
    state: StateDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """The test-split images of the dataset the model was evaluated on (from the manifest)."""
    refs = state.samples.refs
    return {
        "count": len(refs),
        "offset": offset,
        "samples": [_summary(ref) for ref in refs[offset : offset + limit]],
    }


@samples_router.get("/samples/{sid}", responses={404: {"description": "unknown id"}})
def get_sample(state: StateDep, sid: SampleId) -> dict[str, Any]:
    """One test sample: name, city and the URLs of its image and ground truth."""
    return _summary(_sample(state, sid))


@samples_router.get(
    "/samples/{sid}/image",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "unknown id"}},
)
async def sample_image(state: StateDep, sid: SampleId) -> Response:
    """The sample's camera image as PNG."""
    ref = _sample(state, sid)
    if ref.image.suffix.lower() == ".png":
        return FileResponse(ref.image, media_type="image/png")
    png = await anyio.to_thread.run_sync(lambda: imaging.encode_png(ref.read_image()))
    return Response(png, media_type="image/png")


@samples_router.get(
    "/samples/{sid}/ground_truth",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "unknown id or no label"}},
)
async def sample_ground_truth(
    state: StateDep,
    sid: SampleId,
    fmt: Annotated[
        OutputFormat, Query(alias="format", description="color, categories or labelIds")
    ] = OutputFormat.color,
) -> Response:
    """The sample's ground truth as PNG: category colours, category ids or official label ids."""
    ref = _sample(state, sid)
    if ref.label is None:
        raise HTTPException(404, f"sample {sid} has no ground truth")
    if fmt in (OutputFormat.overlay, OutputFormat.json):
        raise HTTPException(422, "ground truth comes as color, categories or labelIds")

    def render() -> bytes:
        ids = ref.read_label_ids()
        assert ids is not None
        if fmt is OutputFormat.labelIds:
            return imaging.encode_png(ids)
        categories = labels.to_categories(ids, source=str(ref.label))
        if fmt is OutputFormat.categories:
            return imaging.encode_png(categories)
        return imaging.encode_png(labels.colorize(categories))

    return Response(await anyio.to_thread.run_sync(render), media_type="image/png")


@samples_router.get(
    "/samples/{sid}/prediction", responses={404: {"description": "unknown id"}, **_ERRORS}
)
async def sample_prediction(state: ReadyDep, sid: SampleId) -> JSONResponse:
    """Segment a test sample: the JSON of /v1/segment plus this image's IoU per category."""
    ref = _sample(state, sid)
    assert state.admission is not None
    async with state.admission.admit(), state.admission.active():
        image = await anyio.to_thread.run_sync(ref.read_image)
        result = await _segment(state, image)
        body = await anyio.to_thread.run_sync(_json_body, state, image.shape[:2], result)
        del image  # like /v1/segment: no decoded image outlives its active slot
        label_ids = await anyio.to_thread.run_sync(ref.read_label_ids)
    if label_ids is not None:
        iou = analysis.image_iou(label_ids, result.categories)
        scored = [v for v in iou.values() if v is not None]
        body["iou"] = iou
        body["miou"] = float(np.mean(scored)) if scored else None
    assert state.predictor is not None
    return JSONResponse(body, headers=_headers(state.predictor, result))


# ----------------------------------------------------------------------------- page

page_router = APIRouter(include_in_schema=False)


@page_router.get("/")
def index() -> FileResponse:
    """The web page."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")
