"""Small registered layers and building blocks shared by the model zoo.

Every custom layer stores its constructor arguments in `get_config()` and is registered
under the `cityseg` package, so a `.keras` file reloads with `keras.saving.load_model`
once `cityseg.models.registry` has been imported.
"""

from __future__ import annotations

from typing import Any

import keras

PREPROCESS_MODES = ("caffe", "tf", "torch", "unit", "none")

# keras.applications.imagenet_utils constants: caffe means are in BGR order, torch in RGB.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="cityseg")
class EncoderPreprocess(keras.layers.Layer):
    """Map raw RGB 0..255 to what an encoder expects, exactly as its `preprocess_input` does.

    Args:
        mode: `"caffe"` (RGB->BGR, minus the ImageNet BGR mean: VGG16, ResNet50),
            `"tf"` (scale to [-1, 1]: MobileNetV2), `"torch"` (x/255, ImageNet mean/std),
            `"unit"` (x/255: models trained from scratch) or `"none"` (identity: encoders
            such as MobileNetV3 and EfficientNet that rescale internally).

    Example:
        >>> layer = EncoderPreprocess("tf")
        >>> layer(keras.ops.full((1, 2, 2, 3), 255.0))  # all ones
    """

    def __init__(self, mode: str = "unit", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in PREPROCESS_MODES:
            raise ValueError(
                f"EncoderPreprocess mode {mode!r} unknown; choose from {PREPROCESS_MODES}"
            )
        self.mode = mode

    def call(self, inputs: Any) -> Any:
        """Apply the preprocessing to a batch of raw RGB images."""
        x = keras.ops.cast(inputs, self.compute_dtype)
        if self.mode == "caffe":
            x = x[..., ::-1] - keras.ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=x.dtype)
        elif self.mode == "tf":
            x = x / 127.5 - 1.0
        elif self.mode == "torch":
            mean = keras.ops.convert_to_tensor(_TORCH_MEAN, dtype=x.dtype)
            std = keras.ops.convert_to_tensor(_TORCH_STD, dtype=x.dtype)
            x = (x / 255.0 - mean) / std
        elif self.mode == "unit":
            x = x / 255.0
        return x

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """Same shape as the input."""
        return input_shape

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for `.keras` serialisation."""
        return {**super().get_config(), "mode": self.mode}


def conv_bn_relu(
    x: Any,
    filters: int,
    kernel_size: int = 3,
    *,
    dilation_rate: int = 1,
    name: str,
    activation: str = "relu",
) -> Any:
    """Conv2D (no bias) -> BatchNorm -> activation, the basic block of every decoder."""
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        dilation_rate=dilation_rate,
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.Activation(activation, name=f"{name}_{activation}")(x)


def upsample(x: Any, factor: int | tuple[int, int], *, name: str) -> Any:
    """Bilinear upsampling by an integer factor (a TFLite builtin op, RESIZE_BILINEAR)."""
    size = (factor, factor) if isinstance(factor, int) else factor
    if size == (1, 1):
        return x
    return keras.layers.UpSampling2D(size=size, interpolation="bilinear", name=name)(x)


def logits_head(x: Any, num_classes: int, *, factor: int = 1, name: str = "logits") -> Any:
    """1x1 conv to class logits, then bilinear upsampling by `factor` to the input size.

    Both layers are float32 so that the output stays float32 under mixed precision.
    """
    x = keras.layers.Conv2D(num_classes, 1, padding="same", dtype="float32", name=name)(x)
    if factor == 1:
        return x
    return keras.layers.UpSampling2D(
        size=(factor, factor), interpolation="bilinear", dtype="float32", name=f"{name}_up"
    )(x)


@keras.saving.register_keras_serializable(package="cityseg")
class FrozenBatchNormalization(keras.layers.BatchNormalization):
    """BatchNorm that always normalises with its moving statistics (inference mode).

    For fine-tuning a pretrained encoder with small batches: batch statistics of 8 street
    crops are noisy and unlike ImageNet's, so the pretrained statistics are kept while
    gamma and beta still train once the encoder is unfrozen (Detectron's FrozenBN idea).
    """

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        """Normalise with the moving mean and variance whatever `training` says."""
        return super().call(inputs, training=False, mask=mask)
