"""`fpn_efficientnetb0`: Feature Pyramid Network decoder (segmentation_models style).

Top-down pyramid P5..P2 (1/32..1/4) with lateral 1x1 convs, a two-conv segmentation block
on each level, all upsampled to 1/4, summed, then logits upsampled x4 to the input.
"""

from __future__ import annotations

from pathlib import Path

import keras

from cityseg.models.encoders import build_encoder, get_encoder_info
from cityseg.models.layers import EncoderPreprocess, conv_bn_relu, logits_head, upsample
from cityseg.models.registry import ModelSpec, register

PYRAMID_STRIDES = (32, 16, 8, 4)  # P5..P2


def build_fpn(
    input_shape: tuple[int, int, int],
    num_classes: int = 8,
    encoder_weights: str | Path | None = None,
    *,
    encoder: str = "efficientnetb0",
    alpha: float | None = None,
    pyramid_filters: int = 256,
    segmentation_filters: int = 128,
    dropout: float = 0.2,
) -> keras.Model:
    """FPN on a `keras.applications` encoder; input multiple of 32.

    Args:
        encoder: backbone name from `encoders.ENCODERS`.
        alpha: encoder width multiplier where it has one.
        pyramid_filters: channels of the pyramid levels.
        segmentation_filters: channels of each level's segmentation block.
        dropout: spatial dropout before the logits.
    """
    info = get_encoder_info(encoder)
    inputs = keras.Input(input_shape, name="image")
    x = EncoderPreprocess(info.preprocess, name="preprocess")(inputs)
    backbone = build_encoder(
        encoder, input_shape, weights=encoder_weights, strides=PYRAMID_STRIDES, width=alpha
    )
    features = dict(zip(PYRAMID_STRIDES, backbone(x), strict=True))
    pyramid: dict[int, object] = {}
    top = None
    for stride in PYRAMID_STRIDES:
        lateral = keras.layers.Conv2D(pyramid_filters, 1, name=f"fpn{stride}_lateral")(
            features[stride]
        )
        if top is not None:
            up = upsample(top, 2, name=f"fpn{stride}_up")
            lateral = keras.layers.Add(name=f"fpn{stride}_add")([up, lateral])
        top = lateral
        pyramid[stride] = lateral
    heads = []
    for stride in PYRAMID_STRIDES:
        y = conv_bn_relu(pyramid[stride], segmentation_filters, name=f"seg{stride}_a")
        y = conv_bn_relu(y, segmentation_filters, name=f"seg{stride}_b")
        heads.append(upsample(y, stride // 4, name=f"seg{stride}_up"))
    x = keras.layers.Add(name="seg_merge")(heads)
    x = conv_bn_relu(x, segmentation_filters, name="seg_final")
    if dropout:
        x = keras.layers.SpatialDropout2D(dropout, name="seg_dropout")(x)
    outputs = logits_head(x, num_classes, factor=4)
    return keras.Model(inputs, outputs, name=f"fpn_{encoder}")


def build_fpn_efficientnetb0(**kwargs) -> keras.Model:
    """FPN on EfficientNetB0 (see `build_fpn`)."""
    return build_fpn(encoder="efficientnetb0", **kwargs)


register(
    ModelSpec(
        name="fpn_efficientnetb0",
        builder=build_fpn_efficientnetb0,
        description="FPN on EfficientNetB0 (light encoder; rescales inside the encoder)",
        encoder="efficientnetb0",
        preprocessing=get_encoder_info("efficientnetb0").preprocess,
        divisor=32,
        default_size=(512, 256),
    )
)
