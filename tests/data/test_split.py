"""Split by city: no leakage, deterministic, test == official val, manifest round trip."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from data_trees import make_tree

from cityseg.data.cityscapes import DataError, list_samples
from cityseg.data.split import (
    SETS,
    default_manifest_path,
    load_manifest,
    make_split,
    parse_cities,
    parse_cities_names,
)

CITIES = {
    "train": ["aachen", "bochum", "cologne", "dresden", "erfurt", "hamburg"],
    "val": ["frankfurt", "lindau"],
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("split"), CITIES, frames=2)


def _assert_no_leak(manifest) -> None:  # type: ignore[no-untyped-def]
    for i, a in enumerate(SETS):
        for b in SETS[i + 1 :]:
            assert not set(manifest.cities(a)) & set(manifest.cities(b))
            assert not {s.stem for s in manifest.samples(a)} & {s.stem for s in manifest.samples(b)}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_no_city_or_frame_in_two_sets(root: Path, seed: int) -> None:
    manifest = make_split(root, val_cities=2, seed=seed)
    _assert_no_leak(manifest)
    assert len(manifest.cities("val")) == 2 and len(manifest.cities("train")) == 4
    # Together train + val are exactly the official train split.
    union = sorted(s.stem for s in manifest.train + manifest.val)
    assert union == [s.stem for s in list_samples(root, "train")]


def test_test_is_official_val(root: Path) -> None:
    manifest = make_split(root, seed=0)
    assert manifest.test == list_samples(root, "val")
    assert all(s.split == "val" for s in manifest.test)
    assert all(s.split == "train" for s in manifest.train + manifest.val)


def test_deterministic_and_seed_dependent(root: Path) -> None:
    a = make_split(root, val_cities=2, seed=5)
    assert a == make_split(root, val_cities=2, seed=5)
    choices = {tuple(make_split(root, val_cities=2, seed=s).cities("val")) for s in range(8)}
    assert len(choices) > 1


def test_val_fraction(root: Path) -> None:
    manifest = make_split(root, val_fraction=0.3, seed=0)
    # 6 cities × 2 frames: cities are added until val holds >= 30% of the frames.
    assert len(manifest.val) == 4 and len(manifest.cities("val")) == 2
    with pytest.raises(ValueError, match="not both"):
        make_split(root, val_cities=1, val_fraction=0.2)
    with pytest.raises(ValueError, match="val_cities=6"):
        make_split(root, val_cities=6)


def test_manifest_round_trip_with_relative_paths(root: Path, tmp_path: Path) -> None:
    manifest = make_split(root, val_cities=2, seed=3)
    path = manifest.save(default_manifest_path(root))
    assert path == root / "split.json"
    data = json.loads(path.read_text())
    assert data["seed"] == 3
    assert data["sets"]["val"]["cities"] == manifest.cities("val")
    assert data["sets"]["train"]["count"] == len(manifest.train)
    first = data["sets"]["train"]["samples"][0]
    assert (
        first["image"].startswith("leftImg8bit/train/") and not Path(first["image"]).is_absolute()
    )
    loaded = load_manifest(path)
    assert loaded.train == manifest.train and loaded.val == manifest.val
    assert loaded.test == manifest.test
    # A manifest elsewhere still finds the root.
    other = manifest.save(tmp_path / "elsewhere" / "s.json")
    assert load_manifest(other).test == manifest.test


def test_hand_edited_leaky_manifest_is_rejected(root: Path, tmp_path: Path) -> None:
    path = make_split(root, val_cities=2, seed=0).save(tmp_path / "s.json")
    data = json.loads(path.read_text())
    data["sets"]["val"]["samples"].append(data["sets"]["train"]["samples"][0])
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="leaks between train and val") as info:
        load_manifest(path)
    assert str(info.value).endswith(  # the way forward, for CamVid-like official splits
        "1 shared frame(s); if the dataset's official split shares them (CamVid), choose whole"
        " cities by name: `cityseg split --test-cities NAMES --val-cities NAMES`"
    )


def test_hand_edited_manifest_sharing_a_city_but_no_frame_is_rejected(
    root: Path, tmp_path: Path
) -> None:
    # One frame of a validation city moved to train: no frame is in two sets, the city is.
    path = make_split(root, val_cities=2, seed=0).save(tmp_path / "s.json")
    data = json.loads(path.read_text())
    moved = data["sets"]["val"]["samples"].pop(0)
    data["sets"]["train"]["samples"].append(moved)
    path.write_text(json.dumps(data))
    with pytest.raises(
        DataError, match=rf"leaks between train and val: cities \['{moved['city']}'\], 0 shared"
    ):
        load_manifest(path)


@pytest.mark.parametrize(("a", "b"), [("train", "val"), ("train", "test"), ("val", "test")])
def test_check_finds_a_shared_city_between_any_two_sets(root: Path, a: str, b: str) -> None:
    manifest = make_split(root, val_cities=2, seed=0)
    manifest.check()  # a clean split passes
    sets = {name: manifest.samples(name) for name in SETS}
    intruder = replace(sets[a][0], stem="intruder_000000_000000", image=root / "intruder.png")
    sets[b] = [*sets[b], intruder]  # another frame of a city of `a`, filed under `b`
    leaky = replace(manifest, **sets)
    with pytest.raises(
        DataError, match=rf"leaks between {a} and {b}: cities \['{intruder.city}'\], 0 shared"
    ):
        leaky.check()


def test_check_finds_a_shared_frame_filed_under_another_city(root: Path) -> None:
    manifest = make_split(root, val_cities=2, seed=0)
    frame = replace(manifest.train[0], city="nowhere")  # same file, city field edited
    leaky = replace(manifest, val=[*manifest.val, frame])
    with pytest.raises(DataError, match=r"leaks between train and val: cities \[\], 1 shared"):
        leaky.check()


def test_missing_manifest_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.json not found"):
        load_manifest(tmp_path / "nope.json")


def test_one_city_cannot_be_split(tmp_path: Path) -> None:
    make_tree(tmp_path, {"train": ["aachen"], "val": ["frankfurt"]}, frames=1)
    with pytest.raises(DataError, match="need at least 2"):
        make_split(tmp_path)


def test_decode_drops_bad_samples_only_when_asked(tmp_path: Path) -> None:
    make_tree(tmp_path, CITIES, frames=2)
    broken = sorted((tmp_path / "leftImg8bit" / "train").rglob("*.png"))[0]
    broken.write_bytes(broken.read_bytes()[:50])
    assert broken in [s.image for s in make_split(tmp_path).train + make_split(tmp_path).val]
    with pytest.raises(DataError, match=rf"{broken.name}: unreadable or truncated"):
        make_split(tmp_path, decode=True)
    manifest = make_split(tmp_path, decode=True, skip_bad=True)
    kept = [s.image for s in manifest.train + manifest.val]
    assert broken not in kept and len(kept) == 11


def test_split_of_the_synthetic_tree(synth_root: Path) -> None:
    manifest = make_split(synth_root, seed=0)
    _assert_no_leak(manifest)
    assert manifest.test == list_samples(synth_root, "val")
    assert len(manifest.cities("val")) == 1 and len(manifest.cities("train")) == 2


def test_print_summary_lists_every_set_with_its_cities_and_counts(root: Path) -> None:
    from rich.console import Console

    from cityseg.data.split import print_summary

    manifest = make_split(root, val_cities=2, seed=3)
    console = Console(record=True, width=250)
    print_summary(manifest, console)
    text = console.export_text()
    assert f"split of {manifest.root} (seed 3)" in text
    rows = [
        [cell.strip() for cell in line.replace("┃", "│").split("│")[1:-1]]
        for line in text.splitlines()
        if "│" in line or "┃" in line
    ]
    assert rows[0] == ["set", "official split", "cities", "frames", "city names"]
    expected = [
        [name, official, str(len(manifest.cities(name))), str(len(manifest.samples(name))),
         ", ".join(manifest.cities(name))]
        for name, official in (("train", "train"), ("val", "train"), ("test", "val"))
    ]  # fmt: skip
    assert rows[1:] == expected
    assert expected[0][2:4] == ["4", "8"] and expected[2][2:4] == ["2", "4"]


def test_manifest_saves_and_loads_every_field(root: Path, tmp_path: Path) -> None:
    manifest = make_split(root, val_fraction=0.3, seed=4)
    path = manifest.save(tmp_path / "deep" / "er" / "split.json")  # parents are created
    assert sorted(p.name for p in path.parent.iterdir()) == ["split.json"]  # no temp file left
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["seed"] == 4 and data["method"] == {"val_fraction": 0.3}
    assert data["official"] == {"train": "train", "val": "train", "test": "val"}
    assert Path(data["root"]) == Path(os.path.relpath(root.resolve(), path.parent.resolve()))
    for name in SETS:
        entry = data["sets"][name]
        assert entry["cities"] == manifest.cities(name)
        assert entry["count"] == len(manifest.samples(name))
        first = manifest.samples(name)[0]
        assert entry["samples"][0] == {
            "image": first.image.relative_to(manifest.root).as_posix(),
            "label": first.label.relative_to(manifest.root).as_posix(),
            "city": first.city,
            "split": first.split,
            "stem": first.stem,
        }
    loaded = load_manifest(path)
    assert loaded == manifest  # root, seed, method and all three sets
    moved = load_manifest(path, root=tmp_path / "elsewhere")  # an explicit root wins
    assert moved.root == tmp_path / "elsewhere"
    assert (
        moved.train[0].image
        == tmp_path / "elsewhere" / data["sets"]["train"]["samples"][0]["image"]
    )


def test_manifest_without_labels_and_optional_fields(root: Path, tmp_path: Path) -> None:
    manifest = make_split(root, val_cities=2, seed=0)
    unlabelled = replace(manifest, test=[replace(s, label=None) for s in manifest.test])
    path = unlabelled.save(tmp_path / "s.json")
    data = json.loads(path.read_text())
    assert data["sets"]["test"]["samples"][0]["label"] is None
    del data["seed"], data["method"]
    path.write_text(json.dumps(data))
    loaded = load_manifest(path)
    assert all(s.label is None for s in loaded.test) and loaded.train == manifest.train
    assert loaded.seed == 0 and loaded.method == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{broken", r"^split manifest .*s\.json: unreadable JSON \("),
        ("[1, 2]", r"s\.json: expected a split manifest of version 1$"),
        ('{"version": 2}', r"s\.json: expected a split manifest of version 1$"),
        (
            '{"version": 1, "root": ".", "sets": {}}',
            r"s\.json: malformed manifest, missing field 'train'$",
        ),
    ],
)
def test_bad_manifests_are_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "s.json").write_text(text)
    with pytest.raises(DataError, match=message):
        load_manifest(tmp_path / "s.json")


def test_make_split_defaults_and_option_errors(root: Path, tmp_path: Path) -> None:
    assert make_split(root) == make_split(root, seed=0, val_fraction=0.2)
    with pytest.raises(ValueError, match=r"^give val_cities or val_fraction, not both$"):
        make_split(root, val_cities=1, val_fraction=0.5)
    with pytest.raises(KeyError, match="unknown set 'dev'"):
        make_split(root).samples("dev")
    two = make_tree(tmp_path / "two", {"train": ["aachen", "bochum"], "val": ["lindau"]}, frames=1)
    assert make_split(two).cities("train") in (["aachen"], ["bochum"])  # two cities are enough
    one = make_tree(tmp_path / "one", {"train": ["aachen"], "val": ["lindau"]}, frames=1)
    with pytest.raises(
        DataError, match=r"leftImg8bit/train: found 1 city outside test; need at least 2"
    ):
        make_split(one)


def test_skip_bad_reaches_both_official_splits(tmp_path: Path) -> None:
    make_tree(tmp_path, CITIES, frames=2)
    orphans = [
        sorted((tmp_path / "gtFine" / split).rglob("*_labelIds.png"))[0]
        for split in ("train", "val")
    ]
    for label in orphans:
        label.unlink()  # an image without its label in each split
    with pytest.raises(DataError):
        make_split(tmp_path)
    manifest = make_split(tmp_path, skip_bad=True)
    assert len(manifest.train + manifest.val) == 11 and len(manifest.test) == 3


def test_decode_lists_every_bad_file_on_its_own_line(tmp_path: Path) -> None:
    make_tree(tmp_path, CITIES, frames=2)
    broken = sorted((tmp_path / "leftImg8bit" / "train").rglob("*.png"))[:2]
    for path in broken:
        path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataError) as info:
        make_split(tmp_path, decode=True, workers=2)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("2 sample(s) failed to decode")
    assert [
        line.startswith("  ") and p.name in line for line, p in zip(lines[1:], broken, strict=True)
    ] == [True, True]


def test_cities_named_for_test_pool_both_official_splits(root: Path) -> None:
    # A dataset whose official split shares drives (CamVid): test is every frame of the named
    # cities, wherever the official split filed them, and validation is named the same way.
    manifest = make_split(root, test_cities=["lindau", "bochum"], val_cities=["cologne"], seed=3)
    assert manifest.cities("test") == ["bochum", "lindau"]
    assert sorted(s.split for s in manifest.test) == ["train", "train", "val", "val"]
    assert manifest.cities("val") == ["cologne"]
    assert manifest.cities("train") == ["aachen", "dresden", "erfurt", "frankfurt", "hamburg"]
    assert len(manifest.train) == 10 and len(manifest.val) == 2
    assert manifest.method == {"val_cities": ["cologne"], "test_cities": ["bochum", "lindau"]}
    assert manifest.seed == 3
    counted = make_split(root, test_cities=["lindau"], val_cities=2, seed=1)
    assert counted.cities("test") == ["lindau"] and len(counted.cities("val")) == 2
    assert counted.method == {"val_cities": 2, "test_cities": ["lindau"]}
    _assert_no_leak(counted)
    pooled = make_split(root, test_cities="lindau")  # one name as a plain string
    assert pooled.cities("test") == ["lindau"]
    assert pooled.to_dict(root)["official"] == {s: "train+val" for s in SETS}
    assert make_split(root).to_dict(root)["official"] == {
        "train": "train",
        "val": "train",
        "test": "val",
    }


def test_unknown_or_all_named_cities_are_refused_with_the_names(root: Path) -> None:
    with pytest.raises(ValueError, match=r"^test_cities: \['nowhere'\] are no cities of .*aachen"):
        make_split(root, test_cities=["nowhere", "lindau"])
    with pytest.raises(ValueError, match=r"^val_cities: \['x', 'y'\] are no cities of "):
        make_split(root, val_cities=["y", "x", "aachen"])
    everything = CITIES["train"]
    with pytest.raises(ValueError, match=r"^val_cities=\['aachen', .*: no city left for training$"):
        make_split(root, val_cities=everything)
    for wrong in (0, 6):
        with pytest.raises(ValueError, match=rf"^val_cities={wrong}: expected 1\.\.5$"):
            make_split(root, val_cities=wrong)
    for fraction in (0.0, 1.0):
        with pytest.raises(ValueError, match=rf"^val_fraction={fraction}: expected a number in"):
            make_split(root, val_fraction=fraction)


@pytest.mark.parametrize(
    ("text", "count_or_names", "names"),
    [
        (None, None, None),
        ("", None, None),
        ("  ", None, None),
        ("2", 2, ["2"]),
        (" 12 ", 12, ["12"]),
        ("0006R0", ["0006R0"], ["0006R0"]),
        (" 0006R0, 0016E5,, ", ["0006R0", "0016E5"], ["0006R0", "0016E5"]),
    ],
)
def test_city_options_parse_counts_and_names(text: str | None, count_or_names, names) -> None:  # type: ignore[no-untyped-def]
    assert parse_cities(text) == count_or_names
    assert parse_cities_names(text) == names


def test_more_bad_files_than_listed_are_counted(tmp_path: Path) -> None:
    make_tree(tmp_path, CITIES, frames=4)
    broken = sorted((tmp_path / "leftImg8bit" / "train").rglob("*.png"))[:21]
    for path in broken:
        path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataError) as info:
        make_split(tmp_path, decode=True)
    lines = str(info.value).splitlines()
    assert lines[0] == "21 sample(s) failed to decode (--skip-bad drops them):"
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "  ... and 1 more"
    assert all(line.startswith("  ") and ": " in line for line in lines[1:21])


def test_named_test_cities_skip_and_decode_bad_files_of_both_official_splits(
    tmp_path: Path,
) -> None:
    make_tree(tmp_path, CITIES, frames=2)
    broken = sorted((tmp_path / "leftImg8bit" / "train").rglob("*.png"))[0]
    broken.write_bytes(broken.read_bytes()[:50])
    assert len(make_split(tmp_path, test_cities=["lindau"]).train) > 0  # not decoded: kept
    with pytest.raises(DataError, match=rf"^1 sample\(s\) failed.*\n  .*{broken.name}"):
        make_split(tmp_path, test_cities=["lindau"], decode=True)
    for split in ("train", "val"):  # an image without its label in each official split
        sorted((tmp_path / "gtFine" / split).rglob("*_labelIds.png"))[-1].unlink()
    with pytest.raises(DataError, match="no label"):
        make_split(tmp_path, test_cities=["lindau"])
    skipped = make_split(tmp_path, test_cities=["lindau"], skip_bad=True)
    kept = [s.image for s in skipped.train + skipped.val + skipped.test]
    assert broken in kept and len(kept) == 14
    decoded = make_split(tmp_path, test_cities=["lindau"], skip_bad=True, decode=True)
    kept = [s.image for s in decoded.train + decoded.val + decoded.test]
    assert broken not in kept and len(kept) == 13


def test_unknown_names_list_the_root_and_its_cities(root: Path) -> None:
    for field, call in (
        ("test_cities", lambda: make_split(root, test_cities=["nowhere"])),
        ("val_cities", lambda: make_split(root, val_cities=["nowhere"])),
    ):
        with pytest.raises(ValueError) as info:
            call()
        known = CITIES["train"] + (CITIES["val"] if field == "test_cities" else [])
        assert str(info.value) == (
            f"{field}: ['nowhere'] are no cities of {root} (cities there: {sorted(known)})"
        )


@pytest.mark.parametrize(("fraction", "taken"), [(0.25, 2), (0.5, 3)])
def test_val_fraction_stops_at_the_first_city_that_reaches_it(
    root: Path, fraction: float, taken: int
) -> None:
    # Six cities of two frames: 0.25 of 12 frames is reached by the second city (4 >= 3) and
    # 0.5 exactly by the third (6 >= 6).
    manifest = make_split(root, val_fraction=fraction, seed=4)
    assert len(manifest.cities("val")) == taken and len(manifest.val) == 2 * taken


def test_leak_message_shows_the_way_forward(root: Path) -> None:
    manifest = make_split(root, val_cities=1)
    leaky = replace(manifest, test=manifest.test + manifest.train[:1])
    with pytest.raises(DataError) as info:
        leaky.check()
    city = manifest.train[0].city
    assert str(info.value) == (
        f"split leaks between train and test: cities ['{city}'], 1 shared frame(s); if the "
        "dataset's official split shares them (CamVid), choose whole cities by name: "
        "`cityseg split --test-cities NAMES --val-cities NAMES`"
    )


def test_save_logs_where_the_manifest_went(
    root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="cityseg.data.split"):
        path = make_split(root).save(tmp_path / "split.json")
    assert caplog.messages == [f"split manifest written to {path}"]
