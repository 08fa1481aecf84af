"""Confusion-matrix scores on hand-computed arrays; whole-split, not per-batch; official categories."""

from __future__ import annotations

import json
import math
import warnings

import keras
import numpy as np
import pytest
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official
from cityscapesscripts.helpers.labels import labels as official_labels

from cityseg.data.labels import CATEGORIES, CATEGORY_TO_ID, EVAL_CATEGORIES, LABEL_IDS
from cityseg.evaluation import metrics

NAMES3 = ("a", "b", "c")


@pytest.fixture
def hand() -> tuple[np.ndarray, np.ndarray]:
    true = np.array([[0, 0, 1], [1, 2, 255]], "uint8")
    pred = np.array([[0, 1, 1], [1, 2, 0]], "uint8")
    return true, pred


def test_confusion_matrix_by_hand(hand):
    cm = metrics.confusion_matrix(*hand, num_classes=3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [0, 0, 1]])
    assert cm.dtype == np.int64


def test_scores_by_hand(hand):
    s = metrics.scores(metrics.confusion_matrix(*hand, num_classes=3), NAMES3)
    assert s["per_category_iou"] == pytest.approx({"a": 1 / 2, "b": 2 / 3, "c": 1.0})
    assert s["miou"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert s["per_category_dice"] == pytest.approx({"a": 2 / 3, "b": 4 / 5, "c": 1.0})
    assert s["dice"] == pytest.approx((2 / 3 + 4 / 5 + 1) / 3)
    assert s["pixel_accuracy"] == pytest.approx(4 / 5)


def test_absent_class_is_nan_excluded_and_null_in_json(hand):
    s = metrics.scores(metrics.confusion_matrix(*hand, num_classes=4), (*NAMES3, "d"))
    assert math.isnan(s["per_category_iou"]["d"])
    assert s["miou"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    text = json.dumps(metrics.to_jsonable(s), allow_nan=False)
    assert json.loads(text)["per_category_iou"]["d"] is None


def test_to_jsonable_walks_lists_tuples_arrays_and_numpy_scalars():
    value = {"a": [1.0, float("nan"), (np.float32(2.5), np.int64(3))], "m": np.array([[1, 2]])}
    assert metrics.to_jsonable(value) == {"a": [1.0, None, [2.5, 3]], "m": [[1, 2]]}
    assert type(metrics.to_jsonable(np.int64(3))) is int
    assert metrics.to_jsonable(np.float64("nan")) is None


def test_accumulators_start_empty_skip_ignored_pixels_and_name_the_source():
    acc = metrics.ConfusionMatrix()
    assert acc.matrix.dtype == np.int64 and acc.matrix.shape == (8, 8) and acc.matrix.sum() == 0
    acc.update(np.array([[255, 1]]), np.array([[7, 1]]))  # the ignored pixel is not counted
    assert acc.matrix.sum() == 1 and acc.matrix[1, 1] == 1
    official = metrics.CategoryIoU()
    assert official.matrix.shape == (8, 8) and official.matrix.sum() == 0
    official.update(np.array([[7, 0]], "uint8"), np.array([[1, 1]], "uint8"))  # void not scored
    assert official.matrix.sum() == 1
    with pytest.raises(ValueError, match=r"^frame\.png: values \[40\]"):
        official.update(np.array([[40]], "uint8"), np.array([[1]], "uint8"), source="frame.png")
    with pytest.raises(ValueError, match=r"^label image: values \[40\]"):
        official.update(np.array([[40]], "uint8"), np.array([[1]], "uint8"))
    result = official.result()
    assert list(result["per_category_iou"]) == [CATEGORIES[c] for c in EVAL_CATEGORIES]
    assert result["per_category_iou"]["flat"] == 1.0 and result["category_iou"] == 1.0


def test_class_only_predicted_counts_as_zero():
    s = metrics.scores(metrics.confusion_matrix([0, 0], [0, 1], num_classes=2), ("a", "b"))
    assert s["per_category_iou"] == {"a": 0.5, "b": 0.0}
    assert s["miou"] == 0.25


def test_two_halves_equal_one_pass():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 8, (4, 16, 32)).astype("uint8")
    true[rng.random(true.shape) < 0.1] = 255
    pred = rng.integers(0, 8, true.shape).astype("uint8")
    acc = metrics.ConfusionMatrix()
    acc.update(true[:2], pred[:2]).update(true[2:], pred[2:])
    np.testing.assert_array_equal(acc.matrix, metrics.confusion_matrix(true, pred))
    assert acc.matrix.sum() == (true != 255).sum()
    acc.reset()
    assert acc.matrix.sum() == 0


def test_whole_split_differs_from_per_batch_average():
    # Batch 1: one pixel of class 1, missed. Batch 2: 99 pixels of class 1, all right.
    batches = [
        (np.array([[1]]), np.array([[0]])),
        (np.ones((1, 99), int), np.ones((1, 99), int)),
    ]
    acc = metrics.ConfusionMatrix(num_classes=2)
    per_batch = []
    for true, pred in batches:
        acc.update(true, pred)
        per_batch.append(
            metrics.scores(metrics.confusion_matrix(true, pred, 2), ("a", "b"))["miou"]
        )
    # Whole split: class 0 IoU 0/1 = 0, class 1 IoU 99/100 -> 0.495.
    assert acc.scores(("a", "b"))["miou"] == pytest.approx(0.495)
    # The trap: the mean of per-batch mIoUs, (0 + 1) / 2 = 0.5 with class 0 NaN in batch 2.
    assert per_batch == pytest.approx([0.0, 1.0])  # what scores() gives each batch alone


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="shape"):
        metrics.confusion_matrix(np.zeros((2, 2)), np.zeros((2, 2, 8)))
    with pytest.raises(ValueError, match=r"y_pred holds values \[9\]"):
        metrics.confusion_matrix([0, 1], [0, 9])
    with pytest.raises(ValueError, match=r"y_true holds values \[8\]"):
        metrics.confusion_matrix([8, 1], [0, 1])


def test_category_iou_by_hand():
    # road(7) flat, parking(9) flat but ignoreInEval, sky(23), unlabeled(0) void, car(26).
    label_ids = np.array([[7, 7, 9, 23], [0, 26, 26, 23]], "uint8")
    pred = np.array([[1, 0, 7, 5], [7, 7, 5, 5]], "uint8")
    result = metrics.category_iou(label_ids, pred)
    per = result["per_category_iou"]
    assert set(per) == {CATEGORIES[c] for c in EVAL_CATEGORIES}
    assert "void" not in per
    # flat: tp 1, fn 1 (predicted void), the prediction on parking is ignored -> 1/2
    assert per["flat"] == pytest.approx(1 / 2)
    # sky: tp 2, fp 1 (car predicted sky) -> 2/3; vehicle: tp 1, fn 1 -> 1/2 (void px ignored)
    assert per["sky"] == pytest.approx(2 / 3)
    assert per["vehicle"] == pytest.approx(1 / 2)
    assert math.isnan(per["human"])
    assert result["category_iou"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)


class _Args:
    evalLabels = sorted(lab.id for lab in official_labels if lab.id >= 0)


def test_category_iou_equals_official_formula():
    rng = np.random.default_rng(1)
    ids = np.array([i for i in LABEL_IDS if i >= 0], "uint8")
    label_ids = rng.choice(ids, (3, 20, 30)).astype("uint8")
    pred = rng.integers(0, 8, label_ids.shape).astype("uint8")
    acc = metrics.CategoryIoU()
    for i in range(3):
        acc.update(label_ids[i], pred[i])
    ours = acc.result()
    # The official confusion matrix over label ids, predictions written as label ids.
    conf = np.zeros((34, 34), np.ulonglong)
    np.add.at(conf, (label_ids.ravel(), CATEGORY_TO_ID[pred].ravel()), 1)
    theirs = {
        cat: official.getIouScoreForCategory(cat, conf, _Args()) for cat in official.category2labels
    }
    for name, value in ours["per_category_iou"].items():
        assert value == pytest.approx(theirs[name])
    assert math.isnan(theirs["void"])
    assert ours["category_iou"] == pytest.approx(official.getScoreAverage(theirs, _Args()))


def test_keras_mean_iou_matches_confusion_matrix():
    rng = np.random.default_rng(2)
    metric = metrics.MeanIoU()
    acc = metrics.ConfusionMatrix()
    for _ in range(2):
        y = rng.integers(0, 8, (2, 8, 16)).astype("uint8")
        y[:, :2] = 255
        logits = rng.normal(size=(2, 8, 16, 8)).astype("float32")
        metric.update_state(y, logits)
        acc.update(y, logits.argmax(-1))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(metric.total_cm), acc.matrix)
    assert float(metric.result()) == pytest.approx(acc.scores()["miou"], rel=1e-6)
    metric.reset_state()
    assert float(keras.ops.sum(metric.total_cm)) == 0
    clone = metrics.MeanIoU.from_config(metric.get_config())
    assert clone.name == "miou" and clone.ignore_index == 255
    # registered for .keras files that carry it (a checkpoint of a compiled model)
    assert keras.saving.get_registered_object("cityseg>MeanIoU") is metrics.MeanIoU
    assert keras.saving.get_registered_name(metrics.MeanIoU) == "cityseg>MeanIoU"


def test_keras_mean_iou_in_compiled_evaluate():
    rng = np.random.default_rng(3)
    inputs = keras.Input((8, 16, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(8, 1)(inputs))
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(True), metrics=[metrics.MeanIoU()]
    )
    x = rng.normal(size=(6, 8, 16, 3)).astype("float32")
    y = rng.integers(0, 8, (6, 8, 16)).astype("uint8")
    logs = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    expected = metrics.scores(metrics.confusion_matrix(y, model.predict(x, verbose=0).argmax(-1)))
    assert logs["miou"] == pytest.approx(expected["miou"], rel=1e-5)


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32", "int64", "float32"])
def test_per_class_scores_of_any_count_type_do_not_overflow(dtype: str) -> None:
    # 200 true positives: 2 * 200 overflows uint8 if the matrix is not widened first.
    cm = np.array([[200, 0, 0], [0, 0, 0], [0, 100, 0]], dtype)
    empty = np.zeros((2, 2), dtype)
    with np.errstate(all="raise"):  # absent classes are NaN without a warning escaping
        iou, dice = metrics.per_class_iou(cm), metrics.per_class_dice(cm)
        assert np.isnan(metrics.per_class_iou(empty)).all()
        assert np.isnan(metrics.per_class_dice(empty)).all()
    np.testing.assert_array_equal(iou, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(dice, [1.0, 0.0, 0.0])


def test_scores_of_an_empty_matrix_are_nan_without_warnings() -> None:
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        result = metrics.scores(np.zeros((3, 3), np.int64), NAMES3)
    assert math.isnan(result["miou"]) and math.isnan(result["dice"])
    assert math.isnan(result["pixel_accuracy"])


def test_out_of_range_values_are_listed_ten_at_most() -> None:
    with pytest.raises(ValueError) as info:
        metrics.confusion_matrix(np.arange(8, 20), np.zeros(12, np.int64))
    assert str(info.value) == (
        "y_true holds values [8, 9, 10, 11, 12, 13, 14, 15, 16, 17] outside 0..7"
    )


@pytest.mark.parametrize(
    ("shape", "names"),
    [((3, 3), ("a", "b")), ((3, 2), NAMES3), ((2, 3), ("a", "b")), ((3, 3, 1), NAMES3)],
)
def test_scores_refuse_a_matrix_that_does_not_match_the_names(
    shape: tuple[int, ...], names: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError) as info:
        metrics.scores(np.ones(shape, np.int64), names)
    assert str(info.value) == f"confusion matrix shape {shape} does not match {len(names)} names"


def test_accumulator_without_ignore_index_scores_every_value() -> None:
    with pytest.raises(ValueError, match=r"y_true holds values \[255\] outside 0\.\.7"):
        metrics.ConfusionMatrix(ignore_index=None).update([[255, 1]], [[0, 1]])
    counted = metrics.ConfusionMatrix(num_classes=3, ignore_index=None).update([[2, 1]], [[0, 1]])
    np.testing.assert_array_equal(counted.matrix, [[0, 0, 0], [0, 1, 0], [1, 0, 0]])


def test_keras_mean_iou_single_pixel_classes_float_labels_and_no_ignore_index() -> None:
    # One pixel per class: each has IoU 1 (a threshold of 1 pixel or a floor of 2 would not).
    metric = metrics.MeanIoU(num_classes=3, ignore_index=None)
    y = np.array([[0.0, 1.0, 2.0]], "float32")  # Keras may hand over float labels
    metric.update_state(y, np.eye(3, dtype="float32")[None])
    assert float(metric.result()) == pytest.approx(1.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(metric.total_cm), np.eye(3))
    assert keras.ops.convert_to_numpy(metric.total_cm).dtype == np.float64
    assert [v.name for v in metric.variables] == ["total_cm"]
    assert keras.ops.convert_to_numpy(metric.result()).dtype == np.float32


@pytest.mark.parametrize("present", [[0], [0, 2]])
def test_keras_mean_iou_leaves_absent_classes_out(present: list[int]) -> None:
    metric = metrics.MeanIoU(num_classes=4)
    y = np.array([present], "uint8")
    metric.update_state(y, np.eye(4, dtype="float32")[y])
    assert float(metric.result()) == pytest.approx(1.0)  # not 1/2 or 2/4, not NaN


def test_keras_mean_iou_passes_base_arguments_on() -> None:
    assert metrics.MeanIoU(dtype="float64").dtype == "float64"


def test_scores_are_saved_and_read_under_one_name_per_tta(tmp_path) -> None:
    import json

    from cityseg.evaluation.evaluate import saved_category_iou, scores_name

    assert scores_name("test") == "test" and scores_name("val", "none") == "val"
    assert scores_name("test", "hflip_scales") == "test_tta_hflip_scales"
    (tmp_path / "eval_test_tta_hflip.json").write_text(json.dumps({"category_iou": 0.681}))
    assert saved_category_iou(tmp_path, "test", "hflip") == 0.681
    assert saved_category_iou(tmp_path, "test") is None  # the plain score was not written
    (tmp_path / "eval_val.json").write_text(json.dumps({"miou": 0.5}))
    assert saved_category_iou(tmp_path, "val") is None  # no category IoU in it
