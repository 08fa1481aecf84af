"""The LR-ASPP head on Lite0 starts from the normalised branch alone."""

from __future__ import annotations

import numpy as np

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
