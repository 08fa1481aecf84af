"""`deeplabv3plus`: DeepLabV3+ (ASPP + decoder) on MobileNetV2 (default) or ResNet50.

keras.applications encoders cannot dilate their last stage, so ASPP runs on the 1/16
features (the encoder is cut there, as in the keras.io DeepLabV3+ example) and the decoder
fuses the 1/4 low-level features.
"""

from __future__ import annotations

from pathlib import Path

import keras

from cityseg.models.encoders import build_encoder, get_encoder_info
from cityseg.models.layers import EncoderPreprocess, conv_bn_relu, logits_head, upsample
from cityseg.models.registry import ModelSpec, register

BACKBONES = ("mobilenetv2", "resnet50")


def aspp(x, filters: int, rates: tuple[int, ...], feature_size: tuple[int, int]):
    """Atrous Spatial Pyramid Pooling: 1x1, dilated 3x3 per rate, and image pooling."""
    branches = [conv_bn_relu(x, filters, 1, name="aspp_1x1")]
    for rate in rates:
        branches.append(conv_bn_relu(x, filters, 3, dilation_rate=rate, name=f"aspp_rate{rate}"))
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(x)
    pooled = conv_bn_relu(pooled, filters, 1, name="aspp_pool_proj")
    branches.append(upsample(pooled, feature_size, name="aspp_pool_up"))
    x = keras.layers.Concatenate(name="aspp_concat")(branches)
    return conv_bn_relu(x, filters, 1, name="aspp_proj")


def build_deeplabv3plus(
    input_shape: tuple[int, int, int],
    num_classes: int = 8,
    encoder_weights: str | Path | None = None,
    *,
    backbone: str = "mobilenetv2",
    alpha: float | None = None,
    aspp_filters: int = 256,
    atrous_rates: tuple[int, ...] = (6, 12, 18),
    low_level_filters: int = 48,
    decoder_filters: int = 256,
) -> keras.Model:
    """DeepLabV3+; input multiple of 16.

    Args:
        backbone: "mobilenetv2" or "resnet50".
        alpha: MobileNetV2 width multiplier.
        aspp_filters: channels of each ASPP branch.
        atrous_rates: dilation rates of the ASPP 3x3 branches (for output stride 16).
        low_level_filters: channels the 1/4 skip is projected to.
        decoder_filters: channels of the decoder convs.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"deeplabv3plus backbone {backbone!r} unknown; choose from {BACKBONES}")
    info = get_encoder_info(backbone)
    height, width = input_shape[:2]
    inputs = keras.Input(input_shape, name="image")
    x = EncoderPreprocess(info.preprocess, name="preprocess")(inputs)
    encoder = build_encoder(
        backbone, input_shape, weights=encoder_weights, strides=(16, 4), width=alpha
    )
    high, low = encoder(x)
    x = aspp(high, aspp_filters, tuple(atrous_rates), (height // 16, width // 16))
    outputs = deeplab_decoder(x, low, num_classes, low_level_filters, decoder_filters)
    return keras.Model(inputs, outputs, name=f"deeplabv3plus_{backbone}")


def deeplab_decoder(x, low, num_classes: int, low_level_filters: int, decoder_filters: int):
    """DeepLabV3+ decoder: ASPP output (1/16) up to the 1/4 skip, two convs, logits x4."""
    x = upsample(x, 4, name="decoder_up")
    low = conv_bn_relu(low, low_level_filters, 1, name="decoder_low")
    x = keras.layers.Concatenate(name="decoder_concat")([x, low])
    x = conv_bn_relu(x, decoder_filters, 3, name="decoder_a")
    x = conv_bn_relu(x, decoder_filters, 3, name="decoder_b")
    return logits_head(x, num_classes, factor=4)


register(
    ModelSpec(
        name="deeplabv3plus",
        builder=build_deeplabv3plus,
        description="DeepLabV3+ (ASPP at 1/16 + 1/4 decoder) on MobileNetV2; backbone=resnet50",
        encoder="mobilenetv2",
        preprocessing=get_encoder_info("mobilenetv2").preprocess,
        divisor=16,
        default_size=(512, 256),
    )
)
