"""Fixtures of the service tests: a fake predictor, sample files, a TestClient, a live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from service_helpers import FakePredictor, expected_mask, random_image, running, street_scene

from cityseg.data import labels
from cityseg.service.app import create_app
from cityseg.service.samples import SampleStore, make_ref
from cityseg.service.settings import Settings


@pytest.fixture
def sample_store(tmp_path: Path) -> SampleStore:
    """Two test samples on disk: a camera PNG and a labelIds PNG each."""
    refs = []
    road, car = int(labels.CATEGORY_TO_ID[1]), int(labels.CATEGORY_TO_ID[7])
    for i, city in enumerate(("lindau", "munster")):
        folder = tmp_path / "leftImg8bit" / "test" / city
        gt = tmp_path / "gtFine" / "test" / city
        folder.mkdir(parents=True)
        gt.mkdir(parents=True)
        stem = f"{city}_000000_00000{i}"
        image = random_image(48, 24, seed=i)
        ids = np.full((24, 48), road, np.uint8)
        ids[:, 24:] = car
        Image.fromarray(image).save(folder / f"{stem}_leftImg8bit.png")
        Image.fromarray(ids).save(gt / f"{stem}_gtFine_labelIds.png")
        refs.append(
            make_ref(folder / f"{stem}_leftImg8bit.png", gt / f"{stem}_gtFine_labelIds.png", city)
        )
    return SampleStore(refs)


@pytest.fixture
def fake_predictor() -> FakePredictor:
    """A fresh fake predictor."""
    return FakePredictor()


@pytest.fixture
def client(fake_predictor: FakePredictor, sample_store: SampleStore) -> Iterator[TestClient]:
    """TestClient of an app serving the fake predictor and two samples."""
    app = create_app(Settings(), predictor=fake_predictor, samples=sample_store)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real uvicorn server in a thread (fake predictor, a little slow); yields its base URL."""
    tmp = tmp_path_factory.mktemp("live")
    refs = []
    for i in range(2):
        # Street scenes whose ground truth has the car shifted: an IoU below 1 to show.
        image_path, label_path = tmp / f"x_000000_00000{i}_leftImg8bit.png", tmp / f"l{i}.png"
        Image.fromarray(street_scene(shift=8 * i)).save(image_path)
        truth = expected_mask(street_scene(shift=8 * i + 24))
        Image.fromarray(labels.categories_to_label_ids(truth)).save(label_path)
        refs.append(make_ref(image_path, label_path, "testcity"))
    app = create_app(Settings(), predictor=FakePredictor(delay_s=0.01), samples=SampleStore(refs))
    with running(app) as url:
        yield url
