"""Hardening: security headers, docs without a CDN, no empty API key, small 422 answers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from cityseg.service.app import create_app
from cityseg.service.settings import Settings

STATIC = Path(__file__).resolve().parents[2] / "src" / "cityseg" / "service" / "static"


@pytest.mark.parametrize("path", ["/", "/docs", "/health", "/v1/model", "/openapi.json"])
def test_every_answer_has_the_security_headers(client: TestClient, path: str) -> None:
    headers = client.get(path).headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    policy = dict(
        part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    # No other origin anywhere in the policy: only 'self' and the page's own data:/blob: URLs.
    assert not re.search(r"https?:|\*", headers["Content-Security-Policy"])


def test_docs_page_and_its_assets_come_from_this_server(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/") for s in sources), sources
    for source in sources:
        assert client.get(source).status_code == 200, source
    assert "<script>" not in page.text  # no inline script: the CSP would block it
    assert client.get("/redoc").status_code == 404  # ReDoc loads from a CDN: not offered


def test_the_page_has_no_inline_script_or_style() -> None:
    page = (STATIC / "index.html").read_text()
    assert "<script>" not in page and "style=" not in page
    assert "style=" not in (STATIC / "app.js").read_text()


def test_the_page_keeps_the_key_out_of_local_storage() -> None:
    script = (STATIC / "app.js").read_text()
    assert "localStorage." not in script and "sessionStorage.setItem" in script


@pytest.mark.parametrize("key", ["", "   "])
def test_empty_api_key_is_refused(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="CITYSEG_API_KEY is set but empty"):
        Settings(api_key=key)
    monkeypatch.setenv("CITYSEG_API_KEY", key)
    with pytest.raises(ValidationError):
        Settings()


def test_serve_refuses_to_start_with_an_empty_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cityseg.cli import app

    monkeypatch.setenv("CITYSEG_API_KEY", "")
    result = CliRunner().invoke(app, ["serve", "--run", str(tmp_path)])
    assert result.exit_code == 1
    assert "CITYSEG_API_KEY is set but empty" in result.output


def test_422_does_not_echo_a_huge_input(client: TestClient) -> None:
    huge = "9" * 100 + "x" * 60_000  # httpx caps a URL part at 64 KiB
    response = client.get("/v1/samples", params={"offset": huge})
    assert response.status_code == 422
    assert len(response.content) < 2_000
    error = response.json()["detail"][0]
    assert error["loc"] == ["query", "offset"] and "60100 characters" in error["input"]
    response = client.get(f"/v1/samples/{huge}")
    assert response.status_code == 422 and len(response.content) < 2_000


def test_422_still_names_the_field(client: TestClient) -> None:
    response = client.post("/v1/segment?format=nope", content=b"x")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "format"]
    assert response.json()["detail"][0]["input"] == "nope"


def test_api_key_still_works(fake_predictor: object) -> None:
    app = create_app(Settings(api_key="s3cret"), predictor=fake_predictor)  # type: ignore[arg-type]
    with TestClient(app) as client:
        assert client.get("/v1/model").status_code == 401
        assert client.get("/v1/model", headers={"X-API-Key": "s3cret"}).status_code == 200
