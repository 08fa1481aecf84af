"""`cityseg import camvid`: both CamVid layouts, classes by name, drives as cities, bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from camvid_trees import SEGNET_FRAMES, colour_table, make_colour, make_segnet
from cityscapesscripts.helpers.labels import name2label
from PIL import Image
from typer.testing import CliRunner

from cityseg.cli import app
from cityseg.data.camvid import CAMVID11_CLASSES, import_camvid
from cityseg.data.cityscapes import DataError, list_samples, read_sample
from cityseg.data.labels import CATEGORIES
from cityseg.data.split import load_manifest, make_split

runner = CliRunner()

# What the issue asks, written out by hand so that a wrong entry in the module's table fails.
EXPECTED_11 = {
    "Sky": "sky",
    "Building": "building",
    "Pole": "pole",
    "Road": "road",
    "Pavement": "sidewalk",
    "Tree": "vegetation",
    "SignSymbol": "traffic sign",
    "Fence": "fence",
    "Car": "car",
    "Pedestrian": "person",
    "Bicyclist": "rider",
    "Unlabelled": "unlabeled",
}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("camvid")
    src = make_segnet(base / "src")
    import_camvid(src, base / "out")
    return src, base / "out"


def test_segnet_layout_lands_in_the_official_layout_with_drives_as_cities(
    imported: tuple[Path, Path],
) -> None:
    src, out = imported
    train = list_samples(out, "train")
    val = list_samples(out, "val")
    assert [s.city for s in train] == ["0001TP", "0001TP", "0006R0", "0016E5"]
    assert {s.city for s in val} == {"0016E5"}
    assert train[0].stem == "0001TP_000000_006690"
    assert train[2].stem == "0006R0_000000_002370"  # f02370: the letter is dropped
    # the photo is copied pixel for pixel
    photo = np.asarray(Image.open(src / "train" / "0001TP_006690.png"))
    image, _ = read_sample(train[0])
    np.testing.assert_array_equal(image, photo)
    assert (out / "gtFine" / "train" / "0001TP" / "0001TP_000000_006690_gtFine_color.png").is_file()


def test_every_class_index_becomes_the_cityscapes_label_of_the_same_name(
    imported: tuple[Path, Path],
) -> None:
    src, out = imported
    for folder, names in SEGNET_FRAMES.items():
        for name in names:
            index = np.asarray(Image.open(src / f"{folder}annot" / f"{name}.png"))
            city, frame = name.split("_")
            stem = f"{city}_000000_{int(frame.lstrip('f')):06d}"
            ids = np.asarray(
                Image.open(out / "gtFine" / folder / city / f"{stem}_gtFine_labelIds.png")
            )
            for value, camvid_name in enumerate(CAMVID11_CLASSES):
                assert (ids[index == value] == name2label[EXPECTED_11[camvid_name]].id).all()


def test_bicyclist_is_human_and_unlabelled_void(imported: tuple[Path, Path]) -> None:
    src, out = imported
    sample = list_samples(out, "train")[0]
    _, categories = read_sample(sample)
    index = np.asarray(Image.open(src / "trainannot" / "0001TP_006690.png"))
    assert categories is not None
    assert set(categories[index == 10].tolist()) == {CATEGORIES.index("human")}
    assert set(categories[index == 11].tolist()) == {CATEGORIES.index("void")}
    assert set(categories[index == 4].tolist()) == {CATEGORIES.index("flat")}


def test_split_by_names_takes_whole_drives_and_keeps_the_leak_check(
    imported: tuple[Path, Path],
) -> None:
    _, out = imported
    manifest = make_split(out, test_cities=["0001TP"], val_cities=["0006R0"])
    assert manifest.cities("test") == ["0001TP"]
    assert manifest.cities("val") == ["0006R0"]
    assert manifest.cities("train") == ["0016E5"]
    # 0016E5 frames of the official train and val splits are pooled into train
    assert len(manifest.train) == 3 and {s.split for s in manifest.train} == {"train", "val"}
    assert manifest.method["test_cities"] == ["0001TP"]
    with pytest.raises(DataError, match=r"split leaks between .* and test: cities \[.0016E5.\]"):
        make_split(out)  # the official split shares drive 0016E5: still refused
    with pytest.raises(ValueError, match=r"'nowhere'.*0001TP"):
        make_split(out, test_cities=["nowhere"])
    with pytest.raises(ValueError, match="no city left for training"):
        make_split(out, test_cities=["0001TP"], val_cities=["0006R0", "0016E5"])


def test_split_cli_takes_names_and_counts(imported: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = imported
    path = tmp_path / "s.json"
    result = runner.invoke(
        app,
        ["split", "--data", str(out), "--test-cities", "0001TP", "--val-cities", "0006R0",
         "--out", str(path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = load_manifest(path)
    assert (manifest.cities("val"), manifest.cities("test")) == (["0006R0"], ["0001TP"])
    result = runner.invoke(
        app,
        ["split", "--data", str(out), "--test-cities", "0001TP", "--val-cities", "1",
         "--out", str(path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(load_manifest(path).cities("val")) == 1
    leak = runner.invoke(app, ["split", "--data", str(out), "--out", str(path)])
    assert leak.exit_code == 2 and "--test-cities" in leak.output


def test_colour_release_maps_each_of_the_32_colours_by_name(tmp_path: Path) -> None:
    src = make_colour(tmp_path / "src")
    result = import_camvid(src, tmp_path / "out")
    assert result.layout == "colour32"
    samples = list_samples(tmp_path / "out", "train")
    assert [s.city for s in samples] == ["0001TP", "Seq05VD"]
    rgb = np.asarray(Image.open(src / "LabeledApproved_full" / "0001TP_006690_L.png"))
    ids = np.asarray(Image.open(samples[0].label))
    expected = {
        "Animal": "dynamic", "Archway": "building", "Bicyclist": "rider", "Bridge": "bridge",
        "Building": "building", "Car": "car", "CartLuggagePram": "dynamic", "Child": "person",
        "Column_Pole": "pole", "Fence": "fence", "LaneMkgsDriv": "road",
        "LaneMkgsNonDriv": "sidewalk", "Misc_Text": "traffic sign",
        "MotorcycleScooter": "motorcycle", "OtherMoving": "car", "ParkingBlock": "sidewalk",
        "Pedestrian": "person", "Road": "road", "RoadShoulder": "road", "Sidewalk": "sidewalk",
        "SignSymbol": "traffic sign", "Sky": "sky", "SUVPickupTruck": "car",
        "TrafficCone": "static", "TrafficLight": "traffic light", "Train": "train",
        "Tree": "vegetation", "Truck_Bus": "truck", "Tunnel": "tunnel",
        "VegetationMisc": "vegetation", "Void": "unlabeled", "Wall": "wall",
    }  # fmt: skip
    for colour, name in colour_table():
        where = (rgb == colour).all(axis=-1)
        assert where.any(), name
        assert (ids[where] == name2label[expected[name]].id).all(), name


def test_cli_imports_and_names_the_drives(tmp_path: Path) -> None:
    src = make_segnet(tmp_path / "src")
    result = runner.invoke(
        app, ["import", "camvid", "--src", str(src), "--out", str(tmp_path / "o"), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "0001TP, 0006R0, 0016E5" in result.output
    assert len(list_samples(tmp_path / "o", "train")) == 4


def _segnet_with(tmp_path: Path, damage: str) -> tuple[Path, Path]:
    src = make_segnet(tmp_path / "src")
    victim = src / "trainannot" / "0006R0_f02370.png"
    if damage == "missing":
        victim.unlink()
    elif damage == "range":
        array = np.asarray(Image.open(victim)).copy()
        array[3, 4] = 12
        Image.fromarray(array).save(victim)
    elif damage == "size":
        Image.fromarray(np.zeros((12, 16), np.uint8)).save(victim)
    elif damage == "orphan":
        (src / "train" / "0006R0_f02370.png").unlink()
    elif damage == "name":
        (src / "train" / "0006R0_f02370.png").rename(src / "train" / "frame.png")
        victim.rename(src / "trainannot" / "frame.png")
    return src, victim


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "0006R0_f02370.png: annotation missing"),
        ("range", "0006R0_f02370.png: class values \\[12\\] out of range"),
        ("size", "0006R0_f02370.png: annotation is 16x12 but its image .* is 32x24"),
        ("orphan", "0006R0_f02370.png: annotation without image"),
        ("name", "frame.png: name 'frame' is not <drive>_<frame>"),
    ],
)
def test_bad_segnet_input_names_the_file(tmp_path: Path, damage: str, message: str) -> None:
    src, _ = _segnet_with(tmp_path, damage)
    with pytest.raises(DataError, match=message):
        import_camvid(src, tmp_path / "out")


def test_bad_input_through_the_cli_is_one_line_naming_the_file(tmp_path: Path) -> None:
    src, _ = _segnet_with(tmp_path, "range")
    result = runner.invoke(
        app, ["import", "camvid", "--src", str(src), "--out", str(tmp_path / "o"), "--workers", "2"]
    )
    assert result.exit_code == 2
    assert "0006R0_f02370.png: class values [12] out of range" in result.output


def test_bad_colour_release_input_names_the_file(tmp_path: Path) -> None:
    src = make_colour(tmp_path / "src")
    label = src / "LabeledApproved_full" / "Seq05VD_f00000_L.png"
    rgb = np.asarray(Image.open(label)).copy()
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(label)
    with pytest.raises(DataError, match=re.escape("Seq05VD_f00000_L.png: colours [(1, 2, 3)]")):
        import_camvid(src, tmp_path / "out")
    label.unlink()
    with pytest.raises(DataError, match=re.escape("Seq05VD_f00000.png: annotation missing")):
        import_camvid(src, tmp_path / "out")
    (src / "label_colors.txt").write_text("1 2 3\tMartian\n")
    make_colour(tmp_path / "src2")
    (tmp_path / "src2" / "label_colors.txt").write_text("1 2 3\tMartian\n")
    with pytest.raises(DataError, match=re.escape("label_colors.txt:1: CamVid class 'Martian'")):
        import_camvid(tmp_path / "src2", tmp_path / "out")
    with pytest.raises(DataError, match="not a CamVid folder"):
        import_camvid(tmp_path / "out", tmp_path / "out2")
