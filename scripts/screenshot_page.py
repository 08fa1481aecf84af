"""Screenshot the service page with a test sample selected (the README's picture).

Usage: start a server (`cityseg serve` or `cityseg demo`), then
    uv run python scripts/screenshot_page.py --url http://127.0.0.1:8000/ --out docs/figures/service_page.png
Drives Debian's Chromium (/usr/bin/chromium) through Playwright.
"""

from __future__ import annotations

import argparse

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def main() -> None:
    """Open the page, pick a test sample, wait for the mask and save a screenshot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000/")
    parser.add_argument("--out", default="docs/figures/service_page.png")
    parser.add_argument("--sample", type=int, default=3, help="Index of the test sample.")
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(args.url)
        page.wait_for_function("document.querySelectorAll('#sample-select option').length > 1")
        value = page.eval_on_selector_all(
            "#sample-select option", f"o => o[Math.min({args.sample}, o.length - 1)].value"
        )
        page.select_option("#sample-select", value)
        page.wait_for_function("document.getElementById('status').textContent.endsWith('done')")
        page.screenshot(path=args.out, full_page=True)
        browser.close()
    print(f"screenshot written to {args.out}")


if __name__ == "__main__":
    main()
