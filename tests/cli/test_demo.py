"""`cityseg demo`: bad options are refused before anything is written."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cityseg.cli import app


def test_too_few_cities_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "synth"
    result = CliRunner().invoke(
        app, ["demo", "--data", str(data), "--runs", str(tmp_path / "runs"), "--cities", "4"]
    )
    assert result.exit_code == 2
    assert "cities=4 is too few" in result.output
    assert not data.exists()


def test_bad_size_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--data", str(tmp_path / "synth"), "--size", "1024by512", "--no-serve"]
    )
    assert result.exit_code == 2
    assert "WIDTHxHEIGHT" in result.output
