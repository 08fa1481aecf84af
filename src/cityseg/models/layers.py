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


FEATURE_STYLES = ("none", "dsu", "mixstyle")


@keras.saving.register_keras_serializable(package="cityseg")
class FeatureStyle(keras.layers.Layer):
    """Randomise each frame's channel statistics of a feature map while training.

    Domain generalisation at the feature level: a frame's style (light, colour, texture
    contrast) shows in the per-channel mean and standard deviation of its features, so a head
    trained on features whose statistics move learns to rely less on them. The frame is
    normalised with its own statistics and re-styled with new ones:

    - `"dsu"`: Li et al., "Uncertainty Modeling for Out-of-Distribution Generalization"
      (ICLR 2022). New mean and std drawn around the frame's own, with the spread the batch
      shows for each channel (a std is kept above a tenth of the frame's own).
    - `"mixstyle"`: Zhou et al., "Domain Generalization with MixStyle" (ICLR 2021). The
      frame's statistics mixed with another frame's of the batch, weight ~ Beta(alpha, alpha).
    - `"none"`: identity.

    Each frame is re-styled with probability `p`. At inference the layer is the identity, so
    exports and the service never see it.
    """

    def __init__(
        self,
        mode: str = "dsu",
        p: float = 0.5,
        alpha: float = 0.1,
        epsilon: float = 1e-6,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if mode not in FEATURE_STYLES:
            raise ValueError(f"FeatureStyle mode {mode!r} unknown; choose from {FEATURE_STYLES}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"FeatureStyle p must be in [0, 1]; got {p}")
        self.mode = mode
        self.p = float(p)
        self.alpha = float(alpha)
        self.epsilon = float(epsilon)
        self.seed = seed
        self._rng = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: Any = None) -> Any:
        """Re-styled features while training, the inputs unchanged otherwise."""
        if not training or self.mode == "none" or self.p == 0.0:
            return inputs
        ops = keras.ops
        x = ops.cast(inputs, "float32")
        mean = ops.stop_gradient(ops.mean(x, axis=(1, 2), keepdims=True))
        std = ops.stop_gradient(ops.sqrt(ops.var(x, axis=(1, 2), keepdims=True) + self.epsilon))
        normed = (x - mean) / std
        if self.mode == "dsu":
            mean_spread = ops.sqrt(ops.var(mean, axis=0, keepdims=True) + self.epsilon)
            std_spread = ops.sqrt(ops.var(std, axis=0, keepdims=True) + self.epsilon)
            new_mean = mean + keras.random.normal(ops.shape(mean), seed=self._rng) * mean_spread
            new_std = std + keras.random.normal(ops.shape(std), seed=self._rng) * std_spread
            # A draw below a tenth of the frame's own spread would flatten or flip its pattern.
            new_std = ops.maximum(new_std, 0.1 * std)
        else:
            batch = ops.shape(x)[0]
            weight = keras.random.beta(
                (batch, 1, 1, 1), self.alpha, self.alpha, seed=self._rng, dtype="float32"
            )
            order = keras.random.shuffle(ops.arange(batch), seed=self._rng)
            new_mean = weight * mean + (1.0 - weight) * ops.take(mean, order, axis=0)
            new_std = weight * std + (1.0 - weight) * ops.take(std, order, axis=0)
        styled = normed * new_std + new_mean
        chosen = keras.random.uniform((ops.shape(x)[0], 1, 1, 1), seed=self._rng) < self.p
        return ops.cast(ops.where(chosen, styled, x), inputs.dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """Same shape as the input."""
        return input_shape

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for `.keras` serialisation."""
        return {
            **super().get_config(),
            "mode": self.mode,
            "p": self.p,
            "alpha": self.alpha,
            "epsilon": self.epsilon,
            "seed": self.seed,
        }
