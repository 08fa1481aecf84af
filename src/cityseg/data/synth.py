"""Procedural synthetic cities written in the exact official Cityscapes layout.

`render_frame` paints one street scene from the polygon list of `synth_scene` (labels by
drawing the polygons in order with PIL, exactly as `json2labelImg` does, and the colour
image from the same polygons plus texture, light and weather), and `generate` writes whole
cities as `leftImg8bit/` + `gtFine/` trees. Every frame is seeded from (seed, city, frame),
so the output is identical whatever the number of worker processes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import labels as _OFFICIAL_LABELS
from cityscapesscripts.helpers.labels import name2label
from PIL import Image, ImageDraw

from cityseg.data.synth_scene import (
    GROUND_LABELS,
    CityStyle,
    Obj,
    SceneBuilder,
    city_names,
    make_style,
)

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
FRAME_NUMBER = 19  # official frames are `<city>_<seq>_000019`: the 20th frame of a snippet
# Lossless PNG tuned for speed: one "sub" filter + run-length zlib is ~3x faster than the
# default adaptive filtering at about the same file size for these frames.
PNG = [
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_SUB,
]

# Texture amplitude per label id: (fine grain, coarse blotches), relative to the base colour.
_TEXTURE = {
    "road": (0.07, 0.10),
    "sidewalk": (0.06, 0.08),
    "parking": (0.08, 0.10),
    "terrain": (0.14, 0.18),
    "building": (0.05, 0.10),
    "wall": (0.07, 0.10),
    "fence": (0.08, 0.05),
    "vegetation": (0.20, 0.22),
    "sky": (0.01, 0.0),
    "pole": (0.04, 0.04),
    "traffic sign": (0.03, 0.02),
    "traffic light": (0.03, 0.02),
    "person": (0.06, 0.05),
    "rider": (0.06, 0.05),
    "ego vehicle": (0.02, 0.05),
}
FINE_AMP = np.full(256, 0.04, np.float32)
COARSE_AMP = np.full(256, 0.05, np.float32)
for _name, (_fine, _coarse) in _TEXTURE.items():
    FINE_AMP[name2label[_name].id] = _fine
    COARSE_AMP[name2label[_name].id] = _coarse
IS_GROUND = np.zeros(256, bool)
IS_GROUND[[name2label[n].id for n in GROUND_LABELS]] = True
SKY_ID = name2label["sky"].id
LEAF_AMP = np.zeros(256, np.float32)  # grass tufts (leaf pattern) per label id
LEAF_AMP[name2label["terrain"].id] = 0.22
CRACK_AMP = np.zeros(256, np.float32)  # asphalt cracks (twig pattern) per label id
CRACK_AMP[[name2label["road"].id, name2label["parking"].id]] = 0.3
# Official label colours (RGBA, as json2labelImg's "color" encoding writes them).
COLOR_LUT = np.zeros((256, 4), np.uint8)
for _lab in _OFFICIAL_LABELS:
    if _lab.id >= 0:
        COLOR_LUT[_lab.id] = (*_lab.color, 255)
_COLOR_LUT_BGRA = np.ascontiguousarray(COLOR_LUT[:, [2, 1, 0, 3]])  # OpenCV's channel order


@dataclass(frozen=True)
class Conditions:
    """Per-frame light and weather."""

    time_of_day: float  # 0 noon .. 1 dusk
    fog: float  # 0 clear .. 1 thick fog
    rain: bool
    noise: float  # sensor noise sigma in grey levels
    blur: float  # Gaussian blur radius in pixels (0 = sharp)
    shadow: float  # darkening of shadowed ground, 0..1
    leafiness: float = 1.0  # tree crowns: 0 bare twigs .. 1 full leaf
    exposure: float = 0.0  # how far the sky is blown out toward white, 0..1
    vignette: float = 0.0  # darkening of the corners, 0..1
    jpeg: int = 0  # JPEG quality of the camera's compression (0 = none)
    motion: int = 0  # horizontal motion-blur length in pixels at 1024 wide (0 = none)
    dim: float = 0.0  # an evening exposed for the bright sky: how dark the street is, 0..1


def _conditions(style: CityStyle, rng: np.random.Generator) -> Conditions:
    dusk = rng.uniform() < style.dusk
    base = Conditions(
        time_of_day=rng.uniform(0.55, 1.0) if dusk else rng.uniform(0.0, 0.35),
        fog=rng.uniform(0.3, 1.0) if rng.uniform() < style.fog else 0.0,
        rain=bool(rng.uniform() < style.rain),
        noise=rng.uniform(1.0, 6.0),
        blur=rng.uniform(0.4, 1.3) if rng.uniform() < 0.5 else 0.0,
        shadow=rng.uniform(0.25, 0.5),
    )
    # drawn from a generator of their own so that the draws above keep their values
    extra = np.random.default_rng([int(rng.integers(2**31)), 31337])
    return dataclasses.replace(
        base,
        leafiness=float(extra.uniform(*style.leafiness)),
        exposure=float(np.clip(style.sky_exposure + extra.uniform(-0.2, 0.2), 0, 1)),
        vignette=float(extra.uniform(0.0, 0.45)),
        jpeg=int(extra.integers(30, 90)) if extra.uniform() < style.jpeg else 0,
        motion=int(extra.integers(3, 12)) if extra.uniform() < 0.2 else 0,
        # most evening frames, and some overcast days, leave the street under-exposed
        dim=float(extra.uniform(0.3, 1.0))
        if extra.uniform() < (0.7 if base.time_of_day > 0.5 else 0.15)
        else 0.0,
    )


@functools.lru_cache(maxsize=4)
def _noise(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Fixed noise tiles, 1.5x the frame size: fine (H', W', 3) and coarse blotches (H', W').

    Drawing fresh Gaussian noise for every frame costs more than the whole rendering; a
    random window into a fixed larger tile is as good for texture and stays deterministic.
    """
    width, height = size[0] * 3 // 2, size[1] * 3 // 2
    rng = np.random.default_rng(12345)
    fine = rng.standard_normal((height, width, 3), dtype=np.float32)
    coarse = np.zeros((height, width), np.float32)
    for cell, weight in ((48, 0.6), (12, 0.4)):
        small = rng.standard_normal((max(2, height // cell), max(2, width // cell)))
        img = Image.fromarray(small.astype(np.float32), mode="F")
        coarse += weight * np.asarray(img.resize((width, height), Image.Resampling.BILINEAR))
    coarse /= coarse.std() + 1e-6
    return fine, coarse


@functools.lru_cache(maxsize=4)
def _patterns(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Fixed leaf and twig tiles, 1.5x the frame size, scaled with the frame width.

    `leaf`: clumps of leaves (two octaves of cell noise, a few pixels across), unit variance.
    `twig`: thin meandering lines (the zero crossings of smooth noise, 1 on a line, 0 off it),
    for bare branches against the sky and cracks in the asphalt.
    """
    width, height = size[0] * 3 // 2, size[1] * 3 // 2
    rng = np.random.default_rng(54321)

    def octave(cell: float) -> np.ndarray:
        small = rng.standard_normal((max(2, int(height / cell)), max(2, int(width / cell))))
        return cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)

    unit = max(size[0] / 1024, 0.25)
    leaf = octave(3 * unit) + 0.7 * octave(7 * unit) + 0.5 * octave(16 * unit)
    leaf /= leaf.std() + 1e-6
    smooth = octave(28 * unit) + 0.5 * octave(11 * unit)
    smooth /= smooth.std() + 1e-6
    width_px = 0.05 / max(unit, 0.5)
    twig = np.exp(-((smooth / width_px) ** 2)).astype(np.float32)
    return leaf.astype(np.float32), twig


@functools.lru_cache(maxsize=4)
def _vignette(size: tuple[int, int]) -> np.ndarray:
    """Relative radial fall-off (0 centre .. 1 corners) of a frame, (H, W)."""
    width, height = size
    ys = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    xs = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    return np.clip((xs**2 + ys**2) / 2, 0, 1) ** 1.5


def _window(tile: np.ndarray, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random (height, width) view into a noise tile (no copy)."""
    top = int(rng.integers(tile.shape[0] - height + 1))
    left = int(rng.integers(tile.shape[1] - width + 1))
    return tile[top : top + height, left : left + width]


def _draw(
    objects: list[Obj], size: tuple[int, int]
) -> tuple[Image.Image, np.ndarray, Image.Image | None, np.ndarray | None]:
    """Paint the colour image and an object-index image (0 = nothing) from the polygons.

    With tree crowns in the frame, also what the crowns hide: the colour and object index of
    the scene painted without them, up to the last crown (what comes after is in front), so
    that a bare crown shows the facade behind its twigs, not always the sky. (None, None)
    without crowns.
    """
    rgb = Image.new("RGB", size)
    index = Image.new("I", size, 0)
    paint, mark = ImageDraw.Draw(rgb), ImageDraw.Draw(index)
    # each crown's bounding box: only an object (with its windows) that meets one can show
    # under a crown; the rest need no second painting, and the result is the same
    crown_boxes = [(k, _bbox([ob.polygon])) for k, ob in enumerate(objects, start=1) if ob.crown]
    last_crown = crown_boxes[-1][0] if crown_boxes else 0
    behind = Image.new("RGB", size) if last_crown else None
    behind_index = Image.new("I", size, 0) if last_crown else None
    back = ImageDraw.Draw(behind) if behind is not None else None
    back_mark = ImageDraw.Draw(behind_index) if behind_index is not None else None
    for k, ob in enumerate(objects, start=1):
        if name2label[ob.label].id < 0:  # json2labelImg skips negative ids; so do we
            continue
        paint.polygon(ob.polygon, fill=ob.color)
        mark.polygon(ob.polygon, fill=k)
        for pts, color in ob.details:
            paint.polygon(pts, fill=color)
        if (
            back is not None
            and back_mark is not None
            and k < last_crown
            and not ob.crown
            and _meets_any(_bbox([ob.polygon, *(pts for pts, _ in ob.details)]), crown_boxes)
        ):
            back.polygon(ob.polygon, fill=ob.color)
            back_mark.polygon(ob.polygon, fill=k)
            for pts, color in ob.details:
                back.polygon(pts, fill=color)
    return (
        rgb,
        np.asarray(index),
        behind,
        None if behind_index is None else np.asarray(behind_index),
    )


def _bbox(polygons: list[list[tuple[int, int]]]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of pixel polygons together, inclusive."""
    us = [p[0] for polygon in polygons for p in polygon]
    vs = [p[1] for polygon in polygons for p in polygon]
    return min(us), min(vs), max(us), max(vs)


def _meets_any(
    box: tuple[int, int, int, int], crowns: list[tuple[int, tuple[int, int, int, int]]]
) -> bool:
    """Whether `box` meets the box of any crown, with a margin of 2 pixels (a filled polygon
    may reach a pixel past its vertices)."""
    left, top, right, bottom = box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2
    return any(left <= c[2] and c[0] <= right and top <= c[3] and c[1] <= bottom for _, c in crowns)


def _shade(
    image: np.ndarray,
    label_ids: np.ndarray,
    depth: np.ndarray,
    shadow: np.ndarray,
    cond: Conditions,
    horizon: float,
    rng: np.random.Generator,
    crown: np.ndarray | None = None,
    style: CityStyle | None = None,
    behind: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Texture, shadows, sky, time of day, fog, rain, noise: all from the same geometry.

    `behind`: per crown pixel (in `np.nonzero(crown)` order), the colour float32 (N, 3) and
    is-sky bool (N,) of the scene without tree crowns, which the crowns' gaps show.

    Works on the three colour planes apart: NumPy broadcasting a per-pixel factor over an
    innermost axis of 3 runs 5-10x slower than the same operation on contiguous planes
    (`bench synth`), and every step here is such a per-pixel factor.
    """
    height, width = label_ids.shape
    planes: list[np.ndarray] = list(cv2.split(image))
    fine, coarse = _noise((width, height))
    grain = _window(fine, rng, height, width)
    blotch = _window(coarse, rng, height, width)
    # np.take: a gather through a small table, ~4x faster than fancy indexing on a frame
    tex = 1 + np.take(FINE_AMP, label_ids) * grain[..., 0] + np.take(COARSE_AMP, label_ids) * blotch
    leaf_tile, twig_tile = _patterns((width, height))
    leaf = _window(leaf_tile, rng, height, width)
    twig = _window(twig_tile, rng, height, width)
    # tufts of grass and tar-sealed cracks in the asphalt, through per-label amplitudes
    tex += np.take(LEAF_AMP, label_ids) * leaf
    tex -= np.take(CRACK_AMP * np.float32(rng.uniform(0.2, 1.0)), label_ids) * twig
    # shadows darken the ground only (a car is not darkened by its own shadow polygon)
    tex[shadow & np.take(IS_GROUND, label_ids)] *= 1 - cond.shadow
    for plane in planes:
        plane *= tex
    # sky: lighter toward the horizon, warm at dusk, with clouds from the blotch noise
    sky_rows = max(1, min(height, int(horizon + abs(horizon - _horizon_at(label_ids))) + 2))
    sky = (label_ids[:sky_rows] == SKY_ID).astype(np.float32)
    rows = np.linspace(0, 0.6, sky_rows, dtype=np.float32)[:, None]
    warm = np.array([255, 150, 90], np.float32) * cond.time_of_day
    toward = np.array([235, 235, 240], np.float32) * (1 - cond.time_of_day) + warm
    tops = [plane[:sky_rows] for plane in planes]
    lift = sky * rows
    for top, colour in zip(tops, toward, strict=True):
        top += (colour - top) * lift
    cloud = np.clip(_window(coarse, rng, sky_rows, width) - 0.3, 0, 1) * rng.uniform(0.3, 0.9)
    cover = sky * cloud
    for top in tops:
        top += (245 - top) * cover
    if cond.exposure > 0:  # a dash camera exposes for the street: the sky burns out
        white = np.float32(250 * (1 - 0.3 * cond.time_of_day))
        burn = sky * cond.exposure
        for top in tops:
            top += (white - top) * burn
    if crown is not None and crown.any():
        _foliage(planes, crown, leaf, twig, cond, sky_rows, behind)
    # time of day (darker and warmer toward dusk), then aerial perspective / fog by depth
    tint = np.array([1.0, 1 - 0.18 * cond.time_of_day, 1 - 0.4 * cond.time_of_day], np.float32)
    visibility = 1500.0 if cond.fog == 0 else 25 + 250 * (1 - cond.fog)
    haze = 1 - np.exp(-depth / np.float32(visibility))
    fog_color = np.float32(200 * (1 - 0.4 * cond.time_of_day))
    for plane, factor in zip(planes, tint * (1 - 0.45 * cond.time_of_day), strict=True):
        plane *= factor
        plane += (fog_color - plane) * haze
    if cond.dim > 0:
        # A camera exposing for a bright evening sky leaves the street several times darker
        # than the sky, and cool: CamVid's dusk drive (0001TP) has its road and sidewalk at
        # 27 grey levels under a sky at 163 (`scripts/drive_light.py data/camvid_imp`).
        is_sky = label_ids == SKY_ID
        for plane, cool in zip(
            planes, (1 - 0.12 * cond.dim, 1.0, 1 + 0.08 * cond.dim), strict=True
        ):
            street = np.float32(cool * (1 - 0.75 * cond.dim))
            plane *= np.where(is_sky, np.float32(1 + 0.25 * cond.dim), street)
    if cond.rain:
        layer = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(layer)
        slant = rng.uniform(-0.25, 0.25)
        count = int(width * height / 900)
        xs, ys = rng.uniform(0, width, count), rng.uniform(0, height, count)
        lengths = rng.uniform(0.02, 0.06, count) * height
        fills = rng.integers(60, 140, count)
        for x, y, length, fill in zip(xs, ys, lengths, fills, strict=True):
            draw.line([(x, y), (x + slant * length, y + length)], fill=int(fill), width=1)
        streak = np.asarray(layer, np.float32) / 255
        for plane in planes:
            plane *= 0.85
            plane += (215 - plane) * streak
    if cond.noise:
        for channel, plane in enumerate(planes):
            plane += grain[..., channel] * cond.noise
    image = cv2.merge(planes)
    if style is not None:
        _grade(image, style, cond, (width, height))
    return image


def _horizon_at(label_ids: np.ndarray) -> float:
    """Lowest sky row in the frame (the horizon may be tilted): bounds the sky shading."""
    rows = np.flatnonzero((label_ids == SKY_ID).any(axis=1))
    return float(rows[-1]) if rows.size else 0.0


def _foliage(
    planes: list[np.ndarray],
    crown: np.ndarray,
    leaf: np.ndarray,
    twig: np.ndarray,
    cond: Conditions,
    sky_rows: int,
    behind: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Tree crowns as clumps of leaves with sky between them, or bare twigs in winter.

    Flat green blobs do not look like trees: real crowns are a dense texture of light and
    dark leaves, and in a Cambridge winter (CamVid) mostly a lattice of twigs over the sky.
    `planes` are the frame's colour planes (changed in place), the sky already painted.
    Through the gaps shows what is behind the crown (`behind`: colour and is-sky, see
    `_draw`): the shaded sky where that is sky, else the facade or hedge there, in the
    canopy's shade. Without `behind`, the sky everywhere.
    """
    ys, xs = np.nonzero(crown)
    base = [plane[ys, xs] for plane in planes]
    lv = leaf[ys, xs]
    tw = twig[ys, xs]
    brightness = (base[0] + base[1] + base[2]) / 3 / 110 + 0.4
    # the sky behind: the frame's sky colour in this column (near the top), else a light grey
    sky_row = max(0, sky_rows // 3)
    threshold = -1.2 + 2.8 * cond.leafiness  # share of crown that is gaps: ~90 % bare .. ~1 % leafy
    gap = (lv > threshold).astype(np.float32)
    branches = np.clip(0.2 + 0.8 * tw - 0.25 * (lv - threshold), 0, 1)
    shade = 1 + 0.45 * np.clip(lv, -1.8, 1.8)
    for c, (plane, colour, bark) in enumerate(zip(planes, base, (85, 78, 70), strict=True)):
        column_sky = plane[sky_row, xs] if sky_rows > 0 else np.float32(200)
        if behind is not None:
            column_sky = np.where(behind[1], column_sky, behind[0][:, c] * np.float32(0.8))
        open_sky = column_sky * (1 - branches) + np.float32(bark) * brightness * branches
        plane[ys, xs] = colour * shade * (1 - gap) + open_sky * gap


def _grade(image: np.ndarray, style: CityStyle, cond: Conditions, size: tuple[int, int]) -> None:
    """The camera's colour grading and lens: saturation, contrast, vignetting (in place)."""
    # contrast c about mid-grey and saturation s about each pixel's grey, in one pass:
    # c * (grey + s * (x - grey)) + 118 * (1 - c)
    s, c = style.saturation, style.contrast
    grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    cv2.addWeighted(image, c * s, grey, c * (1 - s), 118.0 * (1 - c), dst=image)
    if cond.vignette > 0:
        gain = 1 - np.float32(cond.vignette) * _vignette(size)
        cv2.multiply(image, cv2.merge([gain, gain, gain]), dst=image)


def render_frame(
    city_style: CityStyle, frame_seed: int, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Render one frame: RGB uint8 (H, W, 3), label ids uint8 (H, W), the JSON objects list.

    Pure: the same (style, seed, size) always gives the same arrays.
    """
    image, label_ids, polygons, _ = _render(city_style, frame_seed, size)
    return image, label_ids, polygons


def _render(
    city_style: CityStyle, frame_seed: int, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]], np.ndarray]:
    width, height = size
    if width < 16 or height < 8:
        raise ValueError(f"size {size} is too small to render a street (at least 16x8)")
    rng = np.random.default_rng(frame_seed)
    builder = SceneBuilder(city_style, rng, size)
    objects = builder.build()
    cond = _conditions(city_style, rng)
    rgb, index, behind_rgb, behind_index = _draw(objects, size)
    label_lut = np.zeros(len(objects) + 1, np.uint8)
    label_lut[1:] = [name2label[ob.label].id & 0xFF for ob in objects]
    label_ids = np.take(label_lut, index)
    # depth per pixel: one distance per upright object, the ground plane per row
    depth_lut = np.zeros(len(objects) + 1, np.float32)
    depth_lut[1:] = [600.0 if math.isinf(ob.depth) else ob.depth for ob in objects]
    cam = builder.cam
    below = cam.below_horizon()  # perpendicular to the (possibly tilted) horizon
    ground_depth = np.where(below > 0.5, cam.f * cam.cam_h / np.maximum(below, 0.5), 600.0)
    depth = np.where(
        np.take(IS_GROUND, label_ids), ground_depth.astype(np.float32), np.take(depth_lut, index)
    )
    crown_lut = np.zeros(len(objects) + 1, bool)
    crown_lut[1:] = [ob.crown for ob in objects]
    crown = np.take(crown_lut, index)
    shadow_img = Image.new("1", size, 0)
    draw = ImageDraw.Draw(shadow_img)
    for pts in builder.shadows:
        draw.polygon(pts, fill=1)
    image = np.asarray(rgb).astype(np.float32)
    image = _shade(
        image,
        label_ids,
        depth,
        np.asarray(shadow_img),
        cond,
        cam.horizon,
        rng,
        crown=crown,
        style=city_style,
        behind=None
        if behind_rgb is None or behind_index is None
        else (  # only where a crown is seen: row-major, the order of np.nonzero(crown)
            np.asarray(behind_rgb)[crown].astype(np.float32),
            np.take(label_lut, behind_index[crown]) == SKY_ID,
        ),
    )
    out: np.ndarray = np.clip(image, 0, 255).astype(np.uint8)
    if cond.blur > 0:  # defocus / motion softness, scaled with the frame size
        out = cv2.GaussianBlur(out, (0, 0), cond.blur * width / 1024 + 0.3)
    if cond.motion > 0:  # the car moves: a short horizontal smear
        length = max(2, round(cond.motion * width / 1024))
        out = cv2.blur(out, (length, 1))
    if cond.jpeg:  # the camera's compression: 8x8 blocks and ringing
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, cond.jpeg])
        decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else None
        if decoded is not None:
            out = decoded
    polygons = [{"label": ob.label, "polygon": [list(p) for p in ob.polygon]} for ob in objects]
    return out, label_ids, polygons, _instances(objects, index)


def _instances(objects: list[Obj], index: np.ndarray) -> np.ndarray:
    """Instance ids as Cityscapes stores them: labelId*1000+k for instance classes, else labelId."""
    lut = np.zeros(len(objects) + 1, np.int32)
    seen: dict[tuple[str, int], int] = {}
    counts: dict[str, int] = {}
    for k, ob in enumerate(objects, start=1):
        lab = name2label[ob.label]
        if lab.hasInstances:
            key = (ob.label, ob.group or -k)
            if key not in seen:
                seen[key] = counts.get(ob.label, 0)
                counts[ob.label] = seen[key] + 1
            lut[k] = lab.id * 1000 + seen[key]
        else:
            lut[k] = lab.id & 0xFF
    return lut[index]


def dummy_objects(size: tuple[int, int], hood: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Test-split polygons like the official ones: only `out of roi` borders and the ego hood.

    `hood` is the frame's `ego vehicle` polygon, or None when the bonnet is out of view.
    """
    width, height = size
    m = max(1, round(0.01 * width))
    strips = [
        [[0, 0], [width, 0], [width, m], [0, m]],
        [[0, 0], [m, 0], [m, height], [0, height]],
        [[width - m, 0], [width, 0], [width, height], [width - m, height]],
    ]
    return [{"label": "out of roi", "polygon": s} for s in strips] + ([hood] if hood else [])


def draw_label_ids(objects: list[dict[str, Any]], size: tuple[int, int]) -> np.ndarray:
    """Label ids from a polygon list, drawn exactly as cityscapesscripts' json2labelImg does."""
    img = Image.new("L", size, name2label["unlabeled"].id)
    draw = ImageDraw.Draw(img)
    for ob in objects:
        lab = name2label[ob["label"]]
        if lab.id >= 0:
            draw.polygon([tuple(p) for p in ob["polygon"]], fill=lab.id)
    return np.asarray(img)


def frame_seed(seed: int, city_index: int, frame: int) -> int:
    """The seed of one frame, from (generator seed, global city index, frame index)."""
    return int(np.random.SeedSequence([seed, city_index, frame, 271828]).generate_state(1)[0])


def split_counts(cities: int) -> dict[str, int]:
    """Cities per split: train gets the most; val and test at least one each, train at least 3."""
    n_val = max(1, round(0.15 * cities))
    n_test = max(1, round(0.15 * cities))
    n_train = cities - n_val - n_test
    if n_train < 3:
        raise ValueError(
            f"cities={cities} is too few: need at least 5 (train >= 3, val >= 1, test >= 1) "
            "so that a validation set can be carved out of train by city"
        )
    return {"train": n_train, "val": n_val, "test": n_test}


@dataclass(frozen=True)
class _Task:
    out: Path
    split: str
    style: CityStyle
    frame: int
    size: tuple[int, int]
    seed: int


def _write_frame(task: _Task) -> float:
    """Render and write one frame; return the CPU seconds it took (for the benchmark)."""
    started = time.process_time()
    city = task.style.name
    stem = f"{city}_{task.frame:06d}_{FRAME_NUMBER:06d}"
    fseed = frame_seed(task.seed, task.style.index, task.frame)
    image, label_ids, objects, instances = _render(task.style, fseed, task.size)
    if task.split == "test":  # like the real test split: no content labels are published
        hood = next((ob for ob in objects if ob["label"] == "ego vehicle"), None)
        objects = dummy_objects(task.size, hood)
        label_ids = draw_label_ids(objects, task.size)
        instances = label_ids.astype(np.int32)
    img_dir = task.out / "leftImg8bit" / task.split / city
    gt_dir = task.out / "gtFine" / task.split / city
    img_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    _write_png(img_dir / f"{stem}_leftImg8bit.png", image)
    _write_png(gt_dir / f"{stem}_gtFine_labelIds.png", label_ids)
    _write_png(
        gt_dir / f"{stem}_gtFine_color.png", np.take(_COLOR_LUT_BGRA, label_ids, 0), bgr=True
    )
    _write_png(gt_dir / f"{stem}_gtFine_instanceIds.png", instances.astype(np.uint16))
    height, width = label_ids.shape
    doc = {"imgHeight": height, "imgWidth": width, "objects": objects}
    (gt_dir / f"{stem}_gtFine_polygons.json").write_text(json.dumps(doc, separators=(",", ":")))
    return time.process_time() - started


def _write_png(path: Path, array: np.ndarray, *, bgr: bool = False) -> None:
    """Write RGB(A) / grey / uint16 arrays as PNG (OpenCV: several times faster than PIL here).

    `bgr`: the colour channels are already in OpenCV's order (no conversion pass).
    """
    if array.ndim == 3 and not bgr:  # OpenCV stores BGR(A)
        array = cv2.cvtColor(
            array, cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        )
    if not cv2.imwrite(str(path), array, PNG):
        raise OSError(f"could not write {path}")


def city_plan(cities: int, seed: int) -> dict[str, list[CityStyle]]:
    """Which city goes to which split, with its style; names are unique across splits."""
    counts = split_counts(cities)
    names = city_names(cities, seed)
    plan: dict[str, list[CityStyle]] = {}
    index = 0
    for split in SPLITS:
        plan[split] = []
        for _ in range(counts[split]):
            plan[split].append(make_style(names[index], index, seed))
            index += 1
    return plan


def generate(
    out: Path,
    *,
    cities: int = 8,
    frames_per_city: int = 20,
    size: tuple[int, int] = (1024, 512),
    seed: int = 0,
    workers: int = 1,
    progress: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write `cities` synthetic cities in the official Cityscapes layout under `out`; return it.

    Frames are rendered into `out/.synth-partial/` and moved into place at the end, so an
    interrupted run never leaves a half-written `leftImg8bit/` that looks finished. With
    `workers > 1` the pool uses the forkserver start method: a script calling this needs the
    usual `if __name__ == "__main__":` guard.
    """
    out = Path(out)
    if frames_per_city < 1:
        raise ValueError(f"frames_per_city={frames_per_city} must be at least 1")
    if workers < 1:
        raise ValueError(f"workers={workers} must be at least 1")
    size = (int(size[0]), int(size[1]))
    if size[0] < 16 or size[1] < 8:
        raise ValueError(f"size={size} is too small to render a street (at least 16x8)")
    plan = city_plan(cities, seed)
    for sub in ("leftImg8bit", "gtFine"):
        if (out / sub).exists():
            if not overwrite:
                raise FileExistsError(
                    f"{out / sub} already exists; pass overwrite=True (--overwrite) to replace it"
                )
            shutil.rmtree(out / sub)
    staging = out / ".synth-partial"
    if staging.exists():  # left over from an interrupted run
        shutil.rmtree(staging)
    tasks = [
        _Task(staging, split, style, frame, size, seed)
        for split in SPLITS
        for style in plan[split]
        for frame in range(frames_per_city)
    ]
    log.info("rendering %d frames of %d cities at %dx%d into %s", len(tasks), cities, *size, out)
    _run(tasks, workers, progress)
    for sub in ("leftImg8bit", "gtFine"):
        (staging / sub).rename(out / sub)
    staging.rmdir()
    meta = {
        "generator": "cityseg.data.synth",
        "seed": seed,
        "size": list(size),
        "frames_per_city": frames_per_city,
        "cities": {split: [s.name for s in plan[split]] for split in SPLITS},
    }
    (out / "synth.json").write_text(json.dumps(meta, indent=2))
    return out


def _init_worker() -> None:
    # one process per core already: OpenCV's own thread pool would only oversubscribe
    cv2.setNumThreads(1)


def _run(tasks: list[_Task], workers: int, progress: bool) -> float:
    """Write all frames with `workers` processes; return the CPU seconds spent on frames."""
    from rich.progress import Progress

    with Progress(disable=not progress, transient=False) as bar:
        job = bar.add_task("rendering frames", total=len(tasks))
        if workers == 1:
            cpu = 0.0
            for task in tasks:
                cpu += _write_frame(task)
                bar.advance(job)
            return cpu
        # forkserver, not fork: forking a parent whose OpenCV/TF thread pools are running
        # can deadlock the children (seen at 1024x512 after a single-process run)
        with get_context("forkserver").Pool(workers, initializer=_init_worker) as pool:
            cpu = 0.0
            for seconds in pool.imap_unordered(_write_frame, tasks, chunksize=2):
                cpu += seconds
                bar.advance(job)
            pool.close()
            pool.join()
        return cpu
