"""Which input normalisation do the EfficientNet-Lite0 weights expect? Measure it.

Classifies scikit-image's real photos with the Keras Lite0 under candidate normalisations and
prints the top-1 class and the probability of the right class for each. Run:
    .venv/bin/python scripts/lite0_preprocessing.py
"""

from __future__ import annotations

import keras
import numpy as np
from PIL import Image
from skimage import data

from cityseg.models.efficientnet_lite import build_efficientnet_lite0

# photo -> ImageNet classes that count as right (indices of the 1000-class ILSVRC head)
PHOTOS = {
    "chelsea": {281: "tabby", 282: "tiger cat", 285: "Egyptian cat"},
    "coffee": {967: "espresso", 968: "cup"},
    "rocket": {657: "missile", 744: "projectile", 812: "space shuttle"},
}
CANDIDATES = {
    "tf: x/127.5-1": lambda x: x / 127.5 - 1.0,
    "lite official: (x-127)/128": lambda x: (x - 127.0) / 128.0,
    "torch: (x/255-mean)/std": lambda x: (
        (x / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    ),
    "unit: x/255": lambda x: x / 255.0,
    "caffe: BGR-mean": lambda x: x[..., ::-1] - np.array([103.939, 116.779, 123.68]),
}


def photo(name: str, size: int = 224) -> np.ndarray:
    """Center square crop, bilinear resize to size x size, float32 RGB 0..255."""
    img = getattr(data, name)()[..., :3]
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR), np.float32)


def main() -> None:
    model = build_efficientnet_lite0((224, 224, 3), include_top=True, weights="imagenet")
    stem = keras.Model(model.input, model.get_layer("stem_conv").output)
    moving_mean, moving_var = model.get_layer("stem_bn").get_weights()[2:]
    raw = np.stack([photo(n) for n in PHOTOS])
    for label, fn in CANDIDATES.items():
        # The stem BatchNorm's moving statistics were gathered on ImageNet under the training
        # normalisation: the right one gives stem activations with those statistics.
        act = np.asarray(stem(fn(raw).astype("float32")))
        live = moving_var > 1e-8  # a few stem channels are dead (zero variance)
        z = np.abs(act.mean((0, 1, 2)) - moving_mean)[live] / np.sqrt(moving_var[live])
        ratio = np.median(act.var((0, 1, 2))[live] / moving_var[live])
        print(
            f"{label:30s} stem |mean - moving mean| / moving std: median {np.median(z):.3f}, "
            f"median var / moving var {ratio:.2f}"
        )
        logits = np.asarray(model(fn(raw).astype("float32"), training=False))
        logits = np.asarray(model(fn(raw).astype("float32"), training=False))
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        right = [float(probs[i, list(c)].sum()) for i, c in enumerate(PHOTOS.values())]
        hits = [int(logits[i].argmax()) in c for i, c in enumerate(PHOTOS.values())]
        print(
            f"{label:30s} top-1 right {sum(hits)}/{len(hits)}  "
            f"p(right) {' '.join(f'{p:.3f}' for p in right)}  mean {np.mean(right):.3f}  "
            f"top-1 {[int(i) for i in logits.argmax(1)]}"
        )


if __name__ == "__main__":
    main()
