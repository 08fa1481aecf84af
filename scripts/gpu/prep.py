"""On the GPU machine: the carried WebP frames back to PNG in the data/camvid layout.

The split manifest comes along with an empty test set: the test drive stays here and is scored
here (`scripts/gpu/rescore_run.py`).
"""

import json
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

SRC, DST = Path(".device/data"), Path("data/camvid")


def one(webp: Path) -> None:
    out = DST / webp.relative_to(SRC).with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.open(webp).convert("RGB").save(out, compress_level=1)


if __name__ == "__main__":
    frames = sorted(SRC.glob("leftImg8bit/*/*/*.webp"))
    with ProcessPoolExecutor(16) as ex:
        list(ex.map(one, frames))
    for label in SRC.glob("gtFine/*/*/*.png"):
        out = DST / label.relative_to(SRC)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(label, out)
    shutil.copy2(SRC / "split_device.json", DST / "split.json")
    shutil.copy2(SRC / "camvid_import.json", DST / "camvid_import.json")
    m = json.loads((DST / "split.json").read_text())
    print({k: v["count"] for k, v in m["sets"].items()}, len(frames), "frames", file=sys.stderr)
