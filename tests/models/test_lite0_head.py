"""The LR-ASPP head on Lite0 starts from the normalised branch alone."""

from __future__ import annotations

import numpy as np
import pytest

from cityseg.models.registry import create_model


def test_lite0_low_classifier_starts_at_zero_mobilenet_keeps_glorot() -> None:
    # Lite0's 1/8 features are not normalised (std 6.5 on a CamVid frame): a Glorot classifier
    # on them started training at a cross-entropy of 8 (val mIoU 0.16 after the frozen epoch,
    # 0.45 with the zero start).
    lite0 = create_model("lraspp_lite0", input_size=(64, 64), encoder_weights=None)
    kernel = np.asarray(lite0.get_layer("lraspp_low_cls").kernel)
    assert kernel.shape[-1] == 8 and not kernel.any()
    mnv3 = create_model("lraspp_mobilenetv3", input_size=(64, 64), encoder_weights=None)
    assert np.asarray(mnv3.get_layer("lraspp_low_cls").kernel).any()


@pytest.mark.parametrize(("low_stride", "channels"), [(8, 40), (4, 24), (16, 112), (0, None)])
def test_lite0_skip_stride_picks_the_encoder_features_it_names(
    low_stride: int, channels: int | None
) -> None:
    """`low_stride` 4 takes the skip from block 2 (24 channels at 1/4), 16 from block 5 (112
    channels at 1/16), 0 drops it; the logits stay full size and the 1/32 branch is untouched."""
    model = create_model(
        "lraspp_lite0", input_size=(96, 64), encoder_weights=None, low_stride=low_stride
    )
    assert model(np.zeros((1, 64, 96, 3), "float32")).shape == (1, 64, 96, 8)
    names = {layer.name for layer in model.layers}
    assert "lraspp_high_cls" in names
    if channels is None:
        assert not {"lraspp_low_cls", "lraspp_sum"} & names
        return
    kernel = np.asarray(model.get_layer("lraspp_low_cls").kernel)
    assert kernel.shape == (1, 1, channels, 8)


def test_lite0_skip_stride_refuses_what_lite0_cannot_give() -> None:
    with pytest.raises(ValueError, match="low_stride must be 0, 4, 8 or 16, not 2"):
        create_model("lraspp_lite0", input_size=(64, 64), encoder_weights=None, low_stride=2)


def test_lite0_last_block_feeds_the_high_branch_320_channels() -> None:
    model = create_model("lraspp_lite0", input_size=(64, 64), encoder_weights=None, last_block=True)
    assert model(np.zeros((1, 64, 64, 3), "float32")).shape == (1, 64, 64, 8)
    assert np.asarray(model.get_layer("lraspp_high_conv").kernel).shape[2] == 320
