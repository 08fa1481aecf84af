"""scripts/int8_parity.py names a run folder without a model, instead of a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "int8_parity.py"


def test_a_run_without_a_model_is_named(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--run", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert f"{tmp_path}: no model.keras in this run folder" in done.stderr
    assert "Traceback" not in done.stderr
