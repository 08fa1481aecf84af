"""The service on a real (tiny, untrained) Keras model saved as a run folder, with real samples."""

from __future__ import annotations

import io
import json
import time
import typing
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from PIL import Image
from service_helpers import png_bytes, random_image

from cityseg.service.app import create_app
from cityseg.service.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_run(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/tiny: unet_mini at 64x32, config.yaml naming the synthetic split, metrics.json."""
    from cityseg.data.split import default_manifest_path, make_split
    from cityseg.models.registry import create_model

    manifest = make_split(synth_root, seed=0).save(
        tmp_path_factory.mktemp("split") / default_manifest_path("x").name
    )
    run = tmp_path_factory.mktemp("runs") / "tiny"
    run.mkdir()
    create_model("unet_mini", input_size=(64, 32)).save(run / "model.keras")
    config = {"name": "tiny", "data": {"root": str(synth_root), "manifest": str(manifest)}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "metrics.json").write_text(json.dumps({"name": "tiny", "test": {"miou": 0.1}}))
    return run


def test_real_run_folder_end_to_end(real_run: Path) -> None:
    from cityseg.inference.runtime import Predictor

    app = create_app(Settings(run=real_run))
    with TestClient(app) as client:
        deadline = time.monotonic() + 120
        while client.get("/health").status_code != 200:
            assert client.get("/health").json()["status"] == "loading"
            assert time.monotonic() < deadline, "model did not load in 120 s"
            time.sleep(0.2)
        model = client.get("/v1/model").json()
        assert (model["name"], model["runtime"], model["input_size"]) == ("tiny", "keras", [64, 32])
        assert model["metrics"]["test"]["miou"] == 0.1 and model["tta"] == "none"

        image = random_image(100, 30, seed=7)  # another aspect than the model's 2:1
        response = client.post(
            "/v1/segment?format=categories",
            files={"file": ("x.png", png_bytes(image), "image/png")},
        )
        assert response.status_code == 200, response.text
        mask = np.asarray(Image.open(io.BytesIO(response.content)))
        assert mask.shape == (30, 100)
        # Same weights, another TF function instance: oneDNN may round differently, which
        # flips argmax where an untrained model's logits nearly tie, so allow a few pixels.
        agreement = (mask == Predictor.load(real_run).predict(image)).mean()
        assert agreement > 0.99, agreement

        listing = client.get("/v1/samples").json()
        assert listing["count"] > 0
        assert all(s["has_ground_truth"] for s in listing["samples"])
        sid = listing["samples"][0]["id"]
        result = client.get(f"/v1/samples/{sid}/prediction").json()
        assert result["width"] == 256 and result["height"] == 128
        assert set(result["iou"]) == {
            "flat",
            "construction",
            "object",
            "nature",
            "sky",
            "human",
            "vehicle",
        }
        assert all(v is None or 0.0 <= v <= 1.0 for v in result["iou"].values())


def test_served_with_hflip_tta_masks_like_the_predictor_with_it(real_run: Path) -> None:
    from cityseg.inference.runtime import TTA_MODES, Predictor

    with TestClient(create_app(Settings(run=real_run, tta="hflip"))) as client:
        deadline = time.monotonic() + 120
        while client.get("/health").status_code != 200:
            assert time.monotonic() < deadline, "model did not load in 120 s"
            time.sleep(0.2)
        assert client.get("/v1/model").json()["tta"] == "hflip"
        image = random_image(100, 30, seed=7)
        response = client.post(
            "/v1/segment?format=categories",
            files={"file": ("x.png", png_bytes(image), "image/png")},
        )
        assert response.status_code == 200, response.text
    mask = np.asarray(Image.open(io.BytesIO(response.content)))
    predictor = Predictor.load(real_run)
    predictor.tta = "hflip"
    assert (mask == predictor.predict(image)).mean() > 0.99
    with pytest.raises(ValueError, match="tta"):
        Settings(run=real_run, tta="vflip")
    # the settings' choices are the runtime's modes (the settings module does not import it)
    assert typing.get_args(Settings.model_fields["tta"].annotation) == TTA_MODES
