"""Pseudo-labels for self-training: class-balanced thresholds, the written dataset, refusals."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cityseg.data import labels
from cityseg.data.cityscapes import DataError, list_samples, read_sample
from cityseg.data.pseudo import class_thresholds, pseudo_label, softmax_confidence
from cityseg.data.split import load_manifest, make_split

FLAT, SKY = labels.CATEGORIES.index("flat"), labels.CATEGORIES.index("sky")


def test_softmax_confidence_is_the_argmax_and_its_probability() -> None:
    logits = np.random.default_rng(0).normal(size=(2, 3, 4, 8)).astype(np.float32)
    classes, confidence = softmax_confidence(logits * 10)  # large logits: no overflow
    probs = np.exp(logits * 10 - (logits * 10).max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_array_equal(classes, probs.argmax(-1))
    np.testing.assert_allclose(confidence, probs.max(-1), rtol=1e-5)


def test_thresholds_keep_each_categorys_most_confident_share_up_to_the_cap() -> None:
    classes = np.array([FLAT] * 10 + [SKY] * 4)
    confidence = np.concatenate([np.linspace(0.1, 1.0, 10), [0.3, 0.4, 0.5, 0.6]])
    t = class_thresholds(classes, confidence, keep=0.5, cap=0.9)
    assert t[SKY] == pytest.approx(0.45)  # the rare, unsure category keeps its best half too
    assert t[FLAT] == pytest.approx(0.55)
    assert class_thresholds(classes, confidence, keep=0.2, cap=0.75)[FLAT] == pytest.approx(0.75)
    assert t[labels.CATEGORIES.index("human")] == pytest.approx(0.9)  # never predicted: cap
    assert (class_thresholds(classes, confidence, keep=1.0, cap=1.0)[[FLAT, SKY]] <= 0.3).all()
    for bad in ({"keep": 0.0, "cap": 0.9}, {"keep": 0.5, "cap": 1.5}):
        with pytest.raises(ValueError, match=r"^(keep|cap) must be in"):
            class_thresholds(classes, confidence, **bad)


class HalfSure:
    """A stand-in model: flat (sure) on the left half, sky (unsure) on the right."""

    input_size = (64, 32)
    source = Path("runs/fake")

    def predict_logits(self, batch: np.ndarray) -> np.ndarray:
        logits = np.zeros((*batch.shape[:3], labels.NUM_CLASSES), np.float32)
        half = batch.shape[2] // 2
        logits[:, :, :half, FLAT] = 8.0  # softmax ~0.997
        logits[:, :, half:, SKY] = 1.0  # softmax ~0.28
        # within the unsure half, brighter pixels are surer: only they are kept
        logits[:, :, half:, SKY] += batch[:, :, half:, 0] / 64.0
        return logits


@pytest.fixture
def labelled(synth_root: Path, tmp_path: Path) -> Path:
    make_split(synth_root, val_cities=1).save(tmp_path / "synth_split.json")
    return tmp_path / "synth_split.json"


def test_writes_a_dataset_of_confident_pixels_beside_the_labelled_one(
    synth_root: Path, labelled: Path, tmp_path: Path
) -> None:
    source = load_manifest(labelled)
    # the "real" frames: the test city's, with labels pointing nowhere (never read)
    frames = [replace(s, label=tmp_path / "absent.png") for s in source.test]
    out = tmp_path / "adapted"
    result = pseudo_label(
        HalfSure(),
        frames,
        out,
        labelled=synth_root,
        labelled_manifest=labelled,
        keep=0.5,
        command="cityseg pseudo-label ...",
    )
    assert result.frames == len(frames) and result.root == out
    manifest = load_manifest(result.manifest)
    pseudo = [s for s in manifest.train if s.city.startswith("pseudo")]
    assert [s.stem for s in pseudo] == ["pseudo" + s.stem for s in frames]
    assert len(manifest.train) == len(source.train) + len(frames)
    assert [s.stem for s in manifest.val] == [s.stem for s in source.val]
    assert [s.stem for s in manifest.test] == [s.stem for s in source.test]
    assert all(s.image.is_relative_to(out) for s in manifest.train + manifest.val + manifest.test)
    # the labelled frames are the same files (linked), the pseudo frames' images too
    first = manifest.train[0]
    assert first.image.read_bytes() == source.train[0].image.read_bytes()
    assert pseudo[0].image.read_bytes() == frames[0].image.read_bytes()
    ids = np.asarray(Image.open(pseudo[0].label))
    width = ids.shape[1]
    # left: flat, all kept; right: sky where the model was surest, no label elsewhere
    assert (ids[:, : width // 2 - 2] == labels.CATEGORY_TO_ID[FLAT]).all()
    right = ids[:, width // 2 + 2 :]
    assert set(np.unique(right)) == {labels.CATEGORY_TO_ID[SKY], labels.NO_LABEL_ID}
    # the loader turns the unlabelled pixels into IGNORE_INDEX: no loss there
    _, categories = read_sample(pseudo[0])
    assert categories is not None
    assert set(np.unique(categories)) == {FLAT, SKY, labels.IGNORE_INDEX}
    assert 50 < result.coverage < 100 and result.kept["flat"] > result.kept["sky"] > 0
    meta = json.loads((out / "pseudo.json").read_text())
    assert meta["keep"] == 0.5 and meta["model"] == "runs/fake" and meta["tta"] == "none"
    assert meta["command"] == "cityseg pseudo-label ..."
    assert manifest.method["pseudo_labels"]["cities"] == sorted({s.city for s in pseudo})
    # the source dataset is untouched: no pseudo city appears in it
    assert not any(s.city.startswith("pseudo") for s in list_samples(synth_root, "train"))


def test_hflip_tta_labels_with_the_mean_of_the_frame_and_its_mirror(
    synth_root: Path, labelled: Path, tmp_path: Path
) -> None:
    from cityseg.inference.runtime import Predictor

    frames = load_manifest(labelled).test[:2]
    half_sure = HalfSure()
    predictor = Predictor(
        half_sure.predict_logits,
        name="half",
        runtime="keras",
        input_size=half_sure.input_size,
        source=half_sure.source,
        tta="hflip",
    )
    out = tmp_path / "adapted"
    pseudo_label(predictor, frames, out, labelled=synth_root, labelled_manifest=labelled)
    manifest = load_manifest(out / "split.json")
    pseudo = [s for s in manifest.train if s.city.startswith("pseudo")]
    # The mirror puts the sure flat half over the unsure sky half: flat wins everywhere.
    for sample in pseudo:
        ids = np.asarray(Image.open(sample.label))
        assert set(np.unique(ids)) <= {labels.CATEGORY_TO_ID[FLAT], labels.NO_LABEL_ID}
    assert json.loads((out / "pseudo.json").read_text())["tta"] == "hflip"


def test_refuses_what_would_overwrite_or_mix_up(
    synth_root: Path, labelled: Path, tmp_path: Path
) -> None:
    frames = load_manifest(labelled).test
    kwargs = {"labelled": synth_root, "labelled_manifest": labelled}
    with pytest.raises(DataError, match="no frames"):
        pseudo_label(HalfSure(), [], tmp_path / "a", **kwargs)
    with pytest.raises(DataError, match="new root, not into"):
        pseudo_label(HalfSure(), frames, synth_root, **kwargs)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match=r"busy: exists and is not empty"):
        pseudo_label(HalfSure(), frames, busy, **kwargs)
    assert (busy / "keep.txt").read_text() == "mine"
    with pytest.raises(DataError, match=r"its root is .*, not .*other"):
        pseudo_label(HalfSure(), frames, tmp_path / "c", labelled=tmp_path / "other",
                     labelled_manifest=labelled)  # fmt: skip
    # a corrupt frame stops the run before anything is written, naming the file
    broken = tmp_path / "broken_leftImg8bit.png"
    broken.write_bytes(frames[0].image.read_bytes()[:200])
    with pytest.raises(DataError, match=r"broken_leftImg8bit\.png: unreadable or truncated"):
        pseudo_label(HalfSure(), [*frames, replace(frames[0], image=broken)], tmp_path / "d",
                     **kwargs)  # fmt: skip
    assert not (tmp_path / "d").exists()
    train = load_manifest(labelled).train
    with pytest.raises(DataError, match="already has cities"):
        pseudo_label(HalfSure(), train, tmp_path / "b", prefix="", **kwargs)


def test_cli_never_labels_the_test_frames(synth_root: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cityseg.cli import app

    root = tmp_path / "real"
    shutil.copytree(synth_root, root)
    make_split(root, val_cities=1).save(root / "split.json")
    args = ["pseudo-label", "--run", "x", "--data", str(root), "--with", str(root)]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o"), "--from", "test"])
    assert result.exit_code == 2
    assert "choose train or val" in result.output
    assert not (tmp_path / "o").exists()


def test_cli_labels_with_the_chosen_tta(synth_root: Path, tmp_path: Path) -> None:
    """`--tta hflip_scales` reaches the predictor; the labels and their record say so."""
    import keras
    from typer.testing import CliRunner

    from cityseg.cli import app

    inputs = keras.Input((16, 32, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(labels.NUM_CLASSES, 1)(inputs))
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    root, synth = tmp_path / "real", tmp_path / "synth"
    for copy in (root, synth):
        shutil.copytree(synth_root, copy)
        make_split(copy, val_cities=1).save(copy / "split.json")
    args = ["pseudo-label", "--run", str(run), "--data", str(root), "--with", str(synth)]
    out = tmp_path / "o"
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--tta", "hflip_scales"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "pseudo.json").read_text())["tta"] == "hflip_scales"
    frames = len(load_manifest(root / "split.json").train)
    assert f"{frames} frames of {root} (train) pseudo-labelled" in result.output
    # an ensemble labels too, and its record names every member
    both = tmp_path / "both"
    twice = ["pseudo-label", "--run", str(run), *args[1:]]  # `--run RUN --run RUN ...`
    result = CliRunner().invoke(app, [*twice, "--out", str(both)])
    assert result.exit_code == 0, result.output
    assert json.loads((both / "pseudo.json").read_text())["model"] == f"{run} + {run}"
    assert f"pseudo-labelled by {run} + {run}:" in result.output
    refused = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "x"), "--tta", "vflip"])
    assert refused.exit_code == 2 and "tta 'vflip' is not one of" in refused.output
    assert not (tmp_path / "x").exists()
