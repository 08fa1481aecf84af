"""U-Net decoders on pretrained encoders (`unet_vgg16`, `unet_mobilenetv2`, ...).

The encoder's skip layers come from the lookup table in `encoders.ENCODERS`; the decoder
walks `encoders.STRIDES` from 1/32 to full resolution, concatenating a skip wherever the
backbone has one at that stride (segmentation_models style).
"""

from __future__ import annotations

from pathlib import Path

import keras

from cityseg.models.encoders import build_encoder, encoder_strides, get_encoder_info
from cityseg.models.layers import EncoderPreprocess, conv_bn_relu, logits_head
from cityseg.models.registry import ModelSpec, register

DEFAULT_DECODER_FILTERS = (256, 128, 64, 32, 16)  # one per 2x upsampling, 1/16 .. 1/1


def build_unet(
    input_shape: tuple[int, int, int],
    num_classes: int = 8,
    encoder_weights: str | Path | None = None,
    *,
    encoder: str = "vgg16",
    alpha: float | None = None,
    decoder_filters: tuple[int, ...] = DEFAULT_DECODER_FILTERS,
) -> keras.Model:
    """U-Net with a `keras.applications` encoder; input multiple of 32.

    Args:
        encoder: backbone name from `encoders.ENCODERS`.
        alpha: encoder width multiplier where it has one (MobileNet).
        decoder_filters: filters of the 5 decoder blocks, from 1/16 to full resolution.
    """
    if len(decoder_filters) != 5:
        raise ValueError(f"decoder_filters needs 5 entries (1/16..1/1), got {decoder_filters}")
    info = get_encoder_info(encoder)
    inputs = keras.Input(input_shape, name="image")
    x = EncoderPreprocess(info.preprocess, name="preprocess")(inputs)
    backbone = build_encoder(encoder, input_shape, weights=encoder_weights, width=alpha)
    features = dict(zip(encoder_strides(encoder), backbone(x), strict=True))
    x = features[32]
    for i, stride in enumerate((16, 8, 4, 2, 1)):
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{stride}_up")(x)
        if stride in features:
            x = keras.layers.Concatenate(name=f"dec{stride}_concat")([x, features[stride]])
        x = conv_bn_relu(x, decoder_filters[i], name=f"dec{stride}_a")
        x = conv_bn_relu(x, decoder_filters[i], name=f"dec{stride}_b")
    outputs = logits_head(x, num_classes)
    return keras.Model(inputs, outputs, name=f"unet_{encoder}")


def _builder(encoder: str):
    def build(**kwargs):
        return build_unet(encoder=encoder, **kwargs)

    build.__doc__ = f"U-Net on {encoder} (see `build_unet`)."
    return build


for _encoder, _description in (
    ("vgg16", "U-Net on a VGG16 encoder (14.7M-parameter encoder, caffe preprocessing)"),
    ("mobilenetv2", "U-Net on a MobileNetV2 encoder (light, for embedded targets)"),
):
    register(
        ModelSpec(
            name=f"unet_{_encoder}",
            builder=_builder(_encoder),
            description=_description,
            encoder=_encoder,
            preprocessing=get_encoder_info(_encoder).preprocess,
            divisor=32,
            default_size=(512, 256),
        )
    )
