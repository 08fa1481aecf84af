"""Pretrained encoders from `keras.applications`, with their skip layers as a lookup table.

The table (segmentation_models style) names, for each backbone, the layer that carries the
features at each output stride. `STRIDES` is the one place the scale order is written:
decoders walk it from the deepest to the shallowest level.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

logger = logging.getLogger(__name__)

# Output strides from the deepest (1/32) to the full resolution; decoders walk this order.
STRIDES: tuple[int, ...] = (32, 16, 8, 4, 2, 1)
OUTPUT = "<output>"  # table marker: the application's own final output


@dataclass(frozen=True)
class EncoderInfo:
    """One backbone: the keras.applications constructor, its preprocessing, its skip layers."""

    application: str  # attribute of keras.applications, e.g. "VGG16"
    preprocess: str  # EncoderPreprocess mode equal to its preprocess_input
    module: str  # keras.applications submodule holding its preprocess_input
    features: dict[int, str] = field(default_factory=dict)  # output stride -> layer name
    width_arg: str | None = None  # constructor argument that scales the width (alpha)


ENCODERS: dict[str, EncoderInfo] = {
    "vgg16": EncoderInfo(
        "VGG16",
        "caffe",
        "vgg16",
        {
            32: "block5_pool",
            16: "block5_conv3",
            8: "block4_conv3",
            4: "block3_conv3",
            2: "block2_conv2",
            1: "block1_conv2",
        },
    ),
    "resnet50": EncoderInfo(
        "ResNet50",
        "caffe",
        "resnet50",
        {
            32: "conv5_block3_out",
            16: "conv4_block6_out",
            8: "conv3_block4_out",
            4: "conv2_block3_out",
            2: "conv1_relu",
        },
    ),
    "mobilenetv2": EncoderInfo(
        "MobileNetV2",
        "tf",
        "mobilenet_v2",
        {
            32: "out_relu",
            16: "block_13_expand_relu",
            8: "block_6_expand_relu",
            4: "block_3_expand_relu",
            2: "block_1_expand_relu",
        },
        width_arg="alpha",
    ),
    # MobileNetV3 and EfficientNet rescale inside the application (include_preprocessing /
    # Rescaling+Normalization), so their own preprocess_input is the identity: mode "none".
    "mobilenetv3small": EncoderInfo(
        "MobileNetV3Small",
        "none",
        "mobilenet_v3",
        {32: OUTPUT, 16: "expanded_conv_7_add", 8: "expanded_conv_2_add", 4: "expanded_conv_add"},
        width_arg="alpha",
    ),
    "mobilenetv3large": EncoderInfo(
        "MobileNetV3Large",
        "none",
        "mobilenet_v3",
        {
            32: OUTPUT,
            16: "expanded_conv_11_add",
            8: "expanded_conv_5_add",
            4: "expanded_conv_2_add",
            2: "expanded_conv_add",
        },
        width_arg="alpha",
    ),
    "efficientnetb0": EncoderInfo(
        "EfficientNetB0",
        "none",
        "efficientnet",
        {
            32: "top_activation",
            16: "block6a_expand_activation",
            8: "block4a_expand_activation",
            4: "block3a_expand_activation",
            2: "block2a_expand_activation",
        },
    ),
}


class EncoderWeightsError(RuntimeError):
    """Pretrained encoder weights could not be found, downloaded or loaded."""


def get_encoder_info(name: str) -> EncoderInfo:
    """The table entry for a backbone; unknown names raise listing the known ones."""
    if name not in ENCODERS:
        raise KeyError(f"unknown encoder {name!r}; known: {sorted(ENCODERS)}")
    return ENCODERS[name]


def preprocess_input_fn(name: str) -> Any:
    """The backbone's own `keras.applications.<module>.preprocess_input` (for tests/parity).

    "efficientnet_lite0" (not a keras.applications model) gives its own, from
    `cityseg.models.efficientnet_lite`.
    """
    if name == "efficientnet_lite0":
        from cityseg.models.efficientnet_lite import preprocess_input

        return preprocess_input
    module = getattr(keras.applications, get_encoder_info(name).module)
    return module.preprocess_input


def _weights_arg(weights: str | Path | None) -> str | None:
    if weights is None or weights == "imagenet":
        return weights
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"encoder weights file not found: {path}")
    return str(path)


def _download_url(error: BaseException) -> str | None:
    """The weights URL named by a failed `keras.utils.get_file`, if the error is one."""
    texts = [str(error), str(error.__cause__ or ""), str(error.__context__ or "")]
    urls = re.findall(r"https?://\S+?\.h5", " ".join(texts))
    return urls[0] if urls else None


def _missing_weights_message(app: str, url: str, error: BaseException) -> str:
    fname = url.rsplit("/", 1)[-1]
    return (
        f"could not download ImageNet weights for {app}: {error}\n"
        f"Fetch {url} on a machine with internet and copy it to ~/.keras/models/{fname} "
        f"(Keras then uses it without downloading), or pass its path as "
        f"encoder_weights=/path/to/{fname}."
    )


def build_encoder(
    name: str,
    input_shape: tuple[int, int, int],
    *,
    weights: str | Path | None = None,
    strides: tuple[int, ...] = STRIDES,
    width: float | None = None,
) -> keras.Model:
    """A multi-output `keras.Model` named "encoder": one output per requested output stride.

    Args:
        name: a key of `ENCODERS`.
        input_shape: `(H, W, 3)` of the already preprocessed input.
        weights: `"imagenet"`, None (random init) or the path to a weights file for the
            application (a Keras `.h5` from keras-applications or a `.weights.h5`).
        strides: which strides to output, deepest first; strides the backbone has no layer
            for are skipped.
        width: width multiplier (`alpha`) where the backbone has one.
    """
    info = get_encoder_info(name)
    kwargs: dict[str, Any] = {}
    if width is not None:
        if info.width_arg is None:
            raise ValueError(f"encoder {name!r} has no width multiplier")
        kwargs[info.width_arg] = width
    constructor = getattr(keras.applications, info.application)
    weights_arg = _weights_arg(weights)
    try:
        base = constructor(
            input_shape=input_shape, include_top=False, weights=weights_arg, **kwargs
        )
    except Exception as error:
        url = _download_url(error) if weights_arg == "imagenet" else None
        if url is not None:
            raise EncoderWeightsError(
                _missing_weights_message(info.application, url, error)
            ) from error
        if weights_arg is not None:
            raise EncoderWeightsError(
                f"could not load encoder weights {weights_arg} into {info.application}: {error}"
            ) from error
        raise
    if weights_arg is None:
        _speed_up_batchnorm(base)
    outputs = []
    for stride in strides:
        layer_name = info.features.get(stride)
        if layer_name is None:
            continue
        outputs.append(base.output if layer_name == OUTPUT else base.get_layer(layer_name).output)
    logger.debug("encoder %s: strides %s", name, [s for s in strides if s in info.features])
    return keras.Model(base.input, outputs, name="encoder")


# keras.applications MobileNets use BatchNorm momentum 0.999, tuned for fine-tuning
# pretrained statistics over long ImageNet schedules. From scratch on a short schedule the
# moving statistics lag the weights so far that inference-mode outputs collapse. Measured on
# lraspp_mobilenetv3, 256x128, synthetic cities, 20 steps per epoch: val mIoU stuck at 0.035
# (one class everywhere) with 0.999 and with 0.99, 0.32 after two epochs with 0.9.
FROM_SCRATCH_BN_MOMENTUM = 0.9


def _speed_up_batchnorm(model: keras.Model) -> None:
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = min(layer.momentum, FROM_SCRATCH_BN_MOMENTUM)


def encoder_strides(name: str, strides: tuple[int, ...] = STRIDES) -> tuple[int, ...]:
    """The subset of `strides` for which the backbone has a feature layer, in that order."""
    info = get_encoder_info(name)
    return tuple(s for s in strides if s in info.features)
