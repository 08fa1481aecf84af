"""Evaluation maths on a fake predictor, prediction folders, and parity with the official script."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cityseg.data import labels
from cityseg.data.cityscapes import Sample, list_samples, read_label
from cityseg.evaluation import evaluate as ev

# Two 2x4 frames. Label ids: 0 unlabeled (void, ignored), 7 road, 9 parking (flat, ignored
# by the benchmark), 11 building, 23 sky, 24 person, 26 car.
GT_A = np.array([[7, 7, 11, 11], [0, 9, 24, 26]], dtype=np.uint8)
PRED_A = np.array([[1, 2, 2, 2], [1, 1, 6, 5]], dtype=np.uint8)  # categories
GT_B = np.array([[23, 23, 23, 23], [23, 23, 23, 26]], dtype=np.uint8)
PRED_B = np.full((2, 4), 5, dtype=np.uint8)


class FakePredictor:
    """Returns a fixed mask per image, told apart by the image's first pixel."""

    def __init__(self, masks: dict[int, np.ndarray]) -> None:
        self.masks = masks

    def predict_many(self, images: list[np.ndarray], batch_size: int = 8) -> list[np.ndarray]:
        return [self.masks[int(image[0, 0, 0])] for image in images]


def _write_sample(root: Path, stem: str, gt: np.ndarray, value: int) -> Sample:
    city = stem.split("_")[0]
    image = root / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png"
    label = root / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    label.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*gt.shape, 3), value, dtype=np.uint8)).save(image)
    Image.fromarray(gt).save(label)
    return Sample(image=image, label=label, city=city, split="val", stem=stem)


@pytest.fixture
def two_frames(tmp_path: Path) -> list[Sample]:
    return [
        _write_sample(tmp_path, "alpha_000000_000001", GT_A, 1),
        _write_sample(tmp_path, "alpha_000000_000002", GT_B, 2),
    ]


def _check_hand_computed(result: dict) -> None:
    iou = result["per_category_iou"]
    # 8 categories, whole-split sums (void GT predicted as flat, parking GT counts as flat).
    assert iou["void"] == pytest.approx(0.0)
    assert iou["flat"] == pytest.approx(2 / 4)
    assert iou["construction"] == pytest.approx(2 / 3)
    assert iou["human"] == pytest.approx(1.0)
    assert iou["vehicle"] == pytest.approx(0.0)
    assert iou["sky"] == pytest.approx(7 / 9)  # 8/9 and 7/8 per image: not averaged per image
    assert math.isnan(iou["object"]) and math.isnan(iou["nature"])
    assert result["miou"] == pytest.approx((0 + 0.5 + 2 / 3 + 1 + 0 + 7 / 9) / 6)
    assert result["pixel_accuracy"] == pytest.approx(12 / 16)
    # Official category IoU: ignored GT (unlabeled, parking) is never a false positive.
    official = result["per_category_iou_official"]
    assert official["flat"] == pytest.approx(1 / 2)
    assert official["construction"] == pytest.approx(2 / 3)
    assert official["sky"] == pytest.approx(7 / 9)
    assert result["category_iou"] == pytest.approx((0.5 + 2 / 3 + 1 + 0 + 7 / 9) / 5)
    cm = np.array(result["confusion_matrix"])
    assert cm.sum() == 16 and cm[5, 5] == 7 and cm[7, 5] == 2
    assert result["num_images"] == 2


def test_evaluate_sums_the_whole_split_at_label_resolution(two_frames: list[Sample]) -> None:
    result = ev.evaluate(FakePredictor({1: PRED_A, 2: PRED_B}), two_frames, batch_size=1)
    _check_hand_computed(result)
    # The metrics module's category-level accumulator agrees (categories in, no label ids).
    from cityseg.evaluation import metrics

    theirs = metrics.CategoryIoU()
    for gt, pred in ((GT_A, PRED_A), (GT_B, PRED_B)):
        theirs.update(gt, pred)
    assert theirs.result()["category_iou"] == pytest.approx(result["category_iou"])
    # Worst image first: A scores 2.17/6 = 0.36 per image, B (7/8 + 0) / 2 = 0.44.
    assert [w["stem"] for w in result["worst_images"]] == [s.stem for s in two_frames]
    assert result["worst_images"][0]["miou"] == pytest.approx((0.5 + 2 / 3 + 1) / 6)


def test_a_prediction_at_the_wrong_size_is_an_error(two_frames: list[Sample]) -> None:
    small = {1: PRED_A[:, :2], 2: PRED_B[:, :2]}
    with pytest.raises(ev.EvaluationError, match="original size"):
        ev.evaluate(FakePredictor(small), two_frames)


def _write_predictions(folder: Path, samples: list[Sample], masks: list[np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for sample, mask in zip(samples, masks, strict=True):
        ids = labels.categories_to_label_ids(mask)
        Image.fromarray(ids).save(folder / f"{sample.stem}_leftImg8bit.png")


def test_prediction_folder_scores_like_the_predictor(
    two_frames: list[Sample], tmp_path: Path
) -> None:
    pred_dir = tmp_path / "pred"
    _write_predictions(pred_dir, two_frames, [PRED_A, PRED_B])
    _check_hand_computed(ev.evaluate_predictions(pred_dir, two_frames))


def test_prediction_folder_names_missing_extra_and_bad_files(
    two_frames: list[Sample], tmp_path: Path
) -> None:
    pred_dir = tmp_path / "pred"
    _write_predictions(pred_dir, two_frames[:1], [PRED_A])
    with pytest.raises(ev.EvaluationError, match=r"alpha_000000_000002_leftImg8bit\.png"):
        ev.evaluate_predictions(pred_dir, two_frames)
    _write_predictions(pred_dir, two_frames[1:], [PRED_B])
    Image.fromarray(GT_A).save(pred_dir / "beta_000000_000009_leftImg8bit.png")
    with pytest.raises(ev.EvaluationError, match="beta_000000_000009"):
        ev.evaluate_predictions(pred_dir, two_frames)
    assert ev.evaluate_predictions(pred_dir, two_frames, allow_extra=True)["num_images"] == 2
    (pred_dir / "beta_000000_000009_leftImg8bit.png").unlink()
    bad = pred_dir / "alpha_000000_000001_leftImg8bit.png"
    Image.fromarray(np.full((2, 4), 200, dtype=np.uint8)).save(bad)  # 200 is no label id
    with pytest.raises(ValueError, match=r"alpha_000000_000001_leftImg8bit\.png"):
        ev.evaluate_predictions(pred_dir, two_frames)
    Image.fromarray(np.full((3, 4), 7, dtype=np.uint8)).save(bad)
    with pytest.raises(ev.EvaluationError, match="alpha_000000_000001"):
        ev.evaluate_predictions(pred_dir, two_frames)


def test_outputs_are_json_and_figures(two_frames: list[Sample], tmp_path: Path) -> None:
    result = ev.evaluate(FakePredictor({1: PRED_A, 2: PRED_B}), two_frames)
    # Each image drawn once even when it is both among the first and the worst.
    assert [row["caption"].split()[0] for row in result["_examples"]] == [
        "alpha_000000_000001",
        "alpha_000000_000002",
    ]
    written = ev.write_outputs(result, tmp_path / "run", "val")
    saved = json.loads((tmp_path / "run" / "eval_val.json").read_text())
    assert saved["per_category_iou"]["object"] is None  # NaN is written as null
    assert saved["miou"] == pytest.approx(result["miou"])
    names = {p.name for p in written}
    assert {"confusion_matrix_val.png", "per_category_iou_val.png", "examples_val.png"} <= names
    for path in written:
        assert path.stat().st_size > 0


def _official_category_average(
    gt_root: Path, results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> float:
    """Run cityscapesscripts' evalPixelLevelSemanticLabeling on `results`, as its docs say."""
    monkeypatch.setenv("CITYSCAPES_DATASET", str(gt_root))
    monkeypatch.setenv("CITYSCAPES_RESULTS", str(results))
    if not hasattr(np, "in1d"):  # removed in NumPy 2.4; the official script still calls it
        monkeypatch.setattr(np, "in1d", np.isin, raising=False)
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    args = official.args
    monkeypatch.setattr(args, "cityscapesPath", str(gt_root))
    monkeypatch.setattr(
        args,
        "groundTruthSearch",
        str(gt_root / "gtFine" / "val" / "*" / "*_gtFine_labelIds.png"),
    )
    monkeypatch.setattr(args, "predictionPath", None)
    monkeypatch.setattr(args, "predictionWalk", None)
    monkeypatch.setattr(args, "exportFile", str(tmp_path / "official.json"))
    monkeypatch.setattr(args, "quiet", True)
    import glob

    gts = sorted(glob.glob(args.groundTruthSearch))
    preds = [official.getPrediction(args, gt) for gt in gts]
    result = official.evaluateImgLists(preds, gts, args)
    return float(result["averageScoreCategories"])


def test_category_iou_matches_the_official_evaluator(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = list_samples(synth_root, "val")  # the official val folder the script scores
    rng = np.random.default_rng(0)
    masks = []
    for sample in samples:
        cats = labels.to_categories(read_label(sample.label))
        noise = rng.random(cats.shape) < 0.25
        cats[noise] = rng.integers(0, labels.NUM_CLASSES, int(noise.sum()))
        masks.append(cats)
    results = tmp_path / "results"
    _write_predictions(results, samples, masks)
    ours = ev.evaluate_predictions(results, samples)
    theirs = _official_category_average(synth_root, results, tmp_path, monkeypatch)
    assert 0.3 < theirs < 0.95  # the noise makes it a real test, neither 0 nor 1
    assert ours["category_iou"] == pytest.approx(theirs, abs=1e-4)
