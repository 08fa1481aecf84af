"""End to end in a real headless Chromium: upload an image, see the mask and the legend.

Set CITYSEG_SCREENSHOT=1 to write docs/figures/service_page.png.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image
from service_helpers import expected_mask, street_scene

from cityseg.data import labels
from cityseg.service.analysis import image_iou

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "figures" / "service_page.png"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


def test_upload_shows_mask_overlay_and_legend(live_server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    image = street_scene()
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-dev-shm-usage"],
        )  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(live_server)
            expect(page.locator("#model-line")).to_contain_text("fake_model")

            # An upload: mask, overlay and legend with each category's share.
            page.set_input_files(
                "#file-input",
                files=[
                    {"name": "street.png", "mimeType": "image/png", "buffer": buffer.getvalue()}
                ],
            )
            expect(page.locator("#status")).to_contain_text("street.png: done")
            expect(page.locator("#gt-figure")).to_be_hidden()
            sky_share = (image[..., 0] // 32 == 5).mean()
            expect(page.locator("#legend tbody tr[data-category=sky]")).to_contain_text(
                f"{100 * sky_share:.1f}%"
            )
            width, height = page.evaluate(
                "() => [document.getElementById('mask-canvas').width,"
                " document.getElementById('mask-canvas').height]"
            )
            assert (width, height) == (image.shape[1], image.shape[0])
            pixel = page.evaluate(
                "([x, y]) => Array.from(document.getElementById('mask-canvas')"
                ".getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3))",
                [image.shape[1] * 5 // 8, image.shape[0] * 7 // 10],
            )
            assert pixel == [int(v) for v in labels.PALETTE[7]]  # the car is vehicle blue

            # The opacity slider at 0 shows the image itself in the overlay.
            page.locator("#alpha").fill("0")
            overlay = page.evaluate(
                "() => Array.from(document.getElementById('overlay-canvas')"
                ".getContext('2d').getImageData(10, 10, 1, 1).data.slice(0, 3))"
            )
            assert overlay == [int(v) for v in image[10, 10]]
            page.locator("#alpha").fill("55")

            # Drag and drop onto the drop zone works like the file picker.
            dropped = io.BytesIO()
            Image.fromarray(street_scene(192, 96)).save(dropped, format="PNG")
            page.evaluate(
                """(bytes) => {
                    const transfer = new DataTransfer();
                    transfer.items.add(new File([new Uint8Array(bytes)], "dropped.png",
                                                {type: "image/png"}));
                    document.getElementById("drop").dispatchEvent(
                        new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
                }""",
                list(dropped.getvalue()),
            )
            expect(page.locator("#status")).to_contain_text("dropped.png: done")
            expect(page.locator("#summary")).to_contain_text("192×96 px")

            # A test sample: ground truth beside the prediction, IoU column filled.
            expect(page.locator("#sample-select option")).to_have_count(3)
            page.select_option("#sample-select", index=2)  # the second sample: shift 8
            expect(page.locator("#gt-figure")).to_be_visible()
            expect(page.locator("#legend tbody tr")).to_have_count(len(labels.CATEGORIES))
            truth = labels.categories_to_label_ids(expected_mask(street_scene(shift=8 + 24)))
            iou = image_iou(truth, expected_mask(street_scene(shift=8)))["vehicle"]
            assert iou is not None and 0 < iou < 1
            expect(page.locator("#legend tbody tr[data-category=vehicle] td.iou")).to_have_text(
                f"{100 * iou:.1f}%"
            )
            expect(page.locator("#summary")).to_contain_text("image mIoU")

            assert not errors, errors
            if os.environ.get("CITYSEG_SCREENSHOT"):
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()


def test_key_in_session_storage_docs_offline_and_no_csp_violation() -> None:
    from playwright.sync_api import expect, sync_playwright
    from service_helpers import FakePredictor, running

    from cityseg.service.app import create_app
    from cityseg.service.settings import Settings

    app = create_app(Settings(api_key="s3cret"), predictor=FakePredictor())
    with running(app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-dev-shm-usage"],
        )  # fmt: skip
        try:
            page = browser.new_page()
            console: list[str] = []
            requested: list[str] = []
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("request", lambda request: requested.append(request.url))
            page.goto(url)
            expect(page.locator("#key-box")).to_have_attribute("open", "")  # opened on 401
            page.locator("#api-key").fill("s3cret")
            page.locator("#api-key").dispatch_event("change")
            expect(page.locator("#model-line")).to_contain_text("fake_model")

            buffer = io.BytesIO()
            Image.fromarray(street_scene()).save(buffer, format="PNG")
            page.set_input_files(
                "#file-input",
                files=[{"name": "s.png", "mimeType": "image/png", "buffer": buffer.getvalue()}],
            )
            expect(page.locator("#status")).to_contain_text("s.png: done")
            swatch = page.locator("#legend tbody tr[data-category=sky] .swatch")
            colour = ",".join(str(int(v)) for v in labels.PALETTE[5])
            expect(swatch).to_have_css("background-color", f"rgb({colour.replace(',', ', ')})")

            stored = page.evaluate(
                "() => [localStorage.length, sessionStorage.getItem('cityseg-api-key')]"
            )
            assert stored == [0, "s3cret"]

            page.goto(f"{url}/docs")
            expect(page.locator(".opblock-summary-path").first).to_be_visible(timeout=20_000)
            expect(page.locator(".opblock-summary-path", has_text="/v1/segment")).to_be_visible()
            offsite = [u for u in requested if not u.startswith((url, "data:", f"blob:{url}"))]
            assert offsite == [], offsite
            # A 401 on a first try without the key is expected; a refused script or style is not.
            refused = [m for m in console if "Content Security Policy" in m or "Refused" in m]
            assert refused == [], refused
        finally:
            browser.close()
