"""Geometry of one synthetic street scene: a list of labelled polygons, painted far to near.

A pinhole camera looks down a straight street. Every thing in the scene (road, sidewalks,
facades, walls, fences, trees, poles, signs, vehicles, people, the ego hood) is built in
world metres and projected to integer pixel polygons. The same polygon list draws the
label image and the colour image, so labels are pixel-exact. Axes: X right, Y up, Z forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

Color = tuple[int, int, int]
Point = tuple[int, int]

# Labels whose depth follows the ground plane (per image row) rather than one distance.
GROUND_LABELS = frozenset({"road", "sidewalk", "parking", "terrain", "ground"})


@dataclass
class Obj:
    """One labelled polygon plus what the colour renderer needs to paint it."""

    label: str  # official Cityscapes label name
    polygon: list[Point]  # integer pixel vertices
    color: Color  # base colour before texture, light and weather
    depth: float  # metres from the camera (ignored for GROUND_LABELS; inf for sky)
    group: int = 0  # objects sharing a group are one instance (car side + car rear)
    details: list[tuple[list[Point], Color]] = field(default_factory=list)  # paint only


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
    low = u(5, 16)
    grey = u(0.22, 0.42)
    side_hue = u(0, 1)
    return CityStyle(
        name=name,
        index=index,
        facade_colors=facades,
        window_color=_hsv(u(0.5, 0.7), u(0.1, 0.5), u(0.15, 0.4)),
        building_height=(low, low + u(6, 30)),
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
    )


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at height `cam_h` looking along +Z with horizon row `horizon`."""

    width: int
    height: int
    f: float
    cx: float
    horizon: float
    cam_h: float

    def uv(self, x: float, y: float, z: float) -> Point:
        """Project world (x, y, z) to an integer pixel, clamped to a sane range."""
        z = max(z, 0.05)
        u = self.cx + self.f * x / z
        v = self.horizon + self.f * (self.cam_h - y) / z
        lim_u, lim_v = 6 * self.width, 6 * self.height
        return (
            round(min(max(u, -lim_u), lim_u)),
            round(min(max(v, -lim_v), lim_v)),
        )

    def uv_many(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised `uv`: integer pixel arrays (u, v)."""
        z = np.maximum(z, 0.05)
        u = np.clip(np.rint(self.cx + self.f * x / z), -6 * self.width, 6 * self.width)
        v = np.clip(
            np.rint(self.horizon + self.f * (self.cam_h - y) / z), -6 * self.height, 6 * self.height
        )
        return u.astype(np.int64), v.astype(np.int64)

    def scale(self, z: float) -> float:
        """Pixels per metre at distance z."""
        return self.f / max(z, 0.05)

    @property
    def z_near(self) -> float:
        """Distance at which the ground is well below the bottom row (near end of ground quads)."""
        return self.f * self.cam_h / (2 * self.height - self.horizon)


def _jitter(rng: np.random.Generator, color: Color, amount: float) -> Color:
    scale = 1 + rng.uniform(-amount, amount)
    shift = rng.uniform(-amount, amount, 3) * 60
    return tuple(int(min(255, max(0, c * scale + s))) for c, s in zip(color, shift, strict=True))  # type: ignore[return-value]


def _scaled(color: np.ndarray, k: float) -> Color:
    r, g, b = (int(c) for c in np.minimum(color * k, 255))
    return r, g, b


def _mix(a: Color, b: Color, t: float) -> Color:
    return tuple(int(x * (1 - t) + y * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


class SceneBuilder:
    """Builds the polygon list of one frame; call `build()` once."""

    def __init__(self, style: CityStyle, rng: np.random.Generator, size: tuple[int, int]):
        self.style = style
        self.rng = rng
        width, height = size
        self.cam = Camera(
            width=width,
            height=height,
            f=width * rng.uniform(0.95, 1.2),
            cx=width * rng.uniform(0.44, 0.56),
            horizon=height * rng.uniform(0.36, 0.5),
            cam_h=rng.uniform(1.15, 1.7),
        )
        self.objects: list[Obj] = []
        self.street: list[tuple[float, int, list[Obj]]] = []  # (depth, order, parts) sorted later
        self.groups = 0
        self.shadows: list[list[Point]] = []  # ground shadow polygons (paint only)
        self.sun_side = 1 if rng.uniform() < 0.5 else -1  # shadows fall toward this side
        self.min_px = 1.0  # objects smaller than this (pixels) are skipped

    # -- helpers ---------------------------------------------------------------------------
    def _group(self) -> int:
        self.groups += 1
        return self.groups

    def ground_quad(self, x0: float, x1: float, z0: float, z1: float) -> list[Point]:
        """A ground rectangle x0..x1, z0..z1 (z0 clamped to the near plane)."""
        z0 = max(z0, self.cam.z_near)
        uv = self.cam.uv
        return [uv(x0, 0, z0), uv(x1, 0, z0), uv(x1, 0, z1), uv(x0, 0, z1)]

    def side_quad(self, x: float, z0: float, z1: float, y0: float, y1: float) -> list[Point]:
        """A vertical rectangle in the plane X = x (a facade, a wall, a car side)."""
        z0 = max(z0, self.cam.z_near)
        uv = self.cam.uv
        return [uv(x, y0, z0), uv(x, y0, z1), uv(x, y1, z1), uv(x, y1, z0)]

    def side_quads(
        self, x: float, z0: np.ndarray, z1: np.ndarray, y0: np.ndarray, y1: np.ndarray
    ) -> list[list[Point]]:
        """Many vertical rectangles in the plane X = x at once (windows), vectorised."""
        zs = np.maximum(np.stack([z0, z1, z1, z0], 1), self.cam.z_near)
        ys = np.stack([y0, y0, y1, y1], 1)
        u, v = self.cam.uv_many(np.full_like(zs, x), ys, zs)
        return [list(zip(a, b, strict=True)) for a, b in zip(u.tolist(), v.tolist(), strict=True)]

    def front(self, z: float, pts: list[tuple[float, float]]) -> list[Point]:
        """Polygon in the plane Z = z (facing the camera), from (x, y) metres."""
        return [self.cam.uv(x, y, z) for x, y in pts]

    def add_street(self, z: float, parts: list[Obj]) -> None:
        """Queue a street object (several polygons) to be painted in depth order."""
        self.street.append((z, len(self.street), parts))

    # -- the scene -------------------------------------------------------------------------
    def build(self) -> list[Obj]:
        """Return the frame's objects in painting order (far to near)."""
        rng, st, cam = self.rng, self.style, self.cam
        W, H = cam.width, cam.height
        lanes = int(rng.integers(st.lanes[0], st.lanes[1] + 1))
        lane_w = rng.uniform(3.0, 3.7)
        ego_lane = int(rng.integers(0, lanes))
        self.ego_lane = ego_lane
        self.road_l = -(ego_lane + 0.5) * lane_w + rng.uniform(-0.4, 0.4)
        self.road_r = self.road_l + lanes * lane_w
        self.lanes_l, self.lanes_r = self.road_l, self.road_r  # the driven lanes
        self.crossing: float | None = None
        self.parking: tuple[int, float, float] | None = None  # (side, z0, z1) of a parking strip
        if rng.uniform() < 0.25 + 0.4 * st.traffic:  # a parking lane beside one curb
            side = 1 if rng.uniform() < 0.65 else -1
            z0 = rng.uniform(6, 25)
            self.parking = (side, z0, z0 + rng.uniform(15, 60))
            if side > 0:
                self.road_r += 2.3
            else:
                self.road_l -= 2.3
        self.lanes, self.lane_w = lanes, lane_w
        self.side_w = {s: rng.uniform(*st.sidewalk_width) for s in (-1, 1)}
        self.z_far = rng.uniform(160, 260)

        sky_h = cam.horizon + 2
        self.objects.append(
            Obj("sky", [(0, 0), (W, 0), (W, int(sky_h)), (0, int(sky_h))], st.sky_color, math.inf)
        )
        self.objects.append(
            Obj(
                "terrain",
                [(0, int(cam.horizon)), (W, int(cam.horizon)), (W, 2 * H), (0, 2 * H)],
                _jitter(rng, st.terrain_color, 0.1),
                0.0,
            )
        )
        self._skyline()
        self._road()
        for side in (-1, 1):
            self._sidewalk(side)
        for side in (-1, 1):
            self._frontage(side)
        self._traffic()
        self._people()
        if rng.uniform() < 0.12:
            self._bridge(rng.uniform(35, 90))
        for _, _, parts in sorted(self.street, key=lambda t: (-t[0], t[1])):
            self.objects.extend(parts)
        self._hood()
        return self.objects

    def edge(self, side: int) -> float:
        """X of the curb on `side` (-1 left, +1 right)."""
        return self.road_l if side < 0 else self.road_r

    def outer(self, side: int) -> float:
        """X of the outer edge of the sidewalk (the building line) on `side`."""
        return self.edge(side) + side * self.side_w[side]

    def _skyline(self) -> None:
        rng, st = self.rng, self.style
        z = self.z_far + rng.uniform(10, 60)
        x = -z * 1.2
        while x < z * 1.2:
            w = rng.uniform(8, 30)
            h = rng.uniform(*st.building_height) * rng.uniform(0.6, 1.6)
            color = _mix(
                _jitter(rng, st.facade_colors[int(rng.integers(len(st.facade_colors)))], 0.1),
                st.sky_color,
                0.35,
            )
            if rng.uniform() < st.vegetation * 0.6:
                self.objects.append(
                    Obj(
                        "vegetation",
                        self._blob(x + w / 2, h * 0.35, z, w / 2, h * 0.4),
                        _jitter(rng, st.foliage_color, 0.15),
                        z,
                    )
                )
            else:
                self.objects.append(
                    Obj(
                        "building",
                        self.front(z, [(x, 0), (x + w, 0), (x + w, h), (x, h)]),
                        color,
                        z,
                    )
                )
            x += w + rng.uniform(-2, 4)

    def _road(self) -> None:
        rng, st, cam = self.rng, self.style, self.cam
        road = Obj(
            "road",
            self.ground_quad(self.road_l, self.road_r, 0, self.z_far),
            _jitter(rng, st.road_color, 0.08),
            0.0,
        )
        paint = _jitter(rng, (225, 225, 215), 0.05)
        dash, gap = rng.uniform(2.5, 4), rng.uniform(4, 9)
        for k in range(1, self.lanes):
            x = self.lanes_l + k * self.lane_w
            z = rng.uniform(0, gap)
            while z < min(self.z_far, 120):
                road.details.append((self.ground_quad(x - 0.07, x + 0.07, z, z + dash), paint))
                z += dash + gap
        for x in (self.lanes_l + 0.25, self.lanes_r - 0.25):  # solid edge lines
            road.details.append(
                (self.ground_quad(x - 0.06, x + 0.06, 0, min(self.z_far, 150)), paint)
            )
        if rng.uniform() < 0.35:  # a zebra crossing somewhere ahead
            zc = rng.uniform(12, 40)
            self.crossing = zc
            x = self.road_l + 0.5
            while x < self.road_r - 0.5:
                road.details.append((self.ground_quad(x, x + 0.5, zc, zc + 3.5), paint))
                x += 1.0
        self.objects.append(road)
        if self.parking is not None:
            side, z0, z1 = self.parking
            x0, x1 = sorted((self.edge(side), self.edge(side) - side * 2.3))
            strip = Obj(
                "parking", self.ground_quad(x0, x1, z0, z1), _jitter(rng, st.road_color, 0.15), 0.0
            )
            z = z0
            while z < z1:  # painted bays
                strip.details.append((self.ground_quad(x0, x1, z, z + 0.12), paint))
                z += 5.5
            self.objects.append(strip)
        _ = cam

    def _sidewalk(self, side: int) -> None:
        rng, st = self.rng, self.style
        e, o = self.edge(side), self.outer(side)
        walk = Obj(
            "sidewalk",
            self.ground_quad(min(e, o), max(e, o), 0, self.z_far),
            _jitter(rng, st.sidewalk_color, 0.08),
            0.0,
        )
        curb = _mix(walk.color, (200, 200, 200), 0.4)
        c0, c1 = sorted((e, e + side * 0.25))
        walk.details.append((self.ground_quad(c0, c1, 0, self.z_far), curb))
        # paving joints: thin darker lines across the walk
        joint = _mix(walk.color, (0, 0, 0), 0.25)
        z = rng.uniform(0, 2)
        while z < 60:
            walk.details.append((self.ground_quad(min(e, o), max(e, o), z, z + 0.05), joint))
            z += rng.uniform(1.5, 3)
        self.objects.append(walk)

    def _frontage(self, side: int) -> None:
        """Buildings, walls, fences, parks and street furniture along one side."""
        rng, st = self.rng, self.style
        o = self.outer(side)
        z = rng.uniform(-5, 3)
        segments: list[Obj] = []
        while z < self.z_far:
            length = rng.uniform(8, 32)
            z1 = z + length
            r = rng.uniform()
            if r < st.building_prob:
                segments.extend(self._building(side, o + side * rng.uniform(0, 1.5), z, z1))
            elif r < st.building_prob + (1 - st.building_prob) * 0.5:
                segments.extend(self._park(side, o, z, z1))
            else:
                segments.extend(self._wall_or_fence(side, o, z, z1))
            z = z1 + (rng.uniform(2, 8) if rng.uniform() < 0.25 else 0)
        # facades on one side never overlap each other; paint far to near for safety
        self.objects.extend(sorted(segments, key=lambda ob: -ob.depth))
        self._furniture(side)

    def _building(self, side: int, x: float, z0: float, z1: float) -> list[Obj]:
        rng, st = self.rng, self.style
        h = rng.uniform(*st.building_height)
        color = _jitter(rng, st.facade_colors[int(rng.integers(len(st.facade_colors)))], 0.08)
        lit = (
            1.0 if side == self.sun_side else 0.72
        )  # facades facing away from the sun are in shade
        color = tuple(int(c * lit) for c in color)  # type: ignore[assignment]
        ob = Obj("building", self.side_quad(x, z0, z1, 0, h), color, max((z0 + z1) / 2, 1.0))
        floor_h = rng.uniform(2.8, 3.6)
        win_w, win_h = rng.uniform(0.8, 1.6), rng.uniform(1.1, 1.8)
        pitch = win_w + rng.uniform(1.0, 2.5)
        win = _jitter(rng, st.window_color, 0.15)
        frame = _mix(color, (255, 255, 255), 0.35)
        zs = np.arange(max(z0, self.cam.z_near) + rng.uniform(0.5, 1.2), z1 - 0.5 - win_w, pitch)
        zs = zs[self.cam.f * win_h / np.maximum(zs, 0.05) >= 1.5]  # skip sub-pixel windows
        ys = np.arange(floor_h * rng.uniform(0.9, 1.3), h - 0.6 - win_h, floor_h)
        if zs.size and ys.size:
            zz, yy = (g.ravel() for g in np.meshgrid(zs, ys))
            frames = self.side_quads(x, zz - 0.1, zz + win_w + 0.1, yy - 0.1, yy + win_h + 0.1)
            panes = self.side_quads(x, zz, zz + win_w, yy, yy + win_h)
            shades = rng.uniform(0.8, 1.2, zz.size)
            win_arr = np.array(win, np.float32)
            for outer, pane, k in zip(frames, panes, shades, strict=True):
                ob.details.append((outer, frame))
                ob.details.append((pane, _scaled(win_arr, k)))
        if rng.uniform() < 0.6:  # shop front: a darker band at street level
            ob.details.append(
                (
                    self.side_quad(x, z0 + 0.5, z1 - 0.5, 0.3, min(2.6, h - 0.5)),
                    _mix(win, (0, 0, 0), 0.2),
                )
            )
        ob.details.append(
            (self.side_quad(x, z0, z1, h - 0.4, h), _mix(color, (0, 0, 0), 0.3))
        )  # cornice
        if side == -self.sun_side:  # buildings between the sun and the street shade it
            w = min(h * 0.6, self.side_w[side] + self.lane_w * 1.5)
            a, b = sorted((x, x - side * w))
            self.shadows.append(self.ground_quad(a, b, z0, z1))
        return [ob]

    def _blob(self, x: float, y: float, z: float, rx: float, ry: float, n: int = 12) -> list[Point]:
        """An irregular round blob (a tree crown) in the plane Z = z."""
        angles = np.linspace(0, 2 * np.pi, n, endpoint=False) + self.rng.uniform(0, 1)
        radii = self.rng.uniform(0.75, 1.1, n)
        return self.front(
            z,
            [
                (x + rx * r * math.cos(a), y + ry * r * math.sin(a))
                for a, r in zip(angles, radii, strict=True)
            ],
        )

    def _park(self, side: int, o: float, z0: float, z1: float) -> list[Obj]:
        rng, st = self.rng, self.style
        far = o + side * 30
        out = [
            Obj(
                "terrain",
                self.ground_quad(min(o, far), max(o, far), z0, z1),
                _jitter(rng, st.terrain_color, 0.12),
                0.0,
            )
        ]
        if rng.uniform() < 0.5:  # hedge along the walk
            h = rng.uniform(0.8, 1.8)
            out.append(
                Obj(
                    "vegetation",
                    self.side_quad(o + side * 0.3, z0, z1, 0, h),
                    _jitter(rng, st.foliage_color, 0.1),
                    (z0 + z1) / 2,
                )
            )
        z = z0 + rng.uniform(0, 4)
        while z < z1:  # trees set back in the park
            x = o + side * rng.uniform(2, 10)
            out.extend(self._tree_parts(x, z + 3))
            z += rng.uniform(3, 10) / max(st.vegetation, 0.2)
        return out

    def _wall_or_fence(self, side: int, o: float, z0: float, z1: float) -> list[Obj]:
        rng, st = self.rng, self.style
        out: list[Obj] = []
        if rng.uniform() < 0.6:  # buildings further back, behind the wall or fence
            out.extend(self._building(side, o + side * rng.uniform(6, 15), z0, z1))
            far = o + side * 15
            out.insert(
                0,
                Obj(
                    "terrain",
                    self.ground_quad(min(o, far), max(o, far), z0, z1),
                    _jitter(rng, st.terrain_color, 0.12),
                    0.0,
                ),
            )
        r = rng.uniform()
        if r < 0.15:  # a guard rail: two steel bands on short posts
            rail = Obj(
                "guard rail",
                self.side_quad(o, z0, z1, 0.45, 0.8),
                _jitter(rng, (170, 172, 175), 0.1),
                (z0 + z1) / 2,
            )
            rail.details.append((self.side_quad(o, z0, z1, 0.6, 0.65), (110, 112, 115)))
            out.append(rail)
        elif r < 0.55:
            h = rng.uniform(0.8, 2.6)
            wall = Obj(
                "wall",
                self.side_quad(o, z0, z1, 0, h),
                _jitter(rng, st.wall_color, 0.1),
                (z0 + z1) / 2,
            )
            wall.details.append(
                (self.side_quad(o, z0, z1, h - 0.15, h), _mix(wall.color, (255, 255, 255), 0.3))
            )
            out.append(wall)
        else:
            h = rng.uniform(1.0, 2.2)
            color = _jitter(rng, (120, 110, 95) if rng.uniform() < 0.5 else (90, 100, 95), 0.2)
            fence = Obj("fence", self.side_quad(o, z0, z1, 0, h), color, (z0 + z1) / 2)
            post = _mix(color, (0, 0, 0), 0.4)
            z = z0
            while z < z1:
                fence.details.append((self.side_quad(o, z, z + 0.12, 0, h), post))
                z += rng.uniform(0.25, 2.5) if z < 40 else 3.0
            fence.details.append((self.side_quad(o, z0, z1, h - 0.1, h), post))
            out.append(fence)
        return out

    def _tree_parts(self, x: float, z: float) -> list[Obj]:
        rng, st = self.rng, self.style
        g = self._group()
        trunk_h = rng.uniform(1.8, 3.2)
        r = rng.uniform(1.3, 3.2)
        trunk = Obj(
            "vegetation",
            self.front(
                z,
                [
                    (x - 0.15, 0),
                    (x + 0.15, 0),
                    (x + 0.12, trunk_h + r * 0.5),
                    (x - 0.12, trunk_h + r * 0.5),
                ],
            ),
            _jitter(rng, (85, 65, 45), 0.2),
            z,
            g,
        )
        crown = Obj(
            "vegetation",
            self._blob(x, trunk_h + r, z, r, r * rng.uniform(0.9, 1.4)),
            _jitter(rng, st.foliage_color, 0.12),
            z,
            g,
        )
        crown.details.append(
            (
                self._blob(x - r * 0.25, trunk_h + r * 1.15, z, r * 0.5, r * 0.5, 8),
                _mix(crown.color, (255, 255, 200), 0.15),
            )
        )
        return [trunk, crown]

    def _furniture(self, side: int) -> None:
        """Street trees, lamp posts, signs, traffic lights and bins on one sidewalk."""
        rng, st = self.rng, self.style
        e = self.edge(side)
        z = rng.uniform(4, 15)
        while z < 140:
            x = e + side * rng.uniform(0.5, 1.0)
            r = rng.uniform()
            if r < 0.15 + 0.5 * st.vegetation:
                self.add_street(z, self._tree_parts(x, z))
            elif r < 0.75:
                self.add_street(z, self._pole(x, z, side))
            else:
                self.add_street(
                    z, self._bin(e + side * rng.uniform(0.6, self.side_w[side] - 0.5), z)
                )
            z += rng.uniform(6, 22)

    def _pole(self, x: float, z: float, side: int) -> list[Obj]:
        rng = self.rng
        kind = rng.choice(["lamp", "sign", "light"], p=[0.4, 0.35, 0.25])
        grey = _jitter(rng, (120, 120, 118), 0.2)
        h = {
            "lamp": rng.uniform(6, 9),
            "sign": rng.uniform(2.4, 3.2),
            "light": rng.uniform(3.2, 4.5),
        }[kind]
        w = 0.09 if kind == "sign" else 0.13
        parts = [
            Obj(
                "pole",
                self.front(z, [(x - w, 0), (x + w, 0), (x + w * 0.7, h), (x - w * 0.7, h)]),
                grey,
                z,
            )
        ]
        if kind == "lamp":
            arm = -side * rng.uniform(1.0, 2.0)
            a, b = sorted((x, x + arm))
            parts.append(
                Obj("pole", self.front(z, [(a, h - 0.12), (b, h - 0.12), (b, h), (a, h)]), grey, z)
            )
            lamp = Obj(
                "pole",
                self.front(
                    z,
                    [
                        (x + arm - 0.3, h - 0.25),
                        (x + arm + 0.3, h - 0.25),
                        (x + arm + 0.2, h),
                        (x + arm - 0.2, h),
                    ],
                ),
                grey,
                z,
            )
            parts.append(lamp)
        elif kind == "sign":
            shape = rng.integers(0, 3)
            y = h - 0.35
            s = rng.uniform(0.3, 0.45)
            if shape == 0:  # round
                pts = [
                    (x + s * math.cos(a), y + s * math.sin(a))
                    for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)
                ]
                color, inner = (200, 30, 30), (235, 235, 235)
            elif shape == 1:  # triangle
                pts = [(x - s * 1.1, y + s * 0.7), (x + s * 1.1, y + s * 0.7), (x, y - s)]
                color, inner = (210, 40, 40), (240, 240, 230)
            else:  # rectangular, blue or yellow
                pts = [
                    (x - s, y - s * 0.8),
                    (x + s, y - s * 0.8),
                    (x + s, y + s * 0.8),
                    (x - s, y + s * 0.8),
                ]
                color, inner = (
                    ((30, 70, 170), (230, 230, 240))
                    if rng.uniform() < 0.6
                    else ((230, 190, 20), (30, 30, 30))
                )
            sign = Obj(
                "traffic sign", self.front(z - 0.05, pts), _jitter(rng, color, 0.1), z - 0.05
            )
            sign.details.append(
                (
                    self.front(
                        z - 0.05, [(x + (px - x) * 0.6, y + (py - y) * 0.6) for px, py in pts]
                    ),
                    _jitter(rng, inner, 0.05),
                )
            )
            parts.append(sign)
        else:
            bw, bh = 0.18, 0.5
            y = h - 0.05
            box = Obj(
                "traffic light",
                self.front(
                    z - 0.05, [(x - bw, y - bh * 2), (x + bw, y - bh * 2), (x + bw, y), (x - bw, y)]
                ),
                _jitter(rng, (35, 35, 30), 0.3),
                z - 0.05,
            )
            on = int(rng.integers(0, 3))
            for k, c in enumerate([(230, 40, 30), (240, 180, 20), (40, 220, 90)]):
                cy = y - bh * 0.33 - k * bh * 0.66
                col = c if k == on else _mix(c, (30, 30, 30), 0.8)
                box.details.append(
                    (
                        self.front(
                            z - 0.05,
                            [
                                (x - 0.1, cy - 0.1),
                                (x + 0.1, cy - 0.1),
                                (x + 0.1, cy + 0.1),
                                (x - 0.1, cy + 0.1),
                            ],
                        ),
                        col,
                    )
                )
            parts.append(box)
        return parts

    def _bin(self, x: float, z: float) -> list[Obj]:
        rng = self.rng
        h, w = rng.uniform(0.8, 1.2), rng.uniform(0.25, 0.4)
        color = _jitter(
            rng, [(60, 90, 60), (140, 140, 140), (170, 120, 40)][int(rng.integers(3))], 0.2
        )
        # bins and boxes are `static`; prams, carts and parked scooters are `dynamic`
        label = "static" if rng.uniform() < 0.7 else "dynamic"
        return [
            Obj(label, self.front(z, [(x - w, 0), (x + w, 0), (x + w, h), (x - w, h)]), color, z)
        ]

    def _bridge(self, z: float) -> None:
        """A road or rail bridge across the street, between the building lines."""
        rng = self.rng
        x0, x1 = self.outer(-1), self.outer(1)
        y0 = rng.uniform(4.5, 6.5)
        color = _jitter(self.rng, self.style.wall_color, 0.15)
        deck = Obj(
            "bridge",
            self.front(z, [(x0, y0), (x1, y0), (x1, y0 + rng.uniform(1.2, 2.5)), (x0, y0 + 1.2)]),
            color,
            z,
        )
        deck.details.append(
            (
                self.front(z, [(x0, y0), (x1, y0), (x1, y0 + 0.25), (x0, y0 + 0.25)]),
                _mix(color, (0, 0, 0), 0.35),
            )
        )
        parts = [deck]
        for x in (self.edge(-1) - 0.8, self.edge(1) + 0.8):
            parts.append(
                Obj(
                    "bridge",
                    self.front(z, [(x - 0.4, 0), (x + 0.4, 0), (x + 0.4, y0), (x - 0.4, y0)]),
                    _mix(color, (0, 0, 0), 0.15),
                    z,
                )
            )
        self.add_street(z, parts)
        self.shadows.append(self.ground_quad(x0, x1, z - 1.5, z + 3))

    # -- vehicles and people -----------------------------------------------------------------
    def _traffic(self) -> None:
        rng, st = self.rng, self.style
        two_way = rng.uniform() < 0.6  # lanes left of the ego lane carry oncoming traffic
        for k in range(self.lanes):
            xc = self.lanes_l + (k + 0.5) * self.lane_w
            oncoming = two_way and k < self.ego_lane
            z = rng.uniform(6, 20)
            while z < 130:
                if rng.uniform() < 0.3 + 0.6 * st.traffic:
                    kind = rng.choice(
                        ["car", "truck", "bus", "caravan", "trailer", "bicycle", "motorcycle"],
                        p=[0.70, 0.08, 0.07, 0.02, 0.02, 0.07, 0.04],
                    )
                    x = xc + rng.uniform(-0.5, 0.5)
                    if kind in ("bicycle", "motorcycle"):
                        x = (self.lanes_r - 0.8) if k == self.lanes - 1 else x
                        self.add_street(z, self._two_wheeler(x, z, str(kind)))
                    else:
                        self.add_street(z, self._vehicle(x, z, str(kind), oncoming))
                z += rng.uniform(7, 30) / (0.4 + st.traffic)
        if self.parking is not None:  # parked cars in the parking lane
            side, z0, z1 = self.parking
            x = self.edge(side) - side * 1.15
            z = z0 + rng.uniform(0.3, 3)
            while z < z1 - 4:
                if rng.uniform() < 0.5 + 0.45 * st.traffic:
                    self.add_street(z, self._vehicle(x + rng.uniform(-0.15, 0.15), z, "car"))
                z += rng.uniform(5.5, 8)

    def _vehicle(self, x: float, z: float, kind: str, oncoming: bool = False) -> list[Obj]:
        """A car, truck or bus whose near face is at distance z (its front when `oncoming`)."""
        rng = self.rng
        g = self._group()
        if kind == "car":
            w, h, length = rng.uniform(1.7, 2.0), rng.uniform(1.35, 1.65), rng.uniform(4.0, 4.8)
            paint = _jitter(
                rng,
                [
                    (200, 200, 205),
                    (30, 30, 35),
                    (110, 110, 115),
                    (150, 20, 25),
                    (20, 40, 110),
                    (230, 230, 225),
                    (70, 80, 60),
                ][int(rng.integers(7))],
                0.1,
            )
        elif kind in ("truck", "caravan", "trailer"):
            w, h, length = rng.uniform(2.3, 2.55), rng.uniform(2.8, 3.8), rng.uniform(6, 10)
            paint = _jitter(
                rng,
                [(220, 220, 220), (180, 40, 30), (40, 80, 140), (230, 200, 60)][
                    int(rng.integers(4))
                ],
                0.1,
            )
        else:  # bus
            w, h, length = 2.55, rng.uniform(3.0, 3.3), rng.uniform(11, 13)
            paint = _jitter(
                rng,
                [(240, 200, 30), (200, 30, 40), (230, 230, 230), (40, 120, 180)][
                    int(rng.integers(4))
                ],
                0.08,
            )
        xl, r = x - w / 2, x + w / 2
        parts: list[Obj] = []
        shade = tuple(int(c * 0.75) for c in paint)
        body = 0.5 * h if kind == "car" else 0.92 * h
        # the side we can see (the one facing the camera's X)
        sx = xl if xl > 0 else (r if r < 0 else None)
        if sx is not None:
            side = Obj(kind, self.side_quad(sx, z, z + length, 0.1, body), shade, z + length / 2, g)  # type: ignore[arg-type]
            if kind == "car":
                side.polygon = [
                    self.cam.uv(sx, yy, zz)
                    for zz, yy in [
                        (z, 0.1),
                        (z + length, 0.1),
                        (z + length, body),
                        (z + length * 0.8, h),
                        (z + length * 0.3, h),
                        (z, body),
                    ]
                ]
                side.details.append(
                    (
                        [
                            self.cam.uv(sx, yy, zz)
                            for zz, yy in [
                                (z + 0.4, body + 0.05),
                                (z + length * 0.75, body + 0.05),
                                (z + length * 0.7, h - 0.08),
                                (z + length * 0.35, h - 0.08),
                            ]
                        ],
                        (40, 45, 55),
                    )
                )
            elif kind == "bus":
                side.details.append(
                    (self.side_quad(sx, z + 0.5, z + length - 0.5, h * 0.5, h * 0.85), (35, 45, 55))
                )
            parts.append(side)
        if kind == "car":
            pts = [
                (xl + 0.05, 0),
                (xl + 0.35, 0),
                (xl + 0.35, 0.12),
                (r - 0.35, 0.12),
                (r - 0.35, 0),
                (r - 0.05, 0),
                (r, 0.25),
                (r, body),
                (r - 0.2, h),
                (xl + 0.2, h),
                (xl, body),
                (xl, 0.25),
            ]
        else:
            pts = [
                (xl + 0.1, 0),
                (xl + 0.5, 0),
                (xl + 0.5, 0.2),
                (r - 0.5, 0.2),
                (r - 0.5, 0),
                (r - 0.1, 0),
                (r, 0.3),
                (r, h),
                (xl, h),
                (xl, 0.3),
            ]
        rear = Obj(kind, self.front(z, pts), paint, z, g)  # type: ignore[arg-type]
        dark = (25, 28, 35)
        if kind == "car":
            rear.details.append(
                (
                    self.front(
                        z,
                        [
                            (xl + 0.15, body + 0.05),
                            (r - 0.15, body + 0.05),
                            (r - 0.28, h - 0.08),
                            (xl + 0.28, h - 0.08),
                        ],
                    ),
                    _jitter(rng, (50, 60, 75), 0.2),
                )
            )
            for lx in (xl + 0.08, r - 0.33):
                rear.details.append(
                    (
                        self.front(
                            z,
                            [
                                (lx, body - 0.22),
                                (lx + 0.25, body - 0.22),
                                (lx + 0.25, body - 0.08),
                                (lx, body - 0.08),
                            ],
                        ),
                        (235, 230, 200) if oncoming else (190, 25, 25),
                    )
                )
            rear.details.append(
                (
                    self.front(
                        z, [(x - 0.26, 0.3), (x + 0.26, 0.3), (x + 0.26, 0.42), (x - 0.26, 0.42)]
                    ),
                    (225, 225, 215),
                )
            )
            rear.details.append(
                (
                    self.front(
                        z,
                        [(xl + 0.35, 0.05), (r - 0.35, 0.05), (r - 0.35, 0.14), (xl + 0.35, 0.14)],
                    ),
                    dark,
                )
            )
        elif kind == "bus":
            rear.details.append(
                (
                    self.front(
                        z,
                        [
                            (xl + 0.2, h * 0.55),
                            (r - 0.2, h * 0.55),
                            (r - 0.2, h * 0.9),
                            (xl + 0.2, h * 0.9),
                        ],
                    ),
                    (40, 50, 60),
                )
            )
        else:
            rear.details.append(
                (
                    self.front(
                        z,
                        [
                            (xl + 0.1, h * 0.15),
                            (r - 0.1, h * 0.15),
                            (r - 0.1, h * 0.95),
                            (xl + 0.1, h * 0.95),
                        ],
                    ),
                    _mix(paint, (0, 0, 0), 0.15),
                )
            )
        parts.append(rear)
        s0, s1 = sorted((xl - 0.3 * self.sun_side, r + 0.6 * self.sun_side))
        self.shadows.append(self.ground_quad(s0, s1, z - 0.2, z + length))
        return parts

    def _person_pts(
        self, x: float, h: float, stride: float, lean: float = 0.0
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]], list[tuple[float, float]]]:
        """Silhouette (body, torso, head) of a person of height h centred at x, in metres."""
        sw = h * 0.13  # half shoulder width
        hip = h * 0.52
        neck = h * 0.84
        body = [
            (x - stride - 0.09, 0),
            (x - stride + 0.06, 0),
            (x - 0.02, hip * 0.8),
            (x + 0.02, hip * 0.8),
            (x + stride - 0.06, 0),
            (x + stride + 0.09, 0),
            (x + sw * 0.8, hip),
            (x + sw + lean, neck - 0.05),
            (x + sw * 0.5 + lean, neck),
            (x - sw * 0.5 + lean, neck),
            (x - sw + lean, neck - 0.05),
            (x - sw * 0.8, hip),
        ]
        torso = [
            (x - sw * 0.75, hip),
            (x + sw * 0.75, hip),
            (x + sw * 0.9 + lean, neck - 0.06),
            (x - sw * 0.9 + lean, neck - 0.06),
        ]
        r = h * 0.065
        cy = neck + r * 1.1
        head = [
            (x + lean + r * math.cos(a), cy + r * 1.2 * math.sin(a))
            for a in np.linspace(0, 2 * np.pi, 10, endpoint=False)
        ]
        return body, torso, head

    def _person(
        self, x: float, z: float, label: str = "person", base_y: float = 0.0, h: float | None = None
    ) -> list[Obj]:
        rng = self.rng
        g = self._group()
        h = h or rng.uniform(1.55, 1.95)
        stride = rng.uniform(0.0, 0.22)
        body, torso, head = self._person_pts(x, h, stride, rng.uniform(-0.05, 0.05))
        lift = [(px, py + base_y) for px, py in body]
        trousers = _jitter(
            rng,
            [(40, 45, 60), (30, 30, 30), (90, 80, 70), (60, 70, 110)][int(rng.integers(4))],
            0.2,
        )
        shirt = tuple(int(c) for c in rng.integers(20, 230, 3))
        ob = Obj(label, self.front(z, lift), trousers, z, g)
        ob.details.append((self.front(z, [(px, py + base_y) for px, py in torso]), shirt))  # type: ignore[arg-type]
        skin = _jitter(
            rng, [(230, 190, 160), (190, 140, 110), (120, 85, 60)][int(rng.integers(3))], 0.1
        )
        hd = Obj(label, self.front(z, [(px, py + base_y) for px, py in head]), skin, z, g)
        return [ob, hd]

    def _two_wheeler(self, x: float, z: float, kind: str) -> list[Obj]:
        rng = self.rng
        g = self._group()
        moto = kind == "motorcycle"
        ww = 0.09 if not moto else 0.16
        wh = 0.68 if not moto else 0.65
        frame_c = _jitter(rng, (60, 60, 70) if not moto else (30, 30, 30), 0.3)
        bike = Obj(
            kind,
            self.front(
                z,
                [
                    (x - ww, 0),
                    (x + ww, 0),
                    (x + ww, wh),
                    (x + 0.05, 0.9),
                    (x + 0.32, 1.0),
                    (x + 0.32, 1.05),
                    (x - 0.32, 1.05),
                    (x - 0.32, 1.0),
                    (x - 0.05, 0.9),
                    (x - ww, wh),
                ],
            ),
            frame_c,
            z + 0.3,
            g,
        )  # type: ignore[arg-type]
        if moto:
            bike.details.append(
                (
                    self.front(
                        z, [(x - 0.1, 0.55), (x + 0.1, 0.55), (x + 0.1, 0.7), (x - 0.1, 0.7)]
                    ),
                    (180, 30, 30),
                )
            )
        rider = self._person(x, z - 0.05, "rider", base_y=0.35, h=rng.uniform(1.35, 1.5))
        return [bike, *rider]

    def _people(self) -> None:
        rng, st = self.rng, self.style
        count = int(rng.poisson(2 + 10 * st.pedestrians))
        for _ in range(count):
            side = 1 if rng.uniform() < 0.5 else -1
            z = rng.uniform(5, 70)
            x = self.edge(side) + side * rng.uniform(0.6, self.side_w[side] - 0.3)
            self.add_street(z, self._person(x, z))
        if self.crossing is not None:
            for _ in range(int(rng.integers(0, 4))):
                z = self.crossing + rng.uniform(0.5, 3)
                self.add_street(z, self._person(rng.uniform(self.road_l, self.road_r), z))

    def _hood(self) -> None:
        rng, cam = self.rng, self.cam
        W, H = cam.width, cam.height
        top = H * (1 - rng.uniform(0.1, 0.17))
        bulge = H * rng.uniform(0.03, 0.07)
        xs = np.linspace(-0.02 * W, 1.02 * W, 17)
        t = (xs - W / 2) / (W / 2)
        ys = top + bulge * t**2
        pts = [(round(x), round(y)) for x, y in zip(xs, ys, strict=True)]
        pts += [(int(1.02 * W), H + 2), (int(-0.02 * W), H + 2)]
        paint = _jitter(rng, (40, 42, 48), 0.3)
        hood = Obj("ego vehicle", pts, paint, 1.0)
        # reflection of the sky along the hood's leading edge
        refl = [(x, y + 2 + H * 0.01) for x, y in pts[:17]]
        refl += [(x, y + H * 0.04) for x, y in reversed(pts[:17])]
        hood.details.append(
            ([(int(x), int(y)) for x, y in refl], _mix(paint, (200, 200, 210), 0.25))
        )
        self.objects.append(hood)
