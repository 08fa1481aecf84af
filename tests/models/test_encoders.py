"""From-scratch encoders must not keep the fine-tuning BatchNorm momentum of keras.applications."""

from __future__ import annotations

import keras
import pytest

from cityseg.models.encoders import FROM_SCRATCH_BN_MOMENTUM, build_encoder


@pytest.mark.parametrize("name", ["mobilenetv2", "mobilenetv3small"])
def test_from_scratch_encoder_batchnorm_tracks_statistics_fast(name: str) -> None:
    encoder = build_encoder(name, (64, 64, 3), weights=None, strides=(32,))
    norms = [
        layer for layer in encoder.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert norms, "the encoder has BatchNorm layers"
    assert all(layer.momentum <= FROM_SCRATCH_BN_MOMENTUM for layer in norms)
