"""Camera, polygons and the drawing canvas that the synthetic street scenes are built on.

A pinhole camera looks down a straight street; everything is placed in world metres and projected
to integer pixel polygons. Axes: X right, Y up, Z forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cityseg.data.synth_style import CityStyle, Color

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
    crown: bool = False  # a tree crown: painted as leaves (or bare twigs) with sky between


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at height `cam_h` looking along +Z with horizon row `horizon`.

    `roll` (radians) turns the image about (cx, horizon), as a camera mounted slightly askew
    or a car leaning in a bend does; the horizon line is then tilted.
    """

    width: int
    height: int
    f: float
    cx: float
    horizon: float
    cam_h: float
    roll: float = 0.0

    def uv(self, x: float, y: float, z: float) -> Point:
        """Project world (x, y, z) to an integer pixel, clamped to a sane range."""
        z = max(z, 0.05)
        du, dv = self.f * x / z, self.f * (self.cam_h - y) / z
        if self.roll:
            c, s = math.cos(self.roll), math.sin(self.roll)
            du, dv = c * du - s * dv, s * du + c * dv
        u, v = self.cx + du, self.horizon + dv
        lim_u, lim_v = 6 * self.width, 6 * self.height
        return (
            round(min(max(u, -lim_u), lim_u)),
            round(min(max(v, -lim_v), lim_v)),
        )

    def uv_many(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised `uv`: integer pixel arrays (u, v)."""
        z = np.maximum(z, 0.05)
        du, dv = self.f * x / z, self.f * (self.cam_h - y) / z
        if self.roll:
            c, s = math.cos(self.roll), math.sin(self.roll)
            du, dv = c * du - s * dv, s * du + c * dv
        u = np.clip(np.rint(self.cx + du), -6 * self.width, 6 * self.width)
        v = np.clip(np.rint(self.horizon + dv), -6 * self.height, 6 * self.height)
        return u.astype(np.int64), v.astype(np.int64)

    def horizon_v(self, u: float) -> float:
        """Row of the horizon line at column u (tilted by the roll)."""
        return self.horizon + math.tan(self.roll) * (u - self.cx)

    def below_horizon(self) -> np.ndarray:
        """Per pixel, the distance in pixels below the horizon line, perpendicular to it."""
        c, s = math.cos(self.roll), math.sin(self.roll)
        u = np.arange(self.width, dtype=np.float32)[None, :] - np.float32(self.cx)
        v = np.arange(self.height, dtype=np.float32)[:, None] - np.float32(self.horizon)
        return np.float32(c) * v - np.float32(s) * u

    def scale(self, z: float) -> float:
        """Pixels per metre at distance z."""
        return self.f / max(z, 0.05)

    @property
    def z_near(self) -> float:
        """Distance at which the ground is well below the bottom row (near end of ground quads)."""
        return self.f * self.cam_h / (2 * self.height - self.horizon)


def jitter(rng: np.random.Generator, color: Color, amount: float) -> Color:
    scale = 1 + rng.uniform(-amount, amount)
    shift = rng.uniform(-amount, amount, 3) * 60
    return tuple(int(min(255, max(0, c * scale + s))) for c, s in zip(color, shift, strict=True))  # type: ignore[return-value]


def scaled(color: np.ndarray, k: float) -> Color:
    r, g, b = (int(c) for c in np.minimum(color * k, 255))
    return r, g, b


def mix(a: Color, b: Color, t: float) -> Color:
    return tuple(int(x * (1 - t) + y * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


class SceneCanvas:
    """The frame being built: camera, the polygon lists, and projection helpers."""

    # The street layout, set by SceneBuilder.build() before anything is placed on it.
    lanes: int
    lane_w: float
    ego_lane: int
    road_l: float
    road_r: float
    lanes_l: float
    lanes_r: float
    side_w: dict[int, float]
    z_far: float
    crossing: float | None
    parking: tuple[int, float, float] | None  # (side, z0, z1)
    kerb: dict[int, bool]  # kerbside parking on side -1 / +1

    def __init__(self, style: CityStyle, rng: np.random.Generator, size: tuple[int, int]):
        self.style = style
        self.rng = rng
        width, height = size
        # Focal length in frame widths: Cityscapes' is about 1.1 (a 49 degree horizontal
        # view), CamVid's about 0.85 (60 degrees); each city draws around its own.
        self.cam = Camera(
            width=width,
            height=height,
            f=width * rng.uniform(*style.focal),
            cx=width * rng.uniform(0.45, 0.55),
            horizon=height * rng.uniform(*style.horizon),
            cam_h=rng.uniform(*style.camera_height),
            roll=math.radians(rng.uniform(-style.roll, style.roll)),
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

    def front_rect(self, z: float, x0: float, x1: float, y0: float, y1: float) -> list[Point]:
        """A rectangle in the plane Z = z (facing the camera), from x0..x1 and y0..y1 metres."""
        return self.front(z, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])

    def add_street(self, z: float, parts: list[Obj]) -> None:
        """Queue a street object (several polygons) to be painted in depth order."""
        self.street.append((z, len(self.street), parts))

    def edge(self, side: int) -> float:
        """X of the curb on `side` (-1 left, +1 right)."""
        return self.road_l if side < 0 else self.road_r

    def outer(self, side: int) -> float:
        """X of the outer edge of the sidewalk (the building line) on `side`."""
        return self.edge(side) + side * self.side_w[side]

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
