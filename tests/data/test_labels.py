"""labels: the 8 categories and the id tables agree with cityscapesscripts."""

from __future__ import annotations

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label
from cityscapesscripts.helpers.labels import labels as official

from cityseg.data import labels


def test_eight_categories_in_official_order() -> None:
    assert labels.CATEGORIES == (
        "void", "flat", "construction", "object", "nature", "sky", "human", "vehicle",
    )  # fmt: skip
    assert labels.PALETTE.shape == (8, 3) and labels.PALETTE.dtype == np.uint8


@pytest.mark.parametrize("label_id", sorted(lab.id for lab in official))
def test_every_official_id_maps_like_cityscapesscripts(label_id: int) -> None:
    expected = id2label[label_id].categoryId
    stored = np.array([[label_id & 0xFF]], dtype=np.uint8)  # -1 is stored as 255
    assert labels.to_categories(stored)[0, 0] == expected
    if label_id >= 0:
        assert labels.to_categories(np.array([[label_id]], dtype=np.int32))[0, 0] == expected
    eval_view = labels.to_eval_categories(stored)[0, 0]
    if id2label[label_id].ignoreInEval:
        assert eval_view == labels.IGNORE_INDEX
    else:
        assert eval_view == expected


def test_all_35_ids_covered() -> None:
    assert len(labels.LABEL_IDS) == 35 and labels.LABEL_IDS[0] == -1 and labels.LABEL_IDS[-1] == 33


@pytest.mark.parametrize("bad", [34, 100, 254])
def test_invalid_ids_raise_naming_the_source(bad: int) -> None:
    ids = np.zeros((4, 4), np.uint8)
    ids[1, 2] = bad
    with pytest.raises(labels.InvalidLabelError, match=rf"frame\.png: values \[{bad}\]"):
        labels.to_categories(ids, source="frame.png")


def test_representative_ids_round_trip() -> None:
    cats = np.arange(8, dtype=np.uint8).reshape(2, 4)
    assert (labels.to_categories(labels.categories_to_label_ids(cats)) == cats).all()


def test_colorize_uses_palette() -> None:
    cats = np.array([[0, 5], [7, 1]], np.uint8)
    rgb = labels.colorize(cats)
    assert rgb.shape == (2, 2, 3) and (rgb[0, 1] == labels.PALETTE[5]).all()


def test_lookup_tables_built_from_the_official_table() -> None:
    # `_lut` runs at import; called here, the tables it builds are checked value by value.
    by_id = {lab.id & 0xFF: lab for lab in official}
    lut = labels._lut(lambda lab: lab.categoryId)
    assert lut.dtype == np.uint8 and lut.shape == (256,)
    for value in range(256):
        expected = by_id[value].categoryId if value in by_id else 254
        assert lut[value] == expected, value
    # ...plus one value that is no Cityscapes id: a pixel without a label, never trained on
    lut[labels.NO_LABEL_ID] = labels.IGNORE_INDEX
    np.testing.assert_array_equal(lut, labels.ID_TO_CATEGORY)
    assert labels.ID_TO_EVAL_CATEGORY[labels.NO_LABEL_ID] == labels.IGNORE_INDEX
    assert labels.VALID_ID.sum() == 35 + 1


def test_wider_integer_labels_are_validated_then_mapped() -> None:
    # -1 (license plate) and 26 (car) are vehicles; 255 is how -1 sits in a uint8 PNG.
    wide = np.array([[-1, 26, 255, 7]], np.int32)
    np.testing.assert_array_equal(labels.to_categories(wide), [[7, 7, 7, 1]])
    assert labels.to_categories(np.array([[0, 33]], np.int64)).tolist() == [[0, 7]]
    for bad in (-2, 256, 1000):
        with pytest.raises(labels.InvalidLabelError, match=r"^x\.png: values outside 0\.\.255"):
            labels.to_categories(np.array([[7, bad]], np.int32), source="x.png")


def test_error_lists_at_most_ten_bad_values_and_the_valid_range() -> None:
    ids = np.arange(34, 60, dtype=np.uint8)[None]
    with pytest.raises(labels.InvalidLabelError) as info:
        labels.to_categories(ids)
    assert str(info.value) == (
        "label image: values [34, 35, 36, 37, 38, 39, 40, 41, 42, 43] are no Cityscapes "
        "label ids (expected -1..33)"
    )
    with pytest.raises(labels.InvalidLabelError, match=r"^y\.png: values \[40\]"):
        labels.to_eval_categories(np.array([[7, 40]], np.uint8), source="y.png")
    with pytest.raises(labels.InvalidLabelError, match=r"^label image: values \[40\]"):
        labels.to_eval_categories(np.array([[7, 40]], np.uint8))


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64])
def test_an_empty_label_maps_to_an_empty_category_array(dtype: type) -> None:
    out = labels.to_categories(np.zeros((0, 4), dtype))
    assert out.shape == (0, 4) and out.dtype == np.uint8
