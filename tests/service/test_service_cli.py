"""`cityseg serve` without a model says how to make one; options reach the settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityseg.cli import app


def test_serve_without_runs_exits_with_how_to(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "cityseg demo" in result.output and "--run" in result.output


def test_serve_missing_run_names_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--run", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "nope" in result.output


def test_serve_called_from_python_like_the_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from cityseg.cli.serve import serve

    seen: dict = {}
    monkeypatch.setattr(
        uvicorn, "run", lambda app, host, port, **kw: seen.update(host=host, port=port)
    )
    monkeypatch.setattr(
        "cityseg.service.app.create_app", lambda settings: seen.update(settings=settings)
    )
    serve(run=tmp_path, host="0.0.0.0", port=9999)  # the other options keep typer defaults
    assert (seen["host"], seen["port"]) == ("0.0.0.0", 9999)
    assert seen["settings"].run == tmp_path and seen["settings"].runtime == "auto"


def test_bench_serve_cli_writes_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    calls: list[dict] = []

    def fake_run_bench(**kwargs: object) -> dict:
        calls.append(kwargs)
        return {"benchmark": "serve", "throughput_rps": 1.5}

    monkeypatch.setattr("cityseg.bench.serve.run_bench", fake_run_bench)
    out = tmp_path / "out" / "serve.json"
    args = ["bench", "serve", "--run", str(tmp_path), "--requests", "7", "--concurrency", "3",
            "--size", "320x160", "--json", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["throughput_rps"] == 1.5
    assert calls[0]["requests"] == 7 and calls[0]["concurrency"] == 3
    assert calls[0]["size"] == (320, 160) and calls[0]["run"] == tmp_path
