"""Greedy ensemble selection: candidates whose answers are known, a choice known in advance."""

from __future__ import annotations

import json
from pathlib import Path

import blocky
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cityseg.data.cityscapes import Sample
from cityseg.data.labels import NUM_CLASSES
from cityseg.inference.ensemble import select_ensemble
from cityseg.inference.runtime import Predictor

SIZE = (32, 16)  # (width, height): the frames are at the model input, no letterbox


def _constant(batch: np.ndarray) -> np.ndarray:
    logits = np.zeros((*batch.shape[:3], NUM_CLASSES), np.float32)
    logits[..., 1] = 5.0
    return logits


def _candidate(backend, name: str) -> Predictor:
    return Predictor(backend, name=name, runtime="keras", input_size=SIZE, source=Path(name))


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[Sample]:
    return blocky.labelled_frames(tmp_path_factory.mktemp("frames"), SIZE)


def test_the_pair_that_completes_each_other_is_chosen(samples: list[Sample]) -> None:
    left, right = (
        _candidate(blocky.half_right(True), "left"),
        _candidate(blocky.half_right(False), "right"),
    )
    constant = _candidate(_constant, "constant")
    result = select_ensemble([constant, left, right], samples)
    singles = {c["name"]: c["category_iou"] for c in result["candidates"]}
    assert singles["left"] < 0.7 and singles["right"] < 0.7 and singles["constant"] < 0.2
    assert [s["added"] for s in result["steps"]] == ["left", "right"]  # a tie goes to the first
    assert result["members"] == ["left", "right"]  # the constant model raises nothing: stop
    assert result["category_iou"] == pytest.approx(1.0)
    assert result["steps"][0]["category_iou"] == pytest.approx(singles["left"])
    assert result["num_images"] == 4
    # the mixture scores the same through the ensemble predictor as in the selection
    ensemble = Predictor.ensemble([left, right])
    for sample in samples:
        image = np.asarray(Image.open(sample.image).convert("RGB"))
        np.testing.assert_array_equal(
            ensemble.predict(image), blocky.palette_truth(image[None].astype(float))[0]
        )


def test_candidates_of_two_sizes_are_mixed_at_the_larger(samples: list[Sample]) -> None:
    """A 64x32 and a 32x16 candidate (one aspect): each frame is letterboxed once at 64x32,
    the small one sees it shrunk; together they still complete each other, and the ensemble
    predictor built from the choice agrees with the selection's score."""
    left = Predictor(
        blocky.half_right(True),
        name="left",
        runtime="keras",
        input_size=(64, 32),
        source=Path("left"),
    )
    right = _candidate(blocky.half_right(False), "right")
    result = select_ensemble([left, right], samples)
    singles = {c["name"]: c["category_iou"] for c in result["candidates"]}
    assert singles["left"] < 0.7 and singles["right"] < 0.7
    assert result["members"] == ["left", "right"] and result["category_iou"] > 0.95
    ensemble = Predictor.ensemble([left, right])
    assert ensemble.input_size == (64, 32)
    for sample in samples:
        image = np.asarray(Image.open(sample.image).convert("RGB"))
        truth = blocky.palette_truth(image[None].astype(float))[0]
        assert (ensemble.predict(image) == truth).mean() > 0.95


def test_max_members_stops_the_growth(samples: list[Sample]) -> None:
    left, right = (
        _candidate(blocky.half_right(True), "left"),
        _candidate(blocky.half_right(False), "right"),
    )
    result = select_ensemble([left, right], samples, max_members=1)
    assert result["members"] == ["left"] and len(result["steps"]) == 1


def test_bad_candidates_are_refused(samples: list[Sample]) -> None:
    with pytest.raises(ValueError, match="no candidate"):
        select_ensemble([], samples)
    other = Predictor(_constant, name="wide", runtime="keras", input_size=(64, 16))
    with pytest.raises(ValueError, match=r"differ in aspect ratio .*wide: \(64, 16\)"):
        select_ensemble([_candidate(_constant, "c"), other], samples)
    with pytest.raises(ValueError, match="max_members must be >= 1"):
        select_ensemble([_candidate(_constant, "c")], samples, max_members=0)


def test_cli_refuses_to_choose_on_test(tmp_path: Path) -> None:
    from cityseg.cli import app

    result = CliRunner().invoke(
        app, ["select-ensemble", "--run", str(tmp_path), "--split", "test", "--out", "x"]
    )
    assert result.exit_code == 2 and "choose an ensemble on val" in result.output
    assert not Path("x").exists()


@pytest.mark.slow
def test_cli_writes_the_selection(synth_root: Path, tmp_path: Path) -> None:
    """Two untrained runs through the CLI: a selection.json that evaluate can take back."""
    import keras

    from cityseg.cli import app
    from cityseg.data.split import make_split
    from cityseg.models.registry import create_model

    manifest = make_split(synth_root).save(tmp_path / "split.json")
    runs = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        run = tmp_path / f"run{seed}"
        run.mkdir()
        create_model("unet_mini", input_size=(64, 32)).save(run / "model.keras")
        runs += ["--run", str(run)]
    out = tmp_path / "chosen"
    args = ["select-ensemble", *runs, "--manifest", str(manifest), "--out", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    saved = json.loads((out / "selection.json").read_text())
    assert saved == printed and saved["split"] == "val"
    assert set(saved["members"]) <= set(runs[1::2]) and saved["members"]
    scored = CliRunner().invoke(
        app,
        [
            "evaluate",
            *(a for m in saved["members"] for a in ("--run", m)),
            "--manifest",
            str(manifest),
            "--split",
            "val",
            "--json",
            "--out",
            str(out),
        ],
    )
    assert scored.exit_code == 0, scored.output
    value = json.loads(scored.stdout.strip().splitlines()[-1])["category_iou"]
    assert value == pytest.approx(saved["category_iou"], abs=2e-3)  # float16 kept softmax


def test_cli_names_a_missing_candidate_and_writes_nothing(synth_root: Path, tmp_path: Path) -> None:
    from cityseg.cli import app
    from cityseg.data.split import make_split

    manifest = make_split(synth_root).save(tmp_path / "split.json")
    missing, out = tmp_path / "no_such_run", tmp_path / "chosen"
    args = ["select-ensemble", "--run", str(missing), "--manifest", str(manifest)]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2 and f"model not found: {missing}" in result.output
    assert not out.exists()
