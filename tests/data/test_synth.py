"""The synthetic-city generator: official layout, exact labels, determinism, variety."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import name2label
from cityscapesscripts.preparation.json2labelImg import json2labelImg
from PIL import Image
from typer.testing import CliRunner

from cityseg.data import labels
from cityseg.data.synth import (
    COLOR_LUT,
    SPLITS,
    city_plan,
    frame_seed,
    generate,
    render_frame,
    split_counts,
)
from cityseg.data.synth_actors import TYRE
from cityseg.data.synth_geometry import Obj
from cityseg.data.synth_scene import SceneBuilder, make_style

STEM = re.compile(r"^([a-z]+)_(\d{6})_(\d{6})$")
GT_SUFFIXES = ("labelIds.png", "color.png", "instanceIds.png", "polygons.json")


def _frames(root: Path, split: str) -> list[Path]:
    return sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))


def _gt(image_path: Path, suffix: str) -> Path:
    split, city = image_path.parent.parent.name, image_path.parent.name
    stem = image_path.name.removesuffix("_leftImg8bit.png")
    root = image_path.parents[3]
    return root / "gtFine" / split / city / f"{stem}_gtFine_{suffix}"


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout_and_names(synth_root: Path) -> None:
    cities_by_split = {}
    for split in SPLITS:
        images = _frames(synth_root, split)
        assert images, f"no frames in {split}"
        cities_by_split[split] = {p.parent.name for p in images}
        for image_path in images:
            stem = image_path.name.removesuffix("_leftImg8bit.png")
            match = STEM.match(stem)
            assert match, image_path.name
            assert match.group(1) == image_path.parent.name  # file names start with the city
            for suffix in GT_SUFFIXES:
                assert _gt(image_path, suffix).is_file(), _gt(image_path, suffix)
            with Image.open(image_path) as img:
                assert img.mode == "RGB" and img.size == (256, 128)
    assert [len(cities_by_split[s]) for s in SPLITS] == [3, 1, 1]
    all_cities = [c for s in SPLITS for c in cities_by_split[s]]
    assert len(all_cities) == len(set(all_cities)), "a city appears in two splits"
    meta = json.loads((synth_root / "synth.json").read_text())
    assert {s: sorted(v) for s, v in meta["cities"].items()} == {
        s: sorted(v) for s, v in cities_by_split.items()
    }


def test_label_ids_valid_and_colour_and_instances_agree(synth_root: Path) -> None:
    hoods = 0
    for image_path in _frames(synth_root, "train") + _frames(synth_root, "val"):
        ids = np.asarray(Image.open(_gt(image_path, "labelIds.png")))
        assert ids.dtype == np.uint8 and ids.shape == (128, 256)
        assert labels.VALID_ID[ids].all(), np.unique(ids)
        color = np.asarray(Image.open(_gt(image_path, "color.png")))
        np.testing.assert_array_equal(color, COLOR_LUT[ids])
        inst = np.asarray(Image.open(_gt(image_path, "instanceIds.png"))).astype(np.int64)
        np.testing.assert_array_equal(np.where(inst >= 1000, inst // 1000, inst), ids)
        assert (inst >= 1000).any(), "no instance of a car or person in the frame"
        hood = ids == name2label["ego vehicle"].id
        if hood.any():  # the bonnet is in view in some cities' frames only (style.hood)
            hoods += 1
            assert hood[-1].all() and not hood[0].any(), "the ego hood belongs at the bottom"
    assert hoods > 0, "no frame shows the ego hood"


def test_json2labelimg_reproduces_label_ids(synth_root: Path, tmp_path: Path) -> None:
    for image_path in _frames(synth_root, "train")[:6] + _frames(synth_root, "test")[:2]:
        out = tmp_path / "redrawn.png"
        json2labelImg(str(_gt(image_path, "polygons.json")), str(out), "ids")
        redrawn = np.asarray(Image.open(out))
        ids = np.asarray(Image.open(_gt(image_path, "labelIds.png")))
        agree = (redrawn == ids).mean()
        assert agree >= 0.99, f"{image_path.name}: json2labelImg agrees on {agree:.4f}"


def test_polygons_json_is_official_format(synth_root: Path) -> None:
    doc = json.loads(_gt(_frames(synth_root, "train")[0], "polygons.json").read_text())
    assert (doc["imgWidth"], doc["imgHeight"]) == (256, 128)
    assert doc["objects"][0]["label"] == "sky"
    for ob in doc["objects"]:
        assert ob["label"] in name2label
        assert len(ob["polygon"]) >= 3
        assert all(len(p) == 2 and all(isinstance(c, int) for c in p) for p in ob["polygon"])


def test_test_split_has_only_dummy_labels(synth_root: Path) -> None:
    allowed = {name2label[n].id for n in ("unlabeled", "ego vehicle", "out of roi")}
    for image_path in _frames(synth_root, "test"):
        ids = np.asarray(Image.open(_gt(image_path, "labelIds.png")))
        assert set(np.unique(ids).tolist()) <= allowed
        doc = json.loads(_gt(image_path, "polygons.json").read_text())
        assert {ob["label"] for ob in doc["objects"]} <= {"ego vehicle", "out of roi"}
        image = np.asarray(Image.open(image_path))
        assert image.std() > 20, "test images still show a real street"


def test_every_category_in_most_frames() -> None:
    plan = city_plan(8, seed=3)
    styles = [s for split in SPLITS for s in plan[split]]
    present = []
    for style in styles:
        for frame in range(3):
            _, ids, _ = render_frame(style, frame_seed(3, style.index, frame), (256, 128))
            present.append(set(np.unique(labels.to_categories(ids)).tolist()))
    share = {c: np.mean([c in p for p in present]) for c in range(labels.NUM_CLASSES)}
    assert all(v >= 0.75 for v in share.values()), share
    assert np.mean([len(p) == labels.NUM_CLASSES for p in present]) >= 0.6, share


def test_many_official_labels_appear() -> None:
    style = make_style("probe", 0, seed=0)
    seen: set[int] = set()
    for frame in range(12):
        _, ids, _ = render_frame(style, frame, (512, 256))
        seen |= set(np.unique(ids).tolist())
    names = {lab for lab, v in name2label.items() if v.id in seen}
    for must in ("road", "sidewalk", "building", "pole", "traffic sign", "vegetation", "sky"):
        assert must in names
    assert len(seen) >= 15, sorted(names)


def test_render_frame_is_pure_and_seeded() -> None:
    style = make_style("probe", 1, seed=0)
    a = render_frame(style, 42, (192, 96))
    b = render_frame(style, 42, (192, 96))
    c = render_frame(style, 43, (192, 96))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == (96, 192, 3) and a[0].dtype == np.uint8
    assert a[1].shape == (96, 192) and a[1].dtype == np.uint8


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    kw = {"cities": 5, "frames_per_city": 2, "size": (128, 64), "seed": 5}
    one = _tree_digest(generate(tmp_path / "one", workers=1, **kw))
    two = _tree_digest(generate(tmp_path / "two", workers=2, **kw))
    assert one == two
    assert len(one) == 5 * 2 * 5 + 1  # 5 files per frame + synth.json
    other = _tree_digest(generate(tmp_path / "other", workers=1, **{**kw, "seed": 6}))
    assert other != one


def test_objects_shrink_toward_the_horizon() -> None:
    builder = SceneBuilder(make_style("probe", 0, 0), np.random.default_rng(0), (1024, 512))
    builder.build()

    def rear(z: float) -> list[int]:
        builder.rng = np.random.default_rng(1)  # the same car, only its distance changes
        return [p[1] for p in builder._vehicle(1.0, z, "car")[-1].polygon]

    near, far = rear(10.0), rear(40.0)
    assert max(near) - min(near) == pytest.approx(4 * (max(far) - min(far)), rel=0.05)
    assert builder.cam.horizon < max(far) < max(near), "farther cars stand nearer the horizon"


def test_vehicles_stand_on_their_wheels() -> None:
    """A car beside the camera's line shows its side with two tyres on the ground, labelled
    as the car (same instance); one straight ahead shows its tyres under the rear only."""
    builder = SceneBuilder(make_style("probe", 0, 0), np.random.default_rng(0), (1024, 512))
    builder.build()
    builder.rng = np.random.default_rng(1)
    parts = builder._vehicle(3.0, 10.0, "car")
    wheels, rear = [p for p in parts if p.color == TYRE], parts[-1]
    assert len(wheels) == 2
    assert all(w.label == "car" and w.group == rear.group for w in wheels)
    for wheel in wheels:  # the lowest point of each tyre is on the ground under its axle
        axle = wheel.depth + 0.32
        assert max(v for _, v in wheel.polygon) == pytest.approx(
            builder.cam.uv(2.1, 0.0, axle)[1], abs=2
        )
    ahead = builder._vehicle(0.0, 10.0, "bus")
    assert not [p for p in ahead if p.color == TYRE]
    assert sum(color == TYRE for _, color in ahead[-1].details) == 2


def test_buses_show_lamps_plate_and_livery_front_and_rear() -> None:
    """A bus's rear carries a yellow plate, red lamps and a window high up; its front a white
    plate and a windscreen taller than that window. Drawing them takes no random draw."""
    builder = SceneBuilder(make_style("probe", 0, 0), np.random.default_rng(0), (1024, 512))
    builder.build()
    paint, glass = (200, 30, 40), (42, 50, 62)
    faces = {}
    for oncoming in (False, True):
        face = Obj("bus", [], paint, 12.0)
        state = builder.rng.bit_generator.state
        builder._bus_face(face, 0.0, 12.0, 2.55, 4.3, paint, glass, double=True, oncoming=oncoming)
        assert builder.rng.bit_generator.state == state
        faces[oncoming] = {color: polygon for polygon, color in face.details}
    rear, front = faces[False], faces[True]
    assert (230, 195, 30) in rear and (190, 25, 25) in rear
    assert (235, 235, 225) in front and (235, 230, 200) in front

    def height(polygon: list[tuple[int, int]]) -> int:
        return max(v for _, v in polygon) - min(v for _, v in polygon)

    assert height(front[glass]) > 1.5 * height(rear[glass])


def test_a_car_across_the_view_shows_its_profile_on_two_wheels() -> None:
    builder = SceneBuilder(make_style("probe", 0, 0), np.random.default_rng(0), (1024, 512))
    builder.build()
    builder.rng = np.random.default_rng(2)
    body, *wheels = builder._profile_car(0.0, 20.0, facing=1)
    assert body.label == "car" and len(wheels) == 2
    assert all(w.label == "car" and w.group == body.group and w.color == TYRE for w in wheels)
    us = [u for u, _ in body.polygon]
    width_px = max(us) - min(us)  # 4.0-4.8 m long, seen side on at 20 m
    assert 4.0 * builder.cam.scale(20.0) - 2 <= width_px <= 4.8 * builder.cam.scale(20.0) + 2
    ground = builder.cam.uv(0.0, 0.0, 20.0)[1]
    for wheel in wheels:  # standing on the road, one near each end
        assert max(v for _, v in wheel.polygon) == pytest.approx(ground, abs=1)
    centres = sorted(sum(u for u, _ in w.polygon) / len(w.polygon) for w in wheels)
    assert min(us) < centres[0] < centres[1] < max(us)


def test_facades_carry_signs_above_head_height() -> None:
    """Signs on a facade are labelled traffic sign (CamVid's SignSymbol), sit between 2.4 and
    5 m up on the stretch of wall they were given, and stop where they would be sub-pixel."""
    builder = SceneBuilder(make_style("probe", 0, 0), np.random.default_rng(0), (1024, 512))
    builder.build()
    builder.rng = np.random.default_rng(3)
    builder.street = []
    builder.wall_signs(-1, -8.0, 10.0, 60.0)
    signs = [part for _, _, parts in builder.street for part in parts]
    assert len(signs) >= 3 and all(s.label == "traffic sign" and s.details for s in signs)
    for sign in signs:
        assert 10.0 <= sign.depth <= 60.0
        vs = [v for _, v in sign.polygon]
        assert builder.cam.uv(-8.0, 5.0, sign.depth)[1] - 2 <= min(vs)
        assert max(vs) <= builder.cam.uv(-8.0, 2.4, sign.depth)[1] + 2
    builder.street = []
    builder.wall_signs(-1, -8.0, 2000.0, 2100.0)  # a few pixels per metre: none drawn
    assert not builder.street


def test_a_dim_evening_darkens_the_street_under_a_bright_sky(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`dim` (a camera exposed for the evening sky) leaves the street several times darker
    while the sky keeps its light: the same frame's road at dim 1 is under a third as bright,
    its sky at least nine tenths as bright."""
    import dataclasses

    from cityseg.data import synth

    draw = synth._conditions
    road, sky = name2label["road"].id, name2label["sky"].id
    means = {}
    for dim in (0.0, 1.0):
        monkeypatch.setattr(
            synth,
            "_conditions",
            lambda style, rng, dim=dim: dataclasses.replace(draw(style, rng), dim=dim, fog=0.0),
        )
        image, labels, _ = render_frame(make_style("probe", 0, 0), 7, (256, 128))
        grey = image.astype(np.float32).mean(axis=2)
        means[dim] = (grey[labels == road].mean(), grey[labels == sky].mean())
    assert means[1.0][0] < means[0.0][0] / 3
    assert means[1.0][1] >= 0.9 * means[0.0][1]


def test_bare_crowns_show_what_is_behind_them() -> None:
    """`_draw` keeps, under each tree crown, the facade it hides: its gaps show that facade,
    not the sky; without crowns there is nothing to keep."""
    from cityseg.data.synth import _draw
    from cityseg.data.synth_geometry import Obj

    sky = Obj("sky", [(0, 0), (40, 0), (40, 20), (0, 20)], (150, 180, 220), math.inf)
    facade = Obj("building", [(20, 0), (40, 0), (40, 20), (20, 20)], (120, 60, 40), 30.0)
    crown = Obj("vegetation", [(10, 0), (30, 0), (30, 20), (10, 20)], (40, 90, 30), 10, crown=True)
    rgb, index, behind, behind_index = _draw([sky, facade, crown], (40, 20))
    assert behind is not None and behind_index is not None
    assert np.asarray(rgb)[5, 25].tolist() == [40, 90, 30]  # the crown, as it is painted
    assert index[5, 25] == 3 and behind_index[5, 25] == 2  # hiding the facade
    assert np.asarray(behind)[5, 25].tolist() == [120, 60, 40]
    assert behind_index[5, 15] == 1  # and the sky to its left
    _, _, none, none_index = _draw([sky, facade], (40, 20))
    assert none is None and none_index is None


def test_cities_look_different() -> None:
    a, b = make_style("a", 0, 0), make_style("b", 1, 0)
    assert a.facade_colors != b.facade_colors
    assert a.building_height != b.building_height


def test_bad_arguments_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cities=4"):
        split_counts(4)
    assert split_counts(5) == {"train": 3, "val": 1, "test": 1}
    assert sum(split_counts(20).values()) == 20
    with pytest.raises(ValueError, match="frames_per_city"):
        generate(tmp_path / "x", frames_per_city=0)
    generate(tmp_path / "y", cities=5, frames_per_city=1, size=(64, 32))
    with pytest.raises(FileExistsError, match="overwrite"):
        generate(tmp_path / "y", cities=5, frames_per_city=1, size=(64, 32))
    generate(tmp_path / "y", cities=5, frames_per_city=1, size=(64, 32), overwrite=True)
    assert sorted(p.name for p in (tmp_path / "y").iterdir()) == [
        "gtFine",
        "leftImg8bit",
        "synth.json",
    ]
    with pytest.raises(ValueError, match="too small"):
        generate(tmp_path / "z", size=(8, 4))


def test_cli_synth_and_bench(tmp_path: Path) -> None:
    from cityseg.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["synth", "--out", str(tmp_path / "d"), "--cities", "3"])
    assert bad.exit_code == 2 and "cities=3" in bad.output
    ok = runner.invoke(
        app,
        ["synth", "--out", str(tmp_path / "d"), "--cities", "5", "--frames-per-city", "1",
         "--size", "64x32", "--seed", "1"],
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert len(list((tmp_path / "d" / "leftImg8bit").rglob("*.png"))) == 5
    out = tmp_path / "bench.json"
    res = runner.invoke(
        app, ["bench", "synth", "--size", "64x32", "--frames", "4", "--json", str(out)]
    )
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert [r["workers"] for r in result["results"]] == [1, 2]
    assert all(r["frames_per_s"] > 0 for r in result["results"])
    assert result["speedup_2_vs_1"] > 0
