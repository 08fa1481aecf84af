"""Per-image analysis of a mask: IoU in the official view, shares, regions."""

from __future__ import annotations

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import name2label

from cityseg.data import labels
from cityseg.service.analysis import category_shares, describe, image_iou, regions

ID = {name: name2label[name].id for name in
      ("road", "car", "unlabeled", "ego vehicle", "parking", "caravan", "guard rail")}  # fmt: skip


def test_image_iou_skips_void_and_ignore_in_eval_pixels() -> None:
    truth = np.array(
        [[ID["road"], ID["road"], ID["car"], ID["car"], ID["unlabeled"], ID["ego vehicle"],
          ID["parking"], ID["caravan"], ID["guard rail"], ID["road"]]],
        np.uint8,
    )  # fmt: skip
    flat, construction, vehicle = 1, 2, 7
    predicted = np.array(
        [[flat, vehicle, vehicle, vehicle, vehicle, vehicle, flat, vehicle, construction, flat]],
        np.uint8,
    )
    iou = image_iou(truth, predicted)
    assert set(iou) == {labels.CATEGORIES[c] for c in labels.EVAL_CATEGORIES}  # no void
    # Scored pixels: road x3 (flat), car x2 (vehicle). flat: tp 2, fn 1 -> 2/3.
    # vehicle: tp 2, fp 1 (a road pixel) -> 2/3; the vehicle predicted on void, ego vehicle and
    # caravan (ignoreInEval) pixels is no false positive, and parking / guard rail
    # (ignoreInEval) score nothing for flat or construction.
    assert iou["flat"] == pytest.approx(2 / 3)
    assert iou["vehicle"] == pytest.approx(2 / 3)
    assert iou["construction"] is None
    assert all(iou[name] is None for name in ("object", "nature", "sky", "human"))


def test_image_iou_counts_a_wrong_category_on_a_scored_pixel() -> None:
    truth = np.full((2, 2), ID["road"], np.uint8)
    predicted = np.array([[1, 1], [1, 6]], np.uint8)  # one road pixel called human
    iou = image_iou(truth, predicted)
    assert iou["flat"] == pytest.approx(3 / 4) and iou["human"] == 0.0


def test_shares_and_regions() -> None:
    mask = np.zeros((4, 6), np.uint8)
    mask[0, 0:2] = 7  # a 2-pixel region
    mask[2:4, 3:6] = 7  # a 6-pixel region
    shares = category_shares(mask)
    assert shares[7] == pytest.approx(8 / 24) and shares[0] == pytest.approx(16 / 24)
    assert sum(shares) == pytest.approx(1.0)
    found, total = regions(mask, 7, max_regions=1)
    assert total == 2 and found == [{"bbox": [3, 2, 6, 4], "pixels": 6}]  # largest first
    rows = {row["name"]: row for row in describe(mask, max_regions=5)}
    assert rows["vehicle"]["regions_total"] == 2 and len(rows["vehicle"]["regions"]) == 2
    assert rows["sky"]["regions"] == [] and rows["sky"]["share"] == 0.0
