"""`cityseg predict` formats and sizes, bad inputs, and the predict -> evaluate round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cityseg.cli import app
from cityseg.data import labels

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder holding an untrained unet_mini at 64x32 (predictions need no training)."""
    import keras

    from cityseg.models.registry import create_model

    keras.utils.set_random_seed(0)
    run = tmp_path_factory.mktemp("run")
    create_model("unet_mini", input_size=(64, 32)).save(run / "model.keras")
    return run


@pytest.fixture(scope="module")
def manifest(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cityseg.data.split import make_split

    return make_split(synth_root).save(tmp_path_factory.mktemp("split") / "split.json")


def _predict(run: Path, source: Path, out: Path, fmt: str) -> object:
    args = ["predict", "--run", str(run), "--input", str(source), "--out", str(out)]
    return runner.invoke(app, [*args, "--format", fmt])


@pytest.mark.parametrize("fmt", ["labelIds", "categories", "color", "overlay"])
def test_every_format_is_written_at_the_original_size(
    fmt: str, run_dir: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    # A square frame (letterboxed, never squashed) and a Cityscapes-named one in a sub-folder.
    square = rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)
    Image.fromarray(square).save(source / "square.jpg")
    named = rng.integers(0, 255, (50, 120, 3), dtype=np.uint8)
    Image.fromarray(named).save(source / "sub" / "berlin_000001_000002_leftImg8bit.png")
    result = _predict(run_dir, source, tmp_path / "out", fmt)
    assert result.exit_code == 0, result.output
    first = np.asarray(Image.open(tmp_path / "out" / "square.png"))
    second = np.asarray(
        Image.open(tmp_path / "out" / "sub" / "berlin_000001_000002_leftImg8bit.png")
    )
    assert first.shape[:2] == (80, 80) and second.shape[:2] == (50, 120)
    if fmt == "labelIds":
        assert set(np.unique(second)) <= set(labels.CATEGORY_TO_ID.tolist())
        assert second.ndim == 2
    elif fmt == "categories":
        assert second.ndim == 2 and second.max() < labels.NUM_CLASSES
    else:
        assert second.shape == (50, 120, 3)
    if fmt == "color":
        assert {tuple(c) for c in second.reshape(-1, 3)} <= {tuple(c) for c in labels.PALETTE}


def test_a_bad_input_is_named_and_the_others_are_written(run_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    Image.fromarray(np.zeros((32, 64, 3), dtype=np.uint8)).save(source / "a_good.png")
    (source / "b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    Image.fromarray(np.full((40, 40, 3), 9, dtype=np.uint8)).save(source / "c_good.png")
    result = _predict(run_dir, source, tmp_path / "out", "categories")
    assert result.exit_code == 1
    assert "b_broken.png" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_good.png", "c_good.png"]


def test_unknown_format_and_missing_input_are_clear_errors(run_dir: Path, tmp_path: Path) -> None:
    result = _predict(run_dir, tmp_path, tmp_path / "out", "jpeg")
    assert result.exit_code == 2 and "--format" in result.output
    result = _predict(run_dir, tmp_path / "nowhere", tmp_path / "out", "labelIds")
    assert result.exit_code == 2 and "nowhere" in result.output


def test_predicted_label_ids_score_like_the_model(
    run_dir: Path, synth_root: Path, manifest: Path, tmp_path: Path
) -> None:
    """predict --format labelIds, then evaluate --predictions == evaluate --run (same split)."""
    out = tmp_path / "pred"
    result = _predict(run_dir, synth_root / "leftImg8bit" / "val", out, "labelIds")
    assert result.exit_code == 0, result.output
    common = ["--manifest", str(manifest), "--split", "test", "--json"]
    by_folder = runner.invoke(app, ["evaluate", "--predictions", str(out), *common])
    assert by_folder.exit_code == 0, by_folder.output
    by_model = runner.invoke(app, ["evaluate", "--run", str(run_dir), *common])
    assert by_model.exit_code == 0, by_model.output
    folder_scores = json.loads(by_folder.stdout.strip().splitlines()[-1])
    model_scores = json.loads(by_model.stdout.strip().splitlines()[-1])
    for key in ("miou", "category_iou", "dice", "pixel_accuracy"):
        assert folder_scores[key] == pytest.approx(model_scores[key], abs=1e-9), key
    assert model_scores["num_images"] == len(list(out.rglob("*.png")))
    assert (run_dir / "eval_test.json").is_file()
    assert (run_dir / "plots" / "confusion_matrix_test.png").is_file()


def test_hflip_tta_predictions_score_like_the_model_with_tta(
    run_dir: Path, synth_root: Path, manifest: Path, tmp_path: Path
) -> None:
    """--tta hflip goes through predict and evaluate alike; the plain score file is kept."""
    out = tmp_path / "pred"
    source = synth_root / "leftImg8bit" / "val"
    args = ["predict", "--run", str(run_dir), "--input", str(source), "--out", str(out)]
    result = runner.invoke(app, [*args, "--tta", "hflip"])
    assert result.exit_code == 0, result.output
    common = ["--manifest", str(manifest), "--split", "test", "--json", "--out", str(tmp_path)]
    by_folder = runner.invoke(app, ["evaluate", "--predictions", str(out), *common])
    by_model = runner.invoke(app, ["evaluate", "--run", str(run_dir), "--tta", "hflip", *common])
    assert by_folder.exit_code == 0 and by_model.exit_code == 0, by_model.output
    folder_scores = json.loads(by_folder.stdout.strip().splitlines()[-1])
    model_scores = json.loads(by_model.stdout.strip().splitlines()[-1])
    assert model_scores["tta"] == "hflip"
    assert folder_scores["miou"] == pytest.approx(model_scores["miou"], abs=1e-9)
    assert json.loads((tmp_path / "eval_test_tta_hflip.json").read_text())["tta"] == "hflip"
    refused = runner.invoke(app, ["evaluate", "--predictions", str(out), "--tta", "hflip"])
    assert refused.exit_code != 0 and "--tta needs --run" in refused.output
    unknown = runner.invoke(app, ["evaluate", "--run", str(run_dir), "--tta", "vflip", *common])
    assert unknown.exit_code != 0 and "vflip" in unknown.output


def test_scales_tta_is_recorded_and_bad_scales_are_named(
    run_dir: Path, manifest: Path, tmp_path: Path
) -> None:
    from cityseg.cli.train import DEFAULT_TTA_SCALES
    from cityseg.inference.runtime import TTA_SCALES

    assert tuple(float(v) for v in DEFAULT_TTA_SCALES.split(",")) == TTA_SCALES
    common = ["--manifest", str(manifest), "--split", "test", "--json", "--out", str(tmp_path)]
    args = ["evaluate", "--run", str(run_dir), *common, "--tta", "hflip_scales"]
    result = runner.invoke(app, [*args, "--tta-scales", "0.75,1,1.5"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores["tta"] == "hflip_scales" and scores["tta_scales"] == [0.75, 1.0, 1.5]
    saved = json.loads((tmp_path / "eval_test_tta_hflip_scales.json").read_text())
    assert saved["tta_scales"] == [0.75, 1.0, 1.5]
    for bad, says in (("1,x", "--tta-scales '1,x'"), ("1,0", "tta scales must be positive")):
        refused = runner.invoke(app, [*args, "--tta-scales", bad])
        assert refused.exit_code != 0 and says in refused.output, refused.output


def test_an_ensemble_of_runs_scores_like_its_predictions(
    run_dir: Path, synth_root: Path, manifest: Path, tmp_path: Path
) -> None:
    """Repeated --run: predict and evaluate use the same mean-softmax ensemble."""
    import keras

    from cityseg.models.registry import create_model

    keras.utils.set_random_seed(1)
    other = tmp_path / "other"
    other.mkdir()
    create_model("unet_mini", input_size=(64, 32)).save(other / "model.keras")
    runs = ["--run", str(run_dir), "--run", str(other)]
    out = tmp_path / "pred"
    source = synth_root / "leftImg8bit" / "val"
    made = runner.invoke(app, ["predict", *runs, "--input", str(source), "--out", str(out)])
    assert made.exit_code == 0, made.output
    common = ["--manifest", str(manifest), "--split", "test", "--json"]
    no_out = runner.invoke(app, ["evaluate", *runs, *common])
    assert no_out.exit_code != 0 and "give --out" in no_out.output
    scored = tmp_path / "ensemble"
    by_model = runner.invoke(app, ["evaluate", *runs, *common, "--out", str(scored)])
    by_folder = runner.invoke(app, ["evaluate", "--predictions", str(out), *common])
    assert by_model.exit_code == 0 and by_folder.exit_code == 0, by_model.output
    model_scores = json.loads(by_model.stdout.strip().splitlines()[-1])
    folder_scores = json.loads(by_folder.stdout.strip().splitlines()[-1])
    assert model_scores["miou"] == pytest.approx(folder_scores["miou"], abs=1e-9)
    saved = json.loads((scored / "eval_test.json").read_text())
    assert saved["ensemble"] == [str(run_dir), str(other)]
    wide = tmp_path / "wide"
    wide.mkdir()
    create_model("unet_mini", input_size=(32, 32)).save(wide / "model.keras")
    refused = runner.invoke(app, ["evaluate", *runs, "--run", str(wide), *common, "--out", "x"])
    assert refused.exit_code != 0 and "differ in aspect ratio" in refused.output


def _copy_tree(synth_root: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(synth_root / "leftImg8bit", target / "leftImg8bit")
    shutil.copytree(synth_root / "gtFine", target / "gtFine")
    return target


@pytest.mark.parametrize("with_manifest", [True, False])
def test_readme_predict_then_evaluate_infers_the_set_from_the_names(
    run_dir: Path, synth_root: Path, tmp_path: Path, with_manifest: bool
) -> None:
    """As the README shows it: predictions of official val scored with no --split, as test."""
    from cityseg.data.split import make_split

    root = _copy_tree(synth_root, tmp_path / "data")
    if with_manifest:
        make_split(root, seed=0).save(root / "split.json")
    out = tmp_path / "preds"
    assert _predict(run_dir, root / "leftImg8bit" / "val", out, "labelIds").exit_code == 0
    result = runner.invoke(
        app, ["evaluate", "--predictions", str(out), "--data", str(root), "--json"]
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores["num_images"] == len(list((root / "gtFine" / "val").rglob("*_labelIds.png")))
    # the same folder scored as the explicit test set (official val) gives the same numbers
    explicit = runner.invoke(
        app,
        ["evaluate", "--predictions", str(out), "--data", str(root), "--split", "test", "--json"],
    )
    assert explicit.exit_code == 0, explicit.output
    assert json.loads(explicit.stdout.strip().splitlines()[-1])["miou"] == scores["miou"]
    if not with_manifest:  # carved validation needs the manifest: a clear error, not a guess
        val = runner.invoke(
            app, ["evaluate", "--predictions", str(out), "--data", str(root), "--split", "val"]
        )
        assert val.exit_code == 2 and "no split manifest" in val.output


def test_predictions_of_no_single_set_say_which_sets_matched(
    run_dir: Path, synth_root: Path, manifest: Path, tmp_path: Path
) -> None:
    out = tmp_path / "preds"
    assert _predict(run_dir, synth_root / "leftImg8bit", out, "labelIds").exit_code == 0
    result = runner.invoke(
        app, ["evaluate", "--predictions", str(out), "--manifest", str(manifest)]
    )
    assert result.exit_code == 2
    assert "of no single set" in result.output and "pass --split" in result.output
