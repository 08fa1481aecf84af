"""The service on a CamVid-trained (tiny, untrained) 4:3 run: CamVid test-drive samples, masks
at each photo's size."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from PIL import Image
from service_helpers import png_bytes, random_image

from cityseg.service.app import create_app
from cityseg.service.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from camvid_trees import SIZE, make_segnet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def camvid_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CamVid import split by drive, and a 4:3 run folder (64x48) trained on it."""
    from cityseg.data.camvid import import_camvid
    from cityseg.data.split import make_split
    from cityseg.models.registry import create_model

    base = tmp_path_factory.mktemp("camvid")
    root = base / "camvid"
    import_camvid(make_segnet(base / "src"), root)
    manifest = make_split(root, test_cities=["0001TP"], val_cities=["0006R0"])
    manifest.save(root / "split.json")
    run = base / "runs" / "camvid_tiny"
    run.mkdir(parents=True)
    create_model("unet_mini", input_size=(64, 48)).save(run / "model.keras")
    config = {"name": "camvid_tiny", "data": {"root": str(root), "size": "64x48"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "metrics.json").write_text(json.dumps({"name": "camvid_tiny", "test": {"miou": 0.2}}))
    return run


def test_service_serves_a_camvid_run_with_its_test_drive(camvid_run: Path) -> None:
    app = create_app(Settings(run=camvid_run))
    with TestClient(app) as client:
        deadline = time.monotonic() + 120
        while client.get("/health").status_code != 200:
            assert time.monotonic() < deadline, "model did not load in 120 s"
            time.sleep(0.2)
        model = client.get("/v1/model").json()
        assert model["input_size"] == [64, 48]  # 4:3, as trained

        listing = client.get("/v1/samples").json()
        assert listing["count"] == 2  # the two frames of test drive 0001TP, nothing else
        for item in listing["samples"]:
            sample = client.get(f"/v1/samples/{item['id']}").json()
            assert sample["city"] == "0001TP"
        sid = listing["samples"][0]["id"]
        result = client.get(f"/v1/samples/{sid}/prediction").json()
        assert (result["width"], result["height"]) == SIZE  # the photo's own size

        photo = random_image(480, 360, seed=3)  # a full-size CamVid frame
        response = client.post(
            "/v1/segment?format=categories",
            files={"file": ("f.png", png_bytes(photo), "image/png")},
        )
        assert response.status_code == 200, response.text
        assert np.asarray(Image.open(io.BytesIO(response.content))).shape == (360, 480)
        page = client.get("/")  # the page lists the samples through its script
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert "/v1/samples" in client.get("/static/app.js").text
