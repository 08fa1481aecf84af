"""Output helpers shared by the command modules (not a command module itself)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def echo_json(result: Any, json_out: Path | None) -> None:
    """Print `result` as indented JSON; first write it to `json_out` too when one is given.

    The `--json FILE` convention of the `cityseg bench` commands: the file holds exactly
    what is printed, and a `wrote FILE` line says where it went."""
    text = json.dumps(result, indent=2)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n")
        typer.echo(f"wrote {json_out}")
    typer.echo(text)
