"""Segmentation models on the EfficientNet-Lite0 encoder (ImageNet weights offline).

- `lraspp_lite0`: the real-time one, the LR-ASPP head of `lraspp.py` on Lite0's 1/32 head
  (1280 channels) and 1/8 features (40 channels).
- `deeplabv3plus_lite0`: the stronger one, DeepLabV3+ (ASPP + 1/4 decoder) on a dilated Lite0
  (output stride 16, the 320-channel last block, as DeepLab on MobileNetV2).

Both take raw RGB 0..255; their first layer is the preprocessing the weights expect
(`efficientnet_lite.PREPROCESS_MODE`). With `encoder_weights="imagenet"` the encoder's
BatchNorm layers keep their ImageNet statistics (`FrozenBatchNormalization`): with batches of 8
street crops the batch statistics are noisy and far from ImageNet's (`frozen_bn=False` trains them).
"""

from __future__ import annotations

from pathlib import Path

import keras

from cityseg.models.deeplabv3plus import aspp, deeplab_decoder
from cityseg.models.efficientnet_lite import PREPROCESS_MODE, build_lite0_encoder
from cityseg.models.layers import EncoderPreprocess, FeatureStyle
from cityseg.models.lraspp import lraspp_head
from cityseg.models.registry import ModelSpec, register

ENCODER = "efficientnet_lite0"


def build_lraspp_lite0(
    input_shape: tuple[int, int, int],
    num_classes: int = 8,
    encoder_weights: str | Path | None = None,
    *,
    head_filters: int = 128,
    frozen_bn: bool | None = None,
    feature_style: str = "none",
    feature_style_p: float = 0.5,
    low_stride: int = 8,
    last_block: bool = False,
) -> keras.Model:
    """LR-ASPP on EfficientNet-Lite0; input multiple of 32.

    Args:
        head_filters: channels of the high-level branch.
        frozen_bn: encoder BatchNorm in inference mode; default: True with encoder weights.
        feature_style: `FeatureStyle` mode ("none", "dsu", "mixstyle") on both encoder outputs
            while training (domain generalisation; identity at inference).
        feature_style_p: probability that a frame's features are re-styled.
        low_stride: stride of the skip features, 8 (the paper's), 4 (Lite0's block 2: finer
            edges for poles and people), 16 (Lite0's block 5: more semantic, fewer textures)
            or 0 (no skip: the 1/32 branch alone).
        last_block: the 1/32 branch on the 320-channel last block instead of the 1280-channel
            head conv that ImageNet's classifier was trained on.
    """
    if low_stride not in (0, 4, 8, 16):
        raise ValueError(f"lraspp_lite0 low_stride must be 0, 4, 8 or 16, not {low_stride!r}")
    inputs = keras.Input(input_shape, name="image")
    x = EncoderPreprocess(PREPROCESS_MODE, name="preprocess")(inputs)
    strides = (32, low_stride) if low_stride else (32,)
    encoder = build_lite0_encoder(
        input_shape,
        weights=encoder_weights,
        strides=strides,
        frozen_bn=frozen_bn,
        last_block=last_block,
    )
    high, *skip = encoder(x)  # a list, one feature map per stride asked for
    low = skip[0] if skip else None
    if feature_style != "none":
        high = FeatureStyle(feature_style, feature_style_p, name="style_high")(high)
        if low is not None:
            low = FeatureStyle(feature_style, feature_style_p, name="style_low")(low)
    outputs = lraspp_head(
        high, low, num_classes, head_filters, low_init="zeros", low_stride=low_stride
    )
    return keras.Model(inputs, outputs, name="lraspp_lite0")


def build_deeplabv3plus_lite0(
    input_shape: tuple[int, int, int],
    num_classes: int = 8,
    encoder_weights: str | Path | None = None,
    *,
    aspp_filters: int = 128,
    atrous_rates: tuple[int, ...] = (6, 12, 18),
    low_level_filters: int = 48,
    decoder_filters: int = 128,
    frozen_bn: bool | None = None,
) -> keras.Model:
    """DeepLabV3+ on a dilated EfficientNet-Lite0 (output stride 16); input multiple of 16.

    Args:
        aspp_filters: channels of each ASPP branch.
        atrous_rates: dilation rates of the ASPP 3x3 branches.
        low_level_filters: channels the 1/4 skip is projected to.
        decoder_filters: channels of the decoder convs.
        frozen_bn: encoder BatchNorm in inference mode; default: True with encoder weights.
    """
    height, width = input_shape[:2]
    inputs = keras.Input(input_shape, name="image")
    x = EncoderPreprocess(PREPROCESS_MODE, name="preprocess")(inputs)
    encoder = build_lite0_encoder(
        input_shape,
        weights=encoder_weights,
        strides=(16, 4),
        output_stride=16,
        frozen_bn=frozen_bn,
        last_block=True,
    )
    high, low = encoder(x)
    x = aspp(high, aspp_filters, tuple(atrous_rates), (height // 16, width // 16))
    outputs = deeplab_decoder(x, low, num_classes, low_level_filters, decoder_filters)
    return keras.Model(inputs, outputs, name="deeplabv3plus_lite0")


register(
    ModelSpec(
        name="lraspp_lite0",
        builder=build_lraspp_lite0,
        description="LR-ASPP on EfficientNet-Lite0 (ImageNet offline): real-time, int8-friendly",
        encoder=ENCODER,
        preprocessing=PREPROCESS_MODE,
        divisor=32,
        default_size=(512, 256),
    )
)
register(
    ModelSpec(
        name="deeplabv3plus_lite0",
        builder=build_deeplabv3plus_lite0,
        description="DeepLabV3+ on dilated EfficientNet-Lite0 (output stride 16, ImageNet offline)",
        encoder=ENCODER,
        preprocessing=PREPROCESS_MODE,
        divisor=16,
        default_size=(512, 256),
    )
)
