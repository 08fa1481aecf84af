"""The inference thread: one at a time, micro-batches what waits, bounded queue, errors."""

from __future__ import annotations

import asyncio
import threading
import weakref

import numpy as np
import pytest
from service_helpers import FakePredictor, expected_mask, random_image

from cityseg.service.worker import InferenceWorker, QueueFullError


class GatedPredictor(FakePredictor):
    """Blocks its first call until `gate` is set; records batch sizes and threads."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.started = threading.Event()
        self.batches: list[int] = []
        self.threads: set[str] = set()

    def predict_many(self, images: list[np.ndarray], batch_size: int = 8) -> list[np.ndarray]:
        self.batches.append(len(images))
        return [self.predict(image) for image in images]

    def predict(self, image: np.ndarray) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        self.started.set()
        self.gate.wait(10)
        return super().predict(image)


def test_waiting_requests_are_batched_and_each_gets_its_own_mask() -> None:
    predictor = GatedPredictor()
    worker = InferenceWorker(predictor, max_queue=16, max_batch=4)
    images = [random_image(8 + i, 4, seed=i) for i in range(5)]

    async def main() -> list:
        first = asyncio.ensure_future(worker.submit(images[0]))
        await asyncio.to_thread(predictor.started.wait, 10)  # the thread is busy with image 0
        rest = [asyncio.ensure_future(worker.submit(image)) for image in images[1:]]
        await asyncio.sleep(0.05)
        predictor.gate.set()
        return await asyncio.gather(first, *rest)

    results = asyncio.run(main())
    worker.close()
    for image, result in zip(images, results, strict=True):
        np.testing.assert_array_equal(result.categories, expected_mask(image))
    assert [r.batch_size for r in results] == [1, 4, 4, 4, 4]
    assert predictor.threads == {"cityseg-inference"}


def test_full_queue_raises_instead_of_growing() -> None:
    predictor = GatedPredictor()
    worker = InferenceWorker(predictor, max_queue=2, max_batch=1)

    async def main() -> None:
        busy = asyncio.ensure_future(worker.submit(random_image(4, 4)))
        await asyncio.to_thread(predictor.started.wait, 10)
        waiting = [asyncio.ensure_future(worker.submit(random_image(4, 4))) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFullError):
            await worker.submit(random_image(4, 4))
        predictor.gate.set()
        await asyncio.gather(busy, *waiting)

    asyncio.run(main())
    worker.close()


def test_model_error_reaches_the_caller_and_the_thread_survives() -> None:
    class Flaky(FakePredictor):
        def predict(self, image: np.ndarray) -> np.ndarray:
            if image.shape[0] == 3:
                raise ValueError("bad frame")
            return super().predict(image)

    worker = InferenceWorker(Flaky())

    async def main() -> None:
        with pytest.raises(ValueError, match="bad frame"):
            await worker.submit(random_image(4, 3))
        ok = await worker.submit(random_image(4, 4))
        assert ok.categories.shape == (4, 4)

    asyncio.run(main())
    worker.close()


def test_full_queue_is_503_with_retry_after_over_http() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient
    from service_helpers import png_bytes

    from cityseg.service.app import create_app
    from cityseg.service.settings import Settings

    predictor = GatedPredictor()
    app = create_app(Settings(max_active=1, max_queue=1, max_batch=1), predictor=predictor)
    files = {"file": ("x.png", png_bytes(random_image(4, 4)), "image/png")}
    with TestClient(app) as client, ThreadPoolExecutor(2) as pool:
        busy = pool.submit(client.post, "/v1/segment", files=files)
        assert predictor.started.wait(10)  # the inference thread holds request 1
        queued = pool.submit(client.post, "/v1/segment", files=files)
        for _ in range(200):  # until request 2 waits for the active slot
            if app.state.service.admission.admitted == 2:
                break
            threading.Event().wait(0.01)
        rejected = client.post("/v1/segment", files=files)
        assert rejected.status_code == 503 and rejected.headers["Retry-After"] == "1"
        assert "busy" in rejected.json()["detail"]
        predictor.gate.set()
        assert busy.result().status_code == 200 and queued.result().status_code == 200


def test_the_worker_lets_go_of_an_image_before_its_caller_resumes() -> None:
    # A request frees its active slot as soon as it has its mask: an image still held by the
    # inference thread then (it used to be, until its next job) breaks the memory bound.
    worker = InferenceWorker(FakePredictor())

    async def segment_and_check() -> bool:
        image = random_image(32, 16)
        alive = weakref.ref(image)
        future = worker.submit(image)
        del image
        await future
        return alive() is None

    try:
        assert all(asyncio.run(segment_and_check()) for _ in range(5))
    finally:
        worker.close()
