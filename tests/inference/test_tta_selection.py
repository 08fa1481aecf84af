"""Choosing test-time zoom factors on validation: views whose answers are known in advance."""

from __future__ import annotations

from pathlib import Path

import blocky
import numpy as np
import pytest
from typer.testing import CliRunner

from cityseg.data.cityscapes import Sample
from cityseg.data.labels import NUM_CLASSES
from cityseg.evaluation.evaluate import evaluate
from cityseg.inference.runtime import Predictor
from cityseg.inference.tta import parse_candidates, select_scales

SIZE = (32, 16)  # (width, height): the frames are at the model input, no letterbox


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[Sample]:
    return blocky.labelled_frames(tmp_path_factory.mktemp("frames"), SIZE)


class _SharpWhenZoomed(Predictor):
    """Right and sure on the view zoomed 1.5x; wrong but unsure on every other view."""

    def _probabilities_at(self, batch: np.ndarray, scale: float) -> np.ndarray:
        truth = blocky.palette_truth(batch)
        if scale == 1.5:
            return np.eye(NUM_CLASSES, dtype=np.float32)[truth]
        wrong = np.eye(NUM_CLASSES, dtype=np.float32)[(truth + 1) % NUM_CLASSES]
        return 0.5 * wrong + 0.5 / NUM_CLASSES


def _zoomed() -> Predictor:
    return _SharpWhenZoomed(
        blocky.half_right(True), name="zoomed", runtime="keras", input_size=SIZE, source=Path("z")
    )


def test_each_set_scores_as_evaluate_scores_it(samples: list[Sample]) -> None:
    """Sharing one pass per factor changes nothing: each set's score is evaluate's with it."""
    predictor = Predictor(blocky.half_right(True), name="half", runtime="keras", input_size=SIZE)
    sets = [(1.0,), (1.0, 2.0), (0.5, 1.0)]
    for flip, mode in ((True, "hflip_scales"), (False, "scales")):
        result = select_scales(predictor, samples, sets, flip=flip)
        assert result["mode"] == mode and result["num_images"] == len(samples)
        assert (predictor.tta, predictor.scales) == ("none", (1.0, 1.5))  # left as it was
        for row, scales in zip(result["candidates"], sets, strict=True):
            check = Predictor(
                blocky.half_right(True), name="half", runtime="keras", input_size=SIZE
            )
            check.tta, check.scales = mode, scales
            assert row["scales"] == list(scales)
            assert row["passes_per_frame"] == check.passes_per_frame()
            assert row["category_iou"] == pytest.approx(evaluate(check, samples)["category_iou"])
    # the mirror makes the half-right model right on both halves: flipping must score higher
    assert result["candidates"][0]["category_iou"] < 0.7
    flipped = select_scales(predictor, samples, [(1.0,)])
    assert flipped["category_iou"] > result["candidates"][0]["category_iou"]


def test_the_zoom_that_helps_is_chosen_and_a_tie_goes_to_fewer_passes(
    samples: list[Sample],
) -> None:
    result = select_scales(_zoomed(), samples, [(1.0,), (1.0, 1.5)])
    scores = [row["category_iou"] for row in result["candidates"]]
    assert scores[0] < 0.2 and scores[1] == pytest.approx(1.0)
    assert result["scales"] == [1.0, 1.5] and result["category_iou"] == pytest.approx(1.0)
    tie = select_scales(_zoomed(), samples, [(1.0, 1.5), (1.5,)])
    costs = [row["passes_per_frame"] for row in tie["candidates"]]
    assert [row["category_iou"] for row in tie["candidates"]] == pytest.approx([1.0, 1.0])
    assert costs[1] < costs[0] and tie["scales"] == [1.5]


def test_candidates_are_parsed_and_bad_ones_named() -> None:
    assert parse_candidates("1;1,1.25; 1.5 ,1") == [(1.0,), (1.0, 1.25), (1.0, 1.5)]
    with pytest.raises(ValueError, match="'1,x' is not comma-separated numbers"):
        parse_candidates("1;1,x")
    with pytest.raises(ValueError, match="must be positive, got '0,1'"):
        parse_candidates("0,1")
    with pytest.raises(ValueError, match="given twice"):
        parse_candidates("1,1.5;1.5,1")
    with pytest.raises(ValueError, match="no candidate"):
        select_scales(_zoomed(), [], [])


def test_cli_refuses_test_and_an_ensemble_without_out(tmp_path: Path) -> None:
    from cityseg.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["select-tta", "--run", str(tmp_path), "--split", "test"])
    assert result.exit_code == 2 and "choose zoom factors on val" in result.output
    result = runner.invoke(app, ["select-tta", "--run", str(tmp_path), "--run", str(tmp_path)])
    assert result.exit_code == 2 and "give --out" in result.output
    result = runner.invoke(app, ["select-tta", "--run", str(tmp_path), "--candidates", "1;a"])
    assert result.exit_code == 2 and "'a' is not comma-separated numbers" in result.output
    assert not (tmp_path / "tta_selection.json").exists()


@pytest.mark.slow
def test_cli_writes_the_choice_that_evaluate_scores_alike(synth_root: Path, tmp_path: Path) -> None:
    """An untrained run through the CLI: tta_selection.json in its folder, and the chosen
    factors scored by `evaluate --tta-scales` give the selection's score."""
    import json

    import keras

    from cityseg.cli import app
    from cityseg.data.split import make_split
    from cityseg.models.registry import create_model

    manifest = make_split(synth_root).save(tmp_path / "split.json")
    keras.utils.set_random_seed(0)
    run = tmp_path / "run"
    run.mkdir()
    create_model("unet_mini", input_size=(64, 32)).save(run / "model.keras")
    args = ["select-tta", "--run", str(run), "--manifest", str(manifest), "--no-flip"]
    result = CliRunner().invoke(app, [*args, "--candidates", "1;1,2", "--json"])
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "tta_selection.json").read_text())
    assert saved == json.loads(result.stdout.strip().splitlines()[-1])
    assert saved["split"] == "val" and saved["mode"] == "scales"
    assert [row["scales"] for row in saved["candidates"]] == [[1.0], [1.0, 2.0]]
    chosen = ",".join(str(v) for v in saved["scales"])
    tta = ["--tta", "scales", "--tta-scales", chosen, "--json", "--out", str(tmp_path / "e")]
    scored = CliRunner().invoke(
        app, ["evaluate", "--run", str(run), "--manifest", str(manifest), "--split", "val", *tta]
    )
    assert scored.exit_code == 0, scored.output
    value = json.loads(scored.stdout.strip().splitlines()[-1])["category_iou"]
    assert value == pytest.approx(saved["category_iou"], abs=1e-6)
