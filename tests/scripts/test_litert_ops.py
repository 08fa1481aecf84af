"""scripts/litert_ops.py names the file it cannot read, instead of a LiteRT traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "litert_ops.py"


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such LiteRT model file"), (b"not a model", "LiteRT cannot load it")],
)
def test_a_missing_or_corrupt_model_is_named(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    model = tmp_path / "m.tflite"
    if content is not None:
        model.write_bytes(content)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(model)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert f"{model}: {message}" in done.stderr
    assert "Traceback" not in done.stderr
