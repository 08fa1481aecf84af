"""`unet_mini`: the baseline, a small U-Net trained from scratch (~0.5M parameters)."""

from __future__ import annotations

from pathlib import Path

import keras

from cityseg.models.layers import EncoderPreprocess, conv_bn_relu
from cityseg.models.registry import ModelSpec, register


def build_unet_mini(
    input_shape: tuple[int, int, int],
    num_classes: int = 8,
    encoder_weights: str | Path | None = None,
    filters: tuple[int, ...] = (16, 32, 64, 128),
) -> keras.Model:
    """U-Net: one level per entry of `filters`, the last being the bottleneck.

    Each level is two conv-BN-ReLU; the decoder upsamples (bilinear), concatenates the skip
    and applies two more. With the default filters the input must be a multiple of 8.
    """
    if encoder_weights is not None:
        raise ValueError("unet_mini is trained from scratch; encoder_weights must be None")
    inputs = keras.Input(input_shape, name="image")
    x = EncoderPreprocess("unit", name="preprocess")(inputs)
    skips = []
    for level, width in enumerate(filters[:-1]):
        x = conv_bn_relu(x, width, name=f"enc{level}_a")
        x = conv_bn_relu(x, width, name=f"enc{level}_b")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
    x = conv_bn_relu(x, filters[-1], name="bottleneck_a")
    x = conv_bn_relu(x, filters[-1], name="bottleneck_b")
    for level in reversed(range(len(filters) - 1)):
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{level}_up")(x)
        x = keras.layers.Concatenate(name=f"dec{level}_concat")([x, skips[level]])
        x = conv_bn_relu(x, filters[level], name=f"dec{level}_a")
        x = conv_bn_relu(x, filters[level], name=f"dec{level}_b")
    outputs = keras.layers.Conv2D(num_classes, 1, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name="unet_mini")


register(
    ModelSpec(
        name="unet_mini",
        builder=build_unet_mini,
        description="Small U-Net from scratch (16-32-64-128 filters, BatchNorm, ReLU)",
        encoder=None,
        preprocessing="unit",
        divisor=8,
        default_size=(256, 128),
    )
)
