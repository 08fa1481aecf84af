"""Reader: pairing by name, sorting, and a clear DataError for every bad input."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from data_trees import make_tree, write_frame
from PIL import Image

from cityseg.data import cityscapes
from cityseg.data.cityscapes import DataError, Sample, list_samples, read_sample, validate


def test_pairs_by_name_whatever_the_creation_order(tmp_path: Path) -> None:
    jobs = [(city, seq, f) for city in ("aachen", "bochum") for seq in (3, 1) for f in (9, 2, 5)]
    random.Random(1).shuffle(jobs)
    expected = {}
    for city, seq, frame in jobs:  # images first in one order, labels later in another
        img, _ = write_frame(tmp_path, "train", city, seq, frame, label=False)
        expected[img.name[: -len("_leftImg8bit.png")]] = img
    random.Random(2).shuffle(jobs)
    for city, seq, frame in jobs:
        write_frame(tmp_path, "train", city, seq, frame, image=False)
    samples = list_samples(tmp_path, "train")
    assert [s.stem for s in samples] == sorted(expected)
    for s in samples:
        assert s.image == expected[s.stem]
        assert s.label is not None
        assert s.label.name == f"{s.stem}_gtFine_labelIds.png"
        assert s.label.parent.name == s.city == s.stem.split("_")[0]
        assert s.split == "train"


def test_read_sample_maps_to_categories(tmp_path: Path) -> None:
    make_tree(tmp_path)
    sample = list_samples(tmp_path, "val")[0]
    image, categories = read_sample(sample)
    assert image.dtype == np.uint8 and image.shape == (16, 32, 3)
    assert categories is not None and categories.dtype == np.uint8
    assert categories.shape == (16, 32) and categories.max() <= 7
    assert validate(list_samples(tmp_path, "train")) == []


def test_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path)
    monkeypatch.setenv("CITYSCAPES_DATASET", str(tmp_path))
    assert cityscapes.find_root(None) == tmp_path
    assert len(list_samples(None, "val")) == 3


def test_missing_label(tmp_path: Path) -> None:
    make_tree(tmp_path)
    write_frame(tmp_path, "train", "aachen", 7, 7, label=False)
    with pytest.raises(DataError, match=r"aachen_000007_000007_leftImg8bit\.png: no label"):
        list_samples(tmp_path, "train")


def test_missing_image(tmp_path: Path) -> None:
    make_tree(tmp_path)
    write_frame(tmp_path, "train", "aachen", 7, 7, image=False)
    with pytest.raises(
        DataError, match=r"aachen_000007_000007_gtFine_labelIds\.png: label without image"
    ):
        list_samples(tmp_path, "train")


def test_skip_bad_skips_explicitly_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_tree(tmp_path)
    write_frame(tmp_path, "train", "aachen", 7, 7, label=False)
    samples = list_samples(tmp_path, "train", skip_bad=True)
    assert len(samples) == 12 and all(s.stem != "aachen_000007_000007" for s in samples)
    assert "aachen_000007_000007_leftImg8bit.png" in caplog.text


def test_badly_named_file(tmp_path: Path) -> None:
    make_tree(tmp_path)
    bad = tmp_path / "leftImg8bit" / "train" / "aachen" / "bochum_000001_000001_leftImg8bit.png"
    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(bad)
    with pytest.raises(
        DataError, match=r"bochum_000001_000001_leftImg8bit\.png: name is not aachen_"
    ):
        list_samples(tmp_path, "train")


def test_truncated_png(tmp_path: Path) -> None:
    make_tree(tmp_path)
    sample = list_samples(tmp_path, "train")[0]
    data = sample.image.read_bytes()
    sample.image.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=f"{sample.image.name}: unreadable or truncated"):
        read_sample(sample)
    bad = validate(list_samples(tmp_path, "train"))
    assert [s.stem for s, _ in bad] == [sample.stem]


def test_unreadable_label(tmp_path: Path) -> None:
    make_tree(tmp_path)
    sample = list_samples(tmp_path, "train")[0]
    assert sample.label is not None
    sample.label.write_bytes(b"not a png")
    with pytest.raises(DataError, match=f"{sample.label.name}: unreadable"):
        read_sample(sample)


def test_size_mismatch(tmp_path: Path) -> None:
    make_tree(tmp_path)
    sample = list_samples(tmp_path, "train")[0]
    assert sample.label is not None
    Image.fromarray(np.zeros((8, 16), np.uint8)).save(sample.label)
    with pytest.raises(
        DataError, match=r"is 16x8 but its image .* is 32x16; expected the same size"
    ):
        read_sample(sample)


def test_invalid_label_value(tmp_path: Path) -> None:
    make_tree(tmp_path)
    sample = list_samples(tmp_path, "train")[0]
    assert sample.label is not None
    ids = np.full((16, 32), 7, np.uint8)
    ids[3, 4] = 200
    Image.fromarray(ids).save(sample.label)
    with pytest.raises(DataError, match=rf"{sample.label.name}: values \[200\] are no Cityscapes"):
        read_sample(sample)


def test_rgb_label_is_rejected(tmp_path: Path) -> None:
    make_tree(tmp_path)
    sample = list_samples(tmp_path, "train")[0]
    assert sample.label is not None
    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(sample.label)
    with pytest.raises(DataError, match="single-channel"):
        read_sample(sample)


def test_empty_root(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"(?s)missing \['leftImg8bit', 'gtFine'\].*leftImg8bit/\{train"
    ):
        list_samples(tmp_path, "train")


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        list_samples(tmp_path / "nope", "train")


def test_wrong_layout_flat_files(tmp_path: Path) -> None:
    # Images straight under leftImg8bit/train (no city folders): the expected layout is shown.
    (tmp_path / "gtFine" / "train").mkdir(parents=True)
    flat = tmp_path / "leftImg8bit" / "train"
    flat.mkdir(parents=True)
    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(flat / "a_000001_000001_leftImg8bit.png")
    with pytest.raises(DataError, match=r"(?s)no \*_leftImg8bit.png images .*<city>_<seq>_<frame>"):
        list_samples(tmp_path, "train")


def test_unknown_split(tmp_path: Path) -> None:
    make_tree(tmp_path)
    with pytest.raises(DataError, match="unknown split"):
        list_samples(tmp_path, "training")


def test_sample_is_frozen() -> None:
    sample = Sample(Path("a.png"), None, "a", "test", "a_000000_000000")
    with pytest.raises(AttributeError):
        sample.city = "b"  # type: ignore[misc]


def test_stray_file_in_image_folder_is_not_ignored(tmp_path: Path) -> None:
    make_tree(tmp_path)
    stray = tmp_path / "leftImg8bit" / "train" / "aachen" / "aachen_000000_000009.jpg"
    stray.write_bytes(b"jpeg")
    with pytest.raises(DataError, match=r"aachen_000000_000009\.jpg: unexpected file"):
        list_samples(tmp_path, "train")
    assert len(list_samples(tmp_path, "train", skip_bad=True)) == 12


def test_other_gtfine_files_are_ignored(tmp_path: Path) -> None:
    make_tree(tmp_path)  # writes _gtFine_color.png beside every label
    folder = tmp_path / "gtFine" / "train" / "aachen"
    (folder / "aachen_000000_000000_gtFine_polygons.json").write_text("{}")
    (folder / ".DS_Store").write_bytes(b"")
    assert len(list_samples(tmp_path, "train")) == 12
