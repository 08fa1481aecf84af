"""scripts/gpu/pack.sh refuses a wrong root before it touches the last pack."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_pack_names_a_root_that_is_not_an_imported_camvid(tmp_path: Path) -> None:
    (tmp_path / "split.json").write_text("{}")  # split, but not imported by cityseg
    for root in (tmp_path / "absent", tmp_path):
        result = subprocess.run(
            ["bash", str(REPO / "scripts" / "gpu" / "pack.sh"), str(root)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert f"pack.sh: {root} is not an imported, split CamVid root" in result.stderr
        assert "Traceback" not in result.stderr
