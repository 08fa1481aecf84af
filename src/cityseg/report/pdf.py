"""The note as PDF: the HTML rendering printed by a headless Chromium (through Playwright).

Optional: Playwright is a development dependency and Chromium comes from the system
(`apt install chromium`); without them `write_pdf` says what to install.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


class PdfError(RuntimeError):
    """The PDF cannot be made here (the message says what is missing)."""


def find_chromium() -> Path | None:
    """A Chromium executable on PATH (Debian's `chromium` first), else None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def write_pdf(html_path: str | Path, pdf_path: str | Path | None = None) -> Path:
    """Print `html_path` (with its relative figures) to A4 PDF; return the PDF path."""
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise PdfError(f"no HTML note to print: {html_path} (run `cityseg report --html`)")
    pdf = Path(pdf_path) if pdf_path is not None else html_path.with_suffix(".pdf")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        raise PdfError(
            "PDF needs Playwright: `uv sync --group dev` (or pip install playwright)"
        ) from err
    chromium = find_chromium()
    if chromium is None:
        raise PdfError("PDF needs a Chromium executable on PATH (Debian: apt install chromium)")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(html_path.as_uri(), wait_until="load")
                page.pdf(
                    path=str(pdf),
                    format="A4",
                    print_background=True,
                    margin={"top": "15mm", "bottom": "15mm", "left": "12mm", "right": "12mm"},
                )
            finally:
                browser.close()
    except PlaywrightError as err:
        raise PdfError(f"Chromium ({chromium}) could not print {html_path}: {err}") from err
    return pdf
