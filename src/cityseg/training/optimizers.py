"""A smaller learning rate for a pretrained encoder, on any Keras optimizer.

Keras 3 has no per-layer learning rate; every optimizer calls `update_step(gradient, variable,
learning_rate)` once per variable, so a subclass that scales `learning_rate` for the encoder's
variables gives the encoder `scale` times the schedule's rate (AdamW's decoupled weight decay is
left as is). The scaled variables are the encoder's trainable ones when the model is compiled:
recompile after unfreezing (train.py does).
"""

from __future__ import annotations

from typing import Any

import keras


def scale_encoder_learning_rate(
    optimizer: keras.optimizers.Optimizer, encoder_variables: list[Any], scale: float
) -> keras.optimizers.Optimizer:
    """The same optimizer (same config) whose steps on `encoder_variables` use `scale` x the rate."""
    if scale < 0:
        raise ValueError(f"train.encoder_lr_scale must be >= 0, got {scale}")
    if scale == 1.0 or not encoder_variables:
        return optimizer
    base = type(optimizer)

    def update_step(self: Any, gradient: Any, variable: Any, learning_rate: Any) -> Any:
        if self._var_key(variable) in self._encoder_keys:
            learning_rate = learning_rate * self._encoder_lr_scale
        return base.update_step(self, gradient, variable, learning_rate)

    cls: Any = type(f"EncoderScaled{base.__name__}", (base,), {"update_step": update_step})
    scaled = cls.from_config(optimizer.get_config())
    scaled._encoder_lr_scale = float(scale)
    scaled._encoder_keys = {scaled._var_key(v) for v in encoder_variables}
    return scaled
