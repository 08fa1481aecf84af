"""Once, outside CI: compare the Keras Lite0 logits with the PyTorch reference implementation.

Two halves, two environments (torch is no dependency of cityseg):
    .venv/bin/python scripts/lite0_torch_reference.py keras /tmp/lite0ref.npz
    python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch numpy \\
        efficientnet-lite-pytorch==0.1.0
    /tmp/torchref/bin/python scripts/lite0_torch_reference.py torch /tmp/lite0ref.npz
The reference is `efficientnet_lite_pytorch` (the efficientnet_pytorch fork with the Lite
variants, from the same author as the weights package), loading the same .pth with torch.load.
Measured 2026-11-30: largest |logit difference| 5.7e-6 over chelsea/coffee/rocket; top-3
identical (285 Egyptian cat, 282, 281 / 967 espresso, 968 cup, 925 / 657 missile, 744, 540).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def keras_side(out: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "models"))
    from test_efficientnet_lite import PHOTOS, photo

    from cityseg.models import efficientnet_lite as lite

    model = lite.build_efficientnet_lite0((224, 224, 3), include_top=True, weights="imagenet")
    x = lite.preprocess_input(np.stack([photo(n) for n in PHOTOS])).astype("float32")
    logits = np.asarray(model(x, training=False))
    np.savez(
        out,
        x=x,
        logits=logits,
        names=np.array(list(PHOTOS)),
        path=str(lite.imagenet_weights_path()),
    )
    print("keras top-1", logits.argmax(1))


def torch_side(out: Path) -> None:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    saved = np.load(out)
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(str(saved["path"]), map_location="cpu", weights_only=True))
    model.eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(saved["x"]).permute(0, 3, 1, 2).contiguous()).numpy()
    print("largest |logit difference|", float(np.abs(ref - saved["logits"]).max()))
    for name, r, k in zip(saved["names"], ref, saved["logits"], strict=True):
        print(name, "torch top-3", np.argsort(-r)[:3], "keras top-3", np.argsort(-k)[:3])


if __name__ == "__main__":
    {"keras": keras_side, "torch": torch_side}[sys.argv[1]](Path(sys.argv[2]))
