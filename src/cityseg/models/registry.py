"""Model zoo registry (timm style): `create_model(name, **kw)`, `list_models()`, `get_spec`.

Each model module registers a `ModelSpec` when imported; the built-in modules are imported
on first use, so importing this module only registers the custom layers (needed before
`keras.saving.load_model` reads a cityseg `.keras` file).

Example:
    >>> model = create_model("unet_mini", input_size=(256, 128))
    >>> model.output_shape
    (None, 128, 256, 8)
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from cityseg.models import layers as _layers  # noqa: F401  (registers the custom layers)

logger = logging.getLogger(__name__)

# Modules that register the built-in models; imported lazily by `_load_builtins`.
_BUILTIN_MODULES = (
    "cityseg.models.unet_mini",
    "cityseg.models.unet",
    "cityseg.models.fpn",
    "cityseg.models.deeplabv3plus",
    "cityseg.models.lraspp",
    "cityseg.models.lite0",
)
ENCODER_LAYER = "encoder"  # name of the nested encoder sub-model in every pretrained model


@dataclass(frozen=True)
class ModelSpec:
    """How to build one named model, and the facts that travel with it.

    Args:
        name: registry name, e.g. "unet_mini".
        builder: `builder(input_shape=(H, W, 3), num_classes, encoder_weights, **kw) -> Model`.
        description: one line for `cityseg models` listings and the report.
        encoder: backbone name from `encoders.ENCODERS` (or "efficientnet_lite0"), or None for
            models from scratch.
        preprocessing: `EncoderPreprocess` mode of the model's first layer.
        divisor: input width and height must be multiples of this.
        default_size: `(width, height)` used when none is given.
    """

    name: str
    builder: Callable[..., keras.Model]
    description: str
    encoder: str | None
    preprocessing: str
    divisor: int
    default_size: tuple[int, int] = (256, 128)


_REGISTRY: dict[str, ModelSpec] = {}
_loaded = False


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to the zoo; a second spec under the same name is an error."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _loaded = True


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The `ModelSpec` of a model; an unknown name raises listing the known ones."""
    _load_builtins()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def check_input_size(spec: ModelSpec, input_size: tuple[int, int]) -> None:
    """Raise a clear error unless width and height are positive multiples of the divisor."""
    width, height = (int(v) for v in input_size)
    if width <= 0 or height <= 0 or width % spec.divisor or height % spec.divisor:
        raise ValueError(
            f"model {spec.name!r} needs an input size whose width and height are multiples of "
            f"{spec.divisor}; got {width}x{height} (e.g. use "
            f"{max(spec.divisor, round(width / spec.divisor) * spec.divisor)}x"
            f"{max(spec.divisor, round(height / spec.divisor) * spec.divisor)})"
        )


def create_model(
    name: str,
    *,
    input_size: tuple[int, int] | None = None,
    num_classes: int = 8,
    encoder_weights: str | Path | None = None,
    **kwargs: Any,
) -> keras.Model:
    """Build a registered model: raw RGB 0..255 `(H, W, 3)` in, logits `(H, W, C)` out.

    Args:
        name: a name from `list_models()`.
        input_size: `(width, height)`; the spec's `default_size` when None.
        num_classes: number of output channels (8 Cityscapes categories).
        encoder_weights: "imagenet", None or a path to a weights file for the encoder.
        **kwargs: model-specific arguments (e.g. `alpha`, `backbone`, decoder widths).
    """
    spec = get_spec(name)
    size = tuple(input_size) if input_size is not None else spec.default_size
    check_input_size(spec, size)  # type: ignore[arg-type]
    if spec.encoder is None and encoder_weights is not None:
        raise ValueError(f"model {name!r} has no pretrained encoder; encoder_weights must be None")
    width, height = size
    model = spec.builder(
        input_shape=(height, width, 3),
        num_classes=num_classes,
        encoder_weights=encoder_weights,
        **kwargs,
    )
    logger.info("built %s at %dx%d: %d parameters", name, width, height, model.count_params())
    return model


def set_encoder_trainable(model: keras.Model, trainable: bool) -> int:
    """Freeze (False) or unfreeze (True) the pretrained encoder; returns its layer count.

    Recompile the model afterwards: Keras reads `trainable` when the train step is built.
    Frozen BatchNorm layers also run in inference mode (Keras 3 semantics), which is what
    fine-tuning wants. Raises ValueError for models without an encoder (e.g. unet_mini).
    """
    try:
        encoder = model.get_layer(ENCODER_LAYER)
    except ValueError:
        raise ValueError(
            f"model {model.name!r} has no pretrained encoder layer {ENCODER_LAYER!r}; "
            "freeze_epochs needs a model with an encoder"
        ) from None
    encoder.trainable = trainable
    logger.info("encoder of %s %s", model.name, "unfrozen" if trainable else "frozen")
    return len(encoder.layers)
