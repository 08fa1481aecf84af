"""`lraspp_mobilenetv3`: Lite R-ASPP on MobileNetV3 (Howard et al., "Searching for MobileNetV3").

The real-time head for embedded targets: the 1/32 features pass a 1x1 conv gated by a
global-pooling sigmoid branch (squeeze-excite style attention), are upsampled to 1/8, and
combined with a classifier on the 1/8 features. Only builtin TFLite ops.
"""

from __future__ import annotations

from pathlib import Path

import keras

from cityseg.models.encoders import build_encoder, get_encoder_info
from cityseg.models.layers import EncoderPreprocess, conv_bn_relu, upsample
from cityseg.models.registry import ModelSpec, register

VARIANTS = {"small": "mobilenetv3small", "large": "mobilenetv3large"}


def build_lraspp(
    input_shape: tuple[int, int, int],
    num_classes: int = 8,
    encoder_weights: str | Path | None = None,
    *,
    variant: str = "small",
    alpha: float = 1.0,
    head_filters: int = 128,
) -> keras.Model:
    """LR-ASPP; input multiple of 32.

    Args:
        variant: "small" (MobileNetV3-Small) or "large" (MobileNetV3-Large).
        alpha: MobileNetV3 width multiplier (ImageNet weights exist for 0.75 and 1.0).
        head_filters: channels of the high-level branch.
    """
    if variant not in VARIANTS:
        raise ValueError(f"lraspp variant {variant!r} unknown; choose from {sorted(VARIANTS)}")
    name = VARIANTS[variant]
    info = get_encoder_info(name)
    inputs = keras.Input(input_shape, name="image")
    x = EncoderPreprocess(info.preprocess, name="preprocess")(inputs)
    encoder = build_encoder(
        name, input_shape, weights=encoder_weights, strides=(32, 8), width=alpha
    )
    high, low = encoder(x)
    return keras.Model(
        inputs, lraspp_head(high, low, num_classes, head_filters), name=f"lraspp_{name}"
    )


def lraspp_head(
    high,
    low,
    num_classes: int,
    head_filters: int,
    *,
    low_init: str = "glorot_uniform",
    low_stride: int = 8,
):
    """The LR-ASPP head on 1/32 (`high`) and 1/`low_stride` (`low`) features; full-size logits.

    `low_init` initialises the low classifier: "zeros" for an encoder whose 1/8 features are not
    normalised (EfficientNet-Lite0's have std 6.5, so a Glorot classifier starts with logits of
    std 8.5 and a cross-entropy of 8 that a frozen encoder's first epoch cannot unlearn).
    `low` None: no skip, the 1/32 branch alone (`low_stride` is then ignored).
    """
    branch = conv_bn_relu(high, head_filters, 1, name="lraspp_high")
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True, name="lraspp_pool")(high)
    gate = keras.layers.Conv2D(head_filters, 1, activation="sigmoid", name="lraspp_gate")(gate)
    x = keras.layers.Multiply(name="lraspp_attend")([branch, gate])
    stride = 32 if low is None else low_stride
    x = upsample(x, 32 // stride, name="lraspp_up")
    x = keras.layers.Conv2D(num_classes, 1, dtype="float32", name="lraspp_high_cls")(x)
    if low is not None:
        low_logits = keras.layers.Conv2D(
            num_classes, 1, kernel_initializer=low_init, dtype="float32", name="lraspp_low_cls"
        )(low)
        x = keras.layers.Add(dtype="float32", name="lraspp_sum")([x, low_logits])
    return keras.layers.UpSampling2D(
        stride, interpolation="bilinear", dtype="float32", name="logits_up"
    )(x)


register(
    ModelSpec(
        name="lraspp_mobilenetv3",
        builder=build_lraspp,
        description="LR-ASPP on MobileNetV3-Small (variant=large): real-time embedded head",
        encoder="mobilenetv3small",
        preprocessing=get_encoder_info("mobilenetv3small").preprocess,
        divisor=32,
        default_size=(512, 256),
    )
)
