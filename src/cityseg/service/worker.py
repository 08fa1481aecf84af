"""One inference thread fed by a bounded queue, micro-batching what arrives together.

TensorFlow's `predict` is not reliably re-entrant, and two concurrent calls on 2 cores only
fight over them, so every request goes through a single thread. Requests that are waiting
when the thread becomes free are run as one batch (`Predictor.predict_many`), which is
where a CPU gains throughput under load.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)


class PredictorLike(Protocol):
    """What the service needs from `cityseg.inference.runtime.Predictor`."""

    name: str
    runtime: str
    input_size: tuple[int, int]

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Categories uint8 (H, W) at the image's own size."""
        ...


class QueueFullError(RuntimeError):
    """More requests are waiting than the queue holds; the client should retry later."""


@dataclass
class Result:
    """A mask and how long the model took for the batch it was part of."""

    categories: np.ndarray
    inference_ms: float
    batch_size: int


@dataclass
class _Job:
    image: np.ndarray | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future = field(repr=False)

    def take_image(self) -> np.ndarray:
        """The image, no longer referenced by the job."""
        image, self.image = self.image, None
        assert image is not None, "a job's image is taken once"
        return image


class InferenceWorker:
    """Runs `predictor` on a single thread; `await worker.submit(image)` from the event loop.

    Args:
        predictor: anything with `predict(image) -> categories` (and optionally `predict_many`).
        max_queue: jobs allowed to wait; the next one raises `QueueFullError`.
        max_batch: jobs run together at most (1 disables micro-batching).
    """

    def __init__(
        self, predictor: PredictorLike, *, max_queue: int = 32, max_batch: int = 4
    ) -> None:
        self.predictor = predictor
        self.max_batch = max(1, max_batch)
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._loop, name="cityseg-inference", daemon=True)
        self._thread.start()

    async def submit(self, image: np.ndarray) -> Result:
        """Queue one image; resolves when its mask is ready (raises what the model raised)."""
        loop = asyncio.get_running_loop()
        job = _Job(image, loop, loop.create_future())
        try:
            self._jobs.put_nowait(job)
        except queue.Full as err:
            raise QueueFullError(f"{self._jobs.maxsize} requests already waiting") from err
        return await job.future

    def run(self, image: np.ndarray) -> Result:
        """Synchronous variant for callers outside the event loop (runs on this thread)."""
        return self._run_batch([image])[0]

    def close(self) -> None:
        """Stop the thread after the jobs already queued."""
        self._jobs.put(None)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._serve(batch)

    def _next_batch(self) -> list[_Job] | None:
        """Block for one job, then take what else is waiting (None once closed)."""
        job = self._jobs.get()
        if job is None:
            return None
        batch = [job]
        while len(batch) < self.max_batch:
            try:
                extra = self._jobs.get_nowait()
            except queue.Empty:
                break
            if extra is None:  # stop after this batch
                self._jobs.put(None)
                break
            batch.append(extra)
        return batch

    def _serve(self, batch: list[_Job]) -> None:
        images = [job.take_image() for job in batch]
        try:
            results: list[Any] = self._run_batch(images)
        except Exception as err:  # handed to each caller; the thread must survive
            log.exception("inference failed for a batch of %d", len(batch))
            results = [err.with_traceback(None)] * len(batch)  # the frames hold the images
        # Let go of the images before their requests resume: a request frees its active slot
        # as soon as it has its mask, and the next one may decode at once.
        del images
        for job, result in zip(batch, results, strict=True):
            job.loop.call_soon_threadsafe(_settle, job.future, result)

    def _run_batch(self, images: list[np.ndarray]) -> list[Result]:
        started = time.perf_counter()
        many = getattr(self.predictor, "predict_many", None)
        if many is not None and len(images) > 1:
            masks = list(many(images, batch_size=len(images)))
        else:
            masks = [self.predictor.predict(image) for image in images]
        elapsed = (time.perf_counter() - started) * 1000.0
        return [Result(np.asarray(m, dtype=np.uint8), elapsed, len(images)) for m in masks]


def _settle(future: asyncio.Future, result: Any) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
