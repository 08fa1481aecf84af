"""What makes each synthetic city look like itself: names, palette, heights, densities, weather."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

Color = tuple[int, int, int]  # sRGB, 0..255


@dataclass(frozen=True)
class CityStyle:
    """What makes one city look like itself: palette, building heights, densities, weather."""

    name: str
    index: int
    facade_colors: tuple[Color, ...]  # building palette
    window_color: Color
    building_height: tuple[float, float]  # metres, min/max
    building_prob: float  # share of the street front that is buildings
    vegetation: float  # 0..1 trees, hedges and parks
    traffic: float  # 0..1 vehicles per lane
    pedestrians: float  # 0..1 people on the sidewalks
    road_color: Color
    sidewalk_color: Color
    terrain_color: Color
    foliage_color: Color
    wall_color: Color
    lanes: tuple[int, int]  # min/max number of lanes
    sidewalk_width: tuple[float, float]
    sky_color: Color
    fog: float  # probability of a foggy frame
    rain: float  # probability of a rainy frame
    dusk: float  # probability of a late-afternoon / dusk frame
    # -- added for sim-to-real transfer (issue #14) --
    leafiness: tuple[float, float] = (0.6, 1.0)  # tree crowns: 0 bare winter twigs .. 1 full leaf
    sky_exposure: float = 0.3  # 0 deep blue .. 1 blown-out white (a dash camera's overcast sky)
    saturation: float = 1.0  # colour saturation of the whole frame (CamVid's is low)
    contrast: float = 1.0  # tone-curve contrast of the whole frame
    focal: tuple[float, float] = (0.95, 1.2)  # focal length range in frame widths
    horizon: tuple[float, float] = (0.36, 0.5)  # horizon row range in frame heights
    camera_height: tuple[float, float] = (1.15, 1.7)  # metres above the road
    roll: float = 0.0  # largest camera roll in degrees
    hood: float = 1.0  # probability that the ego vehicle's bonnet is in view
    parked: float = 0.3  # probability of kerbside parking along each curb
    side_streets: float = 0.2  # probability that a frontage segment is a side-street opening
    jpeg: float = 0.0  # probability of JPEG artefacts on a frame


def _hsv(h: float, s: float, v: float) -> Color:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return int(r * 255), int(g * 255), int(b * 255)


_SYLLABLES = [
    "aa",
    "ber",
    "chen",
    "dor",
    "ek",
    "fal",
    "gen",
    "hal",
    "in",
    "jor",
    "kel",
    "lin",
    "mar",
    "nor",
    "ost",
    "pel",
    "quin",
    "rho",
    "sal",
    "tor",
    "ul",
    "ven",
    "wal",
    "xan",
    "yor",
    "zel",
    "bra",
    "cre",
    "dri",
    "fro",
    "gla",
]


def city_names(count: int, seed: int) -> list[str]:
    """`count` unique lowercase invented city names (no underscore: it separates name fields)."""
    rng = np.random.default_rng([seed, 7919])
    names: list[str] = []
    while len(names) < count:
        parts = rng.choice(_SYLLABLES, size=int(rng.integers(2, 4)))
        name = "".join(parts) + str(rng.choice(["ia", "burg", "stadt", "ton", "heim", "ville"]))
        if name not in names:
            names.append(name)
    return names


def make_style(name: str, index: int, seed: int) -> CityStyle:
    """A city's style, drawn deterministically from (seed, index)."""
    rng = np.random.default_rng([seed, index, 104729])
    u = rng.uniform
    hue = u(0, 1)
    # Each city draws facades around its own hue family; some cities are mostly grey.
    sat = u(0.05, 0.45)
    facades = tuple(
        _hsv((hue + u(-0.08, 0.08)) % 1, min(1, sat * u(0.5, 1.3)), u(0.35, 0.85)) for _ in range(6)
    ) + tuple(_hsv(0, 0, u(0.3, 0.8)) for _ in range(2))
    low = u(8, 20)  # taller than a first draft: the sky was 15-17 % of pixels (Cityscapes 3.6)
    grey = u(0.22, 0.42)
    side_hue = u(0, 1)
    return CityStyle(
        name=name,
        index=index,
        facade_colors=facades,
        window_color=_hsv(u(0.5, 0.7), u(0.1, 0.5), u(0.15, 0.4)),
        building_height=(low, low + u(8, 30)),
        building_prob=u(0.45, 0.95),
        vegetation=u(0.1, 0.9),
        traffic=u(0.25, 1.0),
        pedestrians=u(0.2, 1.0),
        road_color=_hsv(u(0, 1), u(0, 0.08), grey),
        sidewalk_color=_hsv(side_hue, u(0, 0.35), u(0.4, 0.7)),
        terrain_color=_hsv(u(0.12, 0.3), u(0.25, 0.6), u(0.35, 0.6)),
        foliage_color=_hsv(u(0.18, 0.36), u(0.35, 0.8), u(0.25, 0.5)),
        wall_color=_hsv(u(0, 1), u(0, 0.3), u(0.4, 0.75)),
        lanes=(2, int(rng.integers(2, 5))),
        sidewalk_width=(u(2.0, 3.0), u(3.0, 5.5)),
        sky_color=_hsv(u(0.55, 0.62), u(0.25, 0.6), u(0.75, 0.95)),
        fog=u(0.0, 0.35),
        rain=u(0.0, 0.35),
        dusk=u(0.1, 0.5),
        **_transfer_fields(np.random.default_rng([seed, index, 15485863])),
    )


def _transfer_fields(rng: np.random.Generator) -> dict[str, Any]:
    """The style fields that the real-photo gap asked for (issue #14), drawn after the others.

    Drawn from a generator of their own, so the older fields (and the tests pinned on them)
    keep their values. Cities differ a lot: season (bare to leafy trees), sky exposure,
    colour grading, camera mount and lens, parking and side streets.
    """
    u = rng.uniform
    leaf_low = u(0.0, 0.8)
    focal = u(0.75, 1.1)
    horizon = u(0.36, 0.48)
    mount = u(1.15, 1.55)
    return {
        "leafiness": (leaf_low, min(1.0, leaf_low + u(0.1, 0.5))),
        "sky_exposure": u(0.2, 1.0),
        "saturation": u(0.45, 1.05),
        "contrast": u(0.85, 1.25),
        "focal": (focal, focal * u(1.05, 1.2)),
        "horizon": (horizon, horizon + u(0.04, 0.1)),
        "camera_height": (mount, mount + u(0.1, 0.3)),
        "roll": u(0.5, 3.0),
        "hood": u(0.0, 1.0),
        "parked": u(0.2, 0.9),
        "side_streets": u(0.05, 0.35),
        "jpeg": u(0.2, 0.9),
    }
