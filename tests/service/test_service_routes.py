"""Every endpoint and every bad input through the TestClient, with a fake predictor."""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from service_helpers import FakePredictor, expected_mask, png_bytes, random_image

from cityseg.data import labels
from cityseg.service import app as app_module
from cityseg.service.app import create_app, find_best_run
from cityseg.service.samples import SampleStore
from cityseg.service.settings import Settings


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def post_file(client: TestClient, data: bytes, query: str = "", **kw: object):
    return client.post(f"/v1/segment{query}", files={"file": ("x.png", data, "image/png")}, **kw)


# ----------------------------------------------------------------------------- segment


def test_segment_multipart_returns_colour_mask_at_original_size(client: TestClient) -> None:
    image = random_image(37, 23)
    response = post_file(client, png_bytes(image))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["X-Model"] == "fake_model"
    assert float(response.headers["X-Inference-Ms"]) >= 0
    np.testing.assert_array_equal(
        decode_png(response.content), labels.colorize(expected_mask(image))
    )


def test_segment_raw_body(client: TestClient) -> None:
    image = random_image(10, 6, seed=3)
    response = client.post(
        "/v1/segment?format=categories",
        content=png_bytes(image),
        headers={"Content-Type": "image/png"},
    )
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(decode_png(response.content), expected_mask(image))


def test_segment_label_ids(client: TestClient) -> None:
    image = random_image(9, 5, seed=4)
    response = post_file(client, png_bytes(image), "?format=labelIds")
    ids = decode_png(response.content)
    np.testing.assert_array_equal(ids, labels.categories_to_label_ids(expected_mask(image)))
    np.testing.assert_array_equal(labels.to_categories(ids), expected_mask(image))


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_segment_overlay_alpha(client: TestClient, alpha: float) -> None:
    image = random_image(8, 4, seed=5)
    response = post_file(client, png_bytes(image), f"?format=overlay&alpha={alpha}")
    out = decode_png(response.content)
    expected = image if alpha == 0 else labels.colorize(expected_mask(image))
    np.testing.assert_array_equal(out, expected)


def test_segment_json(client: TestClient) -> None:
    image = np.zeros((20, 30, 3), np.uint8)
    image[:, :10, 0] = 7 * 32  # vehicle, 10 columns
    image[2:5, 20:25, 0] = 1 * 32  # flat, one 5x3 box
    image[10:12, 26:28, 0] = 1 * 32  # flat, a second box 2x2
    response = post_file(client, png_bytes(image), "?format=json")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"], body["model"]) == (30, 20, "fake_model")
    by_name = {c["name"]: c for c in body["categories"]}
    assert sum(c["share"] for c in body["categories"]) == pytest.approx(1.0)
    assert by_name["vehicle"]["share"] == pytest.approx(10 / 30)
    assert by_name["vehicle"]["regions"] == [{"bbox": [0, 0, 10, 20], "pixels": 200}]
    assert by_name["flat"]["regions"] == [
        {"bbox": [20, 2, 25, 5], "pixels": 15},
        {"bbox": [26, 10, 28, 12], "pixels": 4},
    ]
    assert by_name["flat"]["color"] == [int(v) for v in labels.PALETTE[1]]
    mask = decode_png(base64.b64decode(body["mask_png"]))
    np.testing.assert_array_equal(mask, expected_mask(image))


def test_regions_are_capped(fake_predictor: FakePredictor) -> None:
    image = np.zeros((8, 40, 3), np.uint8)
    image[:, ::2, 0] = 32  # 20 one-pixel-wide flat stripes
    app = create_app(Settings(max_regions=3), predictor=fake_predictor)
    with TestClient(app) as client:
        flat = post_file(client, png_bytes(image), "?format=json").json()["categories"][1]
    assert len(flat["regions"]) == 3 and flat["regions_total"] == 20


def test_exif_rotated_jpeg_mask_in_displayed_orientation(client: TestClient) -> None:
    stored = np.zeros((4, 8, 3), np.uint8)
    stored[:, :4, 0] = 255  # left half: category 7 once decoded
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="JPEG", exif=exif, quality=100)
    response = post_file(client, buffer.getvalue(), "?format=categories")
    mask = decode_png(response.content)
    assert mask.shape == (8, 4)  # displayed portrait
    assert (mask[:3] == 7).all() and (mask[5:] == 0).all()


@pytest.mark.parametrize(
    "array",
    [
        random_image(1, 1)[..., 0],  # greyscale 1x1
        random_image(3, 2),  # RGB 3x2
        np.dstack([random_image(4, 3), np.full((3, 4), 128, np.uint8)]),  # RGBA
        (random_image(5, 4)[..., 0].astype(np.uint16) * 257),  # 16-bit
    ],
    ids=["grey-1x1", "rgb-3x2", "rgba", "grey16"],
)
def test_modes_and_tiny_images(client: TestClient, array: np.ndarray) -> None:
    response = post_file(client, png_bytes(array), "?format=categories")
    assert response.status_code == 200, response.text
    assert decode_png(response.content).shape == array.shape[:2]


def test_palette_png(client: TestClient) -> None:
    image = Image.fromarray(random_image(6, 6)).quantize(colors=8)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    response = post_file(client, buffer.getvalue(), "?format=categories")
    expected = expected_mask(np.asarray(image.convert("RGB")))
    np.testing.assert_array_equal(decode_png(response.content), expected)


# ----------------------------------------------------------------------------- bad input


def test_empty_body_is_400(client: TestClient) -> None:
    response = client.post("/v1/segment", content=b"", headers={"Content-Type": "image/png"})
    assert response.status_code == 400 and "empty" in response.json()["detail"]
    assert post_file(client, b"").status_code == 400


def test_not_an_image_is_400(client: TestClient) -> None:
    response = post_file(client, b"definitely not an image" * 10)
    assert response.status_code == 400 and "not an image" in response.json()["detail"]


def test_truncated_is_400(client: TestClient) -> None:
    data = png_bytes(random_image(64, 64))
    response = post_file(client, data[: len(data) // 2])
    assert response.status_code == 400 and "truncated" in response.json()["detail"]


@pytest.mark.parametrize("fmt", ["TIFF", "PDF"])
def test_unsupported_format_is_415(client: TestClient, fmt: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(random_image(8, 8)).save(buffer, format=fmt)
    response = post_file(client, buffer.getvalue())
    assert response.status_code == 415 and fmt in response.json()["detail"]


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_one_rule_for_animation_in_every_format(client: TestClient, fmt: str) -> None:
    frames = [Image.fromarray(random_image(8, 8, seed=i)) for i in range(3)]
    animated, still = io.BytesIO(), io.BytesIO()
    frames[0].save(animated, format=fmt, save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(still, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    refused = post_file(client, animated.getvalue())
    assert refused.status_code == 415 and f"animated {fmt}" in refused.json()["detail"]
    accepted = post_file(client, still.getvalue(), "?format=categories")
    assert accepted.status_code == 200
    mask = np.asarray(Image.open(io.BytesIO(accepted.content)))
    frame = np.asarray(Image.open(io.BytesIO(still.getvalue())).convert("RGB"))
    np.testing.assert_array_equal(mask, expected_mask(frame))


def test_wrong_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        "/v1/segment", content=b'{"a": 1}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 415 and "multipart/form-data" in response.json()["detail"]


def test_multipart_without_file_field_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/segment", files={"image": ("x.png", png_bytes(random_image(4, 4)), "image/png")}
    )
    assert response.status_code == 400 and "'file'" in response.json()["detail"]


def test_too_many_bytes_is_413(fake_predictor: FakePredictor) -> None:
    app = create_app(Settings(max_upload_bytes=1000), predictor=fake_predictor)
    with TestClient(app) as client:
        big = png_bytes(random_image(40, 40))  # ~4.8 kB of noise
        assert post_file(client, big).status_code == 413
        raw = client.post("/v1/segment", content=big, headers={"Content-Type": "image/png"})
        assert raw.status_code == 413 and "1000 bytes" in raw.json()["detail"]
        assert post_file(client, png_bytes(random_image(4, 4))).status_code == 200


def test_default_byte_limit_is_20_mb(client: TestClient) -> None:
    body = b"\x89PNG" + b"\x00" * (20 * 1024 * 1024 + 1)
    response = client.post("/v1/segment", content=body, headers={"Content-Type": "image/png"})
    assert response.status_code == 413


def test_too_many_pixels_is_413(fake_predictor: FakePredictor) -> None:
    app = create_app(Settings(max_pixels=100), predictor=fake_predictor)
    with TestClient(app) as client:
        response = post_file(client, png_bytes(random_image(11, 10)))
        assert response.status_code == 413 and "110 pixels" in response.json()["detail"]
        assert fake_predictor.calls == 0
        assert post_file(client, png_bytes(random_image(10, 10))).status_code == 200


def test_default_pixel_limit_is_40_megapixels(client: TestClient) -> None:
    # 8000x5001 one-bit PNG: a few kB on the wire, 40.008 megapixels.
    buffer = io.BytesIO()
    Image.new("1", (8000, 5001)).save(buffer, format="PNG")
    response = post_file(client, buffer.getvalue())
    assert response.status_code == 413


def test_bad_query_is_422(client: TestClient) -> None:
    data = png_bytes(random_image(4, 4))
    assert post_file(client, data, "?format=jpeg").status_code == 422
    assert post_file(client, data, "?format=overlay&alpha=2").status_code == 422


def test_server_keeps_serving_after_bad_inputs(client: TestClient) -> None:
    for body in (b"", b"junk", b"GIF89a" + b"\x00" * 20):
        client.post("/v1/segment", content=body, headers={"Content-Type": "image/png"})
    assert client.get("/health").status_code == 200
    assert post_file(client, png_bytes(random_image(4, 4))).status_code == 200


def test_model_error_is_500_json_and_service_survives(sample_store: SampleStore) -> None:
    class Broken(FakePredictor):
        def predict(self, image: np.ndarray) -> np.ndarray:
            if image.shape[1] == 13:
                raise RuntimeError("boom")
            return super().predict(image)

    app = create_app(Settings(), predictor=Broken())
    with TestClient(app, raise_server_exceptions=False) as client:
        response = post_file(client, png_bytes(random_image(13, 4)))
        assert response.status_code == 500 and "RuntimeError" in response.json()["detail"]
        assert post_file(client, png_bytes(random_image(12, 4))).status_code == 200


# ----------------------------------------------------------------------------- model, health


def test_model_info(client: TestClient) -> None:
    body = client.get("/v1/model").json()
    assert body["name"] == "fake_model" and body["runtime"] == "fake"
    assert body["input_size"] == [64, 32]
    assert [c["name"] for c in body["categories"]] == list(labels.CATEGORIES)
    assert body["categories"][7]["color"] == [0, 0, 142]
    assert body["metrics"]["test"]["miou"] == 0.5


def test_health_is_503_until_the_model_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def slow_load(path: Path, runtime: str, tta: str) -> FakePredictor:
        release.wait(10)
        return FakePredictor()

    monkeypatch.setattr(app_module, "_load_predictor", slow_load)
    app = create_app(Settings(run=tmp_path))
    with TestClient(app) as client:
        assert client.get("/health").status_code == 503
        assert client.get("/health").json()["status"] == "loading"
        assert post_file(client, png_bytes(random_image(4, 4))).status_code == 503
        release.set()
        for _ in range(100):
            if client.get("/health").status_code == 200:
                break
            threading.Event().wait(0.05)
        assert client.get("/health").json() == {"status": "ok", "model": "fake_model"}


def test_failed_load_is_reported_by_health(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_load(path: Path, runtime: str, tta: str) -> FakePredictor:
        raise ValueError(f"{path}: cannot load Keras model")

    monkeypatch.setattr(app_module, "_load_predictor", broken_load)
    app = create_app(Settings(run=tmp_path))
    with TestClient(app) as client:
        for _ in range(200):
            body = client.get("/health").json()
            if body["status"] != "loading":
                break
            threading.Event().wait(0.05)
        assert body["status"] == "error" and "cannot load Keras model" in body["detail"]
        assert client.get("/health").status_code == 503


def test_docs_and_openapi(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/segment"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body and "image/jpeg" in body


# ----------------------------------------------------------------------------- samples


def test_samples_listing_and_files(client: TestClient, sample_store: SampleStore) -> None:
    listing = client.get("/v1/samples").json()
    assert listing["count"] == 2
    first = listing["samples"][0]
    assert first["city"] == "lindau" and "/" not in first["id"]
    assert client.get(f"/v1/samples/{first['id']}").json() == first
    image = decode_png(client.get(first["image_url"]).content)
    np.testing.assert_array_equal(image, sample_store.refs[0].read_image())
    gt = decode_png(client.get(first["ground_truth_url"]).content)
    assert gt.shape == (24, 48, 3)
    np.testing.assert_array_equal(gt[0, 0], labels.PALETTE[1])
    np.testing.assert_array_equal(gt[0, -1], labels.PALETTE[7])
    cats = decode_png(client.get(first["ground_truth_url"] + "?format=categories").content)
    assert set(np.unique(cats)) == {1, 7}


def test_sample_prediction_has_per_image_iou(client: TestClient, sample_store: SampleStore) -> None:
    ref = sample_store.refs[0]
    body = client.get(f"/v1/samples/{ref.id}/prediction").json()
    pred = expected_mask(ref.read_image())
    truth = labels.to_categories(ref.read_label_ids())
    for cid in (1, 7):
        inter = np.sum((pred == cid) & (truth == cid))
        union = np.sum((pred == cid) | (truth == cid))
        assert body["iou"][labels.CATEGORIES[cid]] == pytest.approx(inter / union)
    assert "void" not in body["iou"]
    scored = [v for v in body["iou"].values() if v is not None]
    assert body["miou"] == pytest.approx(np.mean(scored))


@pytest.mark.parametrize("sid", ["000000000000", "..%2F..%2Fetc", "not-hex-id!!", "0" * 40])
def test_unknown_or_malformed_sample_ids(client: TestClient, sid: str) -> None:
    response = client.get(f"/v1/samples/{sid}")
    assert response.status_code in (404, 422)
    assert client.get(f"/v1/samples/{sid}/image").status_code in (404, 422)


def test_samples_from_run_config_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cityseg.service import samples as samples_module

    (tmp_path / "config.yaml").write_text("data:\n  root: data/x\n  manifest: ''\n")
    assert samples_module.manifest_for(tmp_path) == Path("data/x/split.json")
    (tmp_path / "config.yaml").write_text("data:\n  root: data/x\n  manifest: m.json\n")
    assert samples_module.manifest_for(tmp_path) == Path("m.json")
    export = tmp_path / "export" / "model_int8.tflite"  # an exported model of the run
    export.parent.mkdir()
    export.write_bytes(b"")
    assert samples_module.manifest_for(export) == Path("m.json")
    assert samples_module.manifest_for(None) is None


# ----------------------------------------------------------------------------- security, page


def test_api_key(fake_predictor: FakePredictor) -> None:
    app = create_app(Settings(api_key="s3cret"), predictor=fake_predictor)
    with TestClient(app) as client:
        data = png_bytes(random_image(4, 4))
        assert post_file(client, data).status_code == 401
        assert post_file(client, data, headers={"X-API-Key": "wrong"}).status_code == 401
        assert post_file(client, data, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.get("/v1/model").status_code == 401
        assert client.get("/v1/samples").status_code == 401
        assert client.get("/health").status_code == 200  # not under /v1
        assert client.get("/").status_code == 200


def test_cors_closed_by_default_and_configurable(fake_predictor: FakePredictor) -> None:
    origin = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(Settings(), predictor=fake_predictor)) as client:
        response = client.options("/v1/segment", headers=origin)
        assert "access-control-allow-origin" not in response.headers
    settings = Settings(cors_origins=["https://ok.example"])
    with TestClient(create_app(settings, predictor=FakePredictor())) as client:
        ok = client.options(
            "/v1/segment",
            headers={"Origin": "https://ok.example", "Access-Control-Request-Method": "POST"},
        )
        assert ok.headers["access-control-allow-origin"] == "https://ok.example"
        bad = client.options("/v1/segment", headers=origin)
        assert "access-control-allow-origin" not in bad.headers


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYSEG_API_KEY", "k")
    monkeypatch.setenv("CITYSEG_MAX_PIXELS", "123")
    monkeypatch.setenv("CITYSEG_CORS_ORIGINS", '["https://a.example"]')
    settings = Settings()
    assert (settings.api_key, settings.max_pixels) == ("k", 123)
    assert settings.cors_origins == ["https://a.example"]


def test_page_and_static_assets(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        assert client.get(asset).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # no CDN


# ----------------------------------------------------------------------------- best run


def test_best_run_is_chosen_on_validation_never_on_test(tmp_path: Path) -> None:
    def make(name: str, metrics: str, model: bool = True) -> None:
        run = tmp_path / name
        run.mkdir()
        (run / "metrics.json").write_text(metrics)
        if model:
            (run / "model.keras").write_bytes(b"")

    make("a", '{"val": {"miou": 0.7}, "test": {"miou": 0.2}}')
    make("b", '{"val": {"miou": 0.6}, "test": {"miou": 0.95}}')  # best on test: not chosen
    make("c", '{"test": {"miou": 0.99}}')  # no validation score: never chosen
    make("d", '{"val": {"miou": 0.99}}', model=False)  # no model: skipped
    make("e", "{not json")
    make("f", '{"val": {"miou": NaN}, "test": {"miou": 0.9}}')  # NaN ranks nothing
    assert find_best_run(tmp_path) == tmp_path / "a"
    assert find_best_run(tmp_path / "missing") is None
    (tmp_path / "a" / "metrics.json").write_text('{"val": {"miou": 0.5}, "test": {"miou": 1}}')
    assert find_best_run(tmp_path) == tmp_path / "b"


def test_no_scored_run_is_no_best_run(tmp_path: Path) -> None:
    run = tmp_path / "only_test"
    run.mkdir()
    (run / "metrics.json").write_text('{"test": {"miou": 0.9}}')
    (run / "model.keras").write_bytes(b"")
    assert find_best_run(tmp_path) is None


def test_no_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(app_module.NoModelError, match="cityseg demo"):
        create_app(Settings(runs_dir=tmp_path))
