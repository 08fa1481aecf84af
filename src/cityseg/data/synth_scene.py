"""Geometry of one synthetic street scene: a list of labelled polygons, painted far to near.

A pinhole camera looks down a straight street. Every thing in the scene (road, sidewalks,
facades, walls, fences, trees, poles, signs, vehicles, people, the ego hood) is built in
world metres and projected to integer pixel polygons. The same polygon list draws the
label image and the colour image, so labels are pixel-exact. Axes: X right, Y up, Z forward.
"""

from __future__ import annotations

import math

import numpy as np

from cityseg.data.synth_actors import StreetActors
from cityseg.data.synth_geometry import GROUND_LABELS, Obj, jitter, mix, scaled
from cityseg.data.synth_style import CityStyle, city_names, make_style

__all__ = ["GROUND_LABELS", "CityStyle", "Obj", "SceneBuilder", "city_names", "make_style"]


class SceneBuilder(StreetActors):
    """Builds the polygon list of one frame; call `build()` once."""

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
        # kerbside parking (cars, vans, bikes along the curb) widens the road on that side
        self.kerb: dict[int, bool] = {}
        for side in (-1, 1):
            busy = self.parking is not None and self.parking[0] == side
            self.kerb[side] = not busy and rng.uniform() < st.parked
            if self.kerb[side]:
                if side > 0:
                    self.road_r += 2.2
                else:
                    self.road_l -= 2.2
        self.lanes, self.lane_w = lanes, lane_w
        self.side_w = {s: rng.uniform(*st.sidewalk_width) for s in (-1, 1)}
        self.z_far = rng.uniform(160, 260)

        # sky above and terrain below the (possibly tilted) horizon line
        left, right = -W // 2, W + W // 2
        hl, hr = cam.horizon_v(left), cam.horizon_v(right)
        self.objects.append(
            Obj(
                "sky",
                [(left, -H), (right, -H), (right, round(hr + 2)), (left, round(hl + 2))],
                st.sky_color,
                math.inf,
            )
        )
        self.objects.append(
            Obj(
                "terrain",
                [(left, round(hl)), (right, round(hr)), (right, 2 * H), (left, 2 * H)],
                jitter(rng, st.terrain_color, 0.1),
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
        if rng.uniform() < st.hood:
            self._hood()
        return self.objects

    def _skyline(self) -> None:
        rng, st = self.rng, self.style
        z = self.z_far + rng.uniform(10, 60)
        x = -z * 1.2
        while x < z * 1.2:
            w = rng.uniform(8, 30)
            h = rng.uniform(*st.building_height) * rng.uniform(0.8, 2.0)
            color = mix(
                jitter(rng, st.facade_colors[int(rng.integers(len(st.facade_colors)))], 0.1),
                st.sky_color,
                0.35,
            )
            if rng.uniform() < st.vegetation * 0.6:
                self.objects.append(
                    Obj(
                        "vegetation",
                        self._blob(x + w / 2, h * 0.35, z, w / 2, h * 0.4),
                        jitter(rng, st.foliage_color, 0.15),
                        z,
                        crown=True,
                    )
                )
            else:
                self.objects.append(
                    Obj(
                        "building",
                        self.front_rect(z, x, x + w, 0, h),
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
            jitter(rng, st.road_color, 0.08),
            0.0,
        )
        paint = jitter(rng, (225, 225, 215), 0.05)
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
                "parking", self.ground_quad(x0, x1, z0, z1), jitter(rng, st.road_color, 0.15), 0.0
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
            jitter(rng, st.sidewalk_color, 0.08),
            0.0,
        )
        curb = mix(walk.color, (200, 200, 200), 0.4)
        c0, c1 = sorted((e, e + side * 0.25))
        walk.details.append((self.ground_quad(c0, c1, 0, self.z_far), curb))
        # paving joints: thin darker lines across the walk
        joint = mix(walk.color, (0, 0, 0), 0.25)
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
            if z > 6 and rng.uniform() < st.side_streets:  # an intersection: a side street opens
                length = rng.uniform(7, 14)
                z1 = z + length
                segments.extend(self._side_street(side, z, z1))
            elif r < st.building_prob:
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
        color = jitter(rng, st.facade_colors[int(rng.integers(len(st.facade_colors)))], 0.08)
        lit = (
            1.0 if side == self.sun_side else 0.72
        )  # facades facing away from the sun are in shade
        color = tuple(int(c * lit) for c in color)  # type: ignore[assignment]
        ob = Obj("building", self.side_quad(x, z0, z1, 0, h), color, max((z0 + z1) / 2, 1.0))
        floor_h = rng.uniform(2.8, 3.6)
        win_w, win_h = rng.uniform(0.8, 1.6), rng.uniform(1.1, 1.8)
        pitch = win_w + rng.uniform(1.0, 2.5)
        win = jitter(rng, st.window_color, 0.15)
        frame = mix(color, (255, 255, 255), 0.35)
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
                ob.details.append((pane, scaled(win_arr, k)))
        if rng.uniform() < 0.6:  # shop front: a darker band at street level
            ob.details.append(
                (
                    self.side_quad(x, z0 + 0.5, z1 - 0.5, 0.3, min(2.6, h - 0.5)),
                    mix(win, (0, 0, 0), 0.2),
                )
            )
        ob.details.append(
            (self.side_quad(x, z0, z1, h - 0.4, h), mix(color, (0, 0, 0), 0.3))
        )  # cornice
        if side == -self.sun_side:  # buildings between the sun and the street shade it
            w = min(h * 0.6, self.side_w[side] + self.lane_w * 1.5)
            a, b = sorted((x, x - side * w))
            self.shadows.append(self.ground_quad(a, b, z0, z1))
        self.wall_signs(side, x, z0, z1)
        return [ob]

    def _side_street(self, side: int, z0: float, z1: float) -> list[Obj]:
        """A side street crossing the sidewalk, with buildings set back along it."""
        rng, st = self.rng, self.style
        e = self.edge(side)
        far = e + side * 60
        road = Obj(
            "road",
            self.ground_quad(min(e, far), max(e, far), z0, z1),
            jitter(rng, st.road_color, 0.08),
            0.0,
        )
        paint = jitter(rng, (225, 225, 215), 0.05)
        a, b = sorted((e, e + side * 0.3))
        road.details.append((self.ground_quad(a, b, z0, z1), paint))  # give-way line
        out = [road]
        if rng.uniform() < 0.3 + 0.5 * st.traffic:  # a car waiting at the junction, side on
            facing = -side if rng.uniform() < 0.7 else side  # mostly toward the main road
            x = e + side * rng.uniform(2.0, 6.0)  # its middle, just past the give-way line
            z = rng.uniform(z0 + 1.5, max(z0 + 1.5, z1 - 2.0))
            out.extend(self._profile_car(x, z, facing))
        # the corner buildings of the side street, facing it, further along
        for x_off in (rng.uniform(12, 25), rng.uniform(30, 50)):
            x = e + side * x_off
            h = rng.uniform(*st.building_height)
            color = jitter(rng, st.facade_colors[int(rng.integers(len(st.facade_colors)))], 0.1)
            out.append(
                Obj(
                    "building",
                    self.front(
                        z1 + rng.uniform(2, 8),
                        [
                            (x - side * 6, 0),
                            (x + side * 6, 0),
                            (x + side * 6, h),
                            (x - side * 6, h),
                        ],
                    ),
                    color,
                    z1 + 5,
                )
            )
        return out

    def _park(self, side: int, o: float, z0: float, z1: float) -> list[Obj]:
        rng, st = self.rng, self.style
        far = o + side * 30
        out = [
            Obj(
                "terrain",
                self.ground_quad(min(o, far), max(o, far), z0, z1),
                jitter(rng, st.terrain_color, 0.12),
                0.0,
            )
        ]
        if rng.uniform() < 0.5:  # hedge along the walk
            h = rng.uniform(0.8, 1.8)
            out.append(
                Obj(
                    "vegetation",
                    self.side_quad(o + side * 0.3, z0, z1, 0, h),
                    jitter(rng, st.foliage_color, 0.1),
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
                    jitter(rng, st.terrain_color, 0.12),
                    0.0,
                ),
            )
        r = rng.uniform()
        if r < 0.15:  # a guard rail: two steel bands on short posts
            rail = Obj(
                "guard rail",
                self.side_quad(o, z0, z1, 0.45, 0.8),
                jitter(rng, (170, 172, 175), 0.1),
                (z0 + z1) / 2,
            )
            rail.details.append((self.side_quad(o, z0, z1, 0.6, 0.65), (110, 112, 115)))
            out.append(rail)
        elif r < 0.55:
            h = rng.uniform(0.8, 2.6)
            wall = Obj(
                "wall",
                self.side_quad(o, z0, z1, 0, h),
                jitter(rng, st.wall_color, 0.1),
                (z0 + z1) / 2,
            )
            wall.details.append(
                (self.side_quad(o, z0, z1, h - 0.15, h), mix(wall.color, (255, 255, 255), 0.3))
            )
            out.append(wall)
        else:
            h = rng.uniform(1.0, 2.2)
            color = jitter(rng, (120, 110, 95) if rng.uniform() < 0.5 else (90, 100, 95), 0.2)
            fence = Obj("fence", self.side_quad(o, z0, z1, 0, h), color, (z0 + z1) / 2)
            post = mix(color, (0, 0, 0), 0.4)
            z = z0
            while z < z1:
                fence.details.append((self.side_quad(o, z, z + 0.12, 0, h), post))
                z += rng.uniform(0.25, 2.5) if z < 40 else 3.0
            fence.details.append((self.side_quad(o, z0, z1, h - 0.1, h), post))
            out.append(fence)
        return out

    def _bridge(self, z: float) -> None:
        """A road or rail bridge across the street, between the building lines."""
        rng = self.rng
        x0, x1 = self.outer(-1), self.outer(1)
        y0 = rng.uniform(4.5, 6.5)
        color = jitter(self.rng, self.style.wall_color, 0.15)
        deck = Obj(
            "bridge",
            self.front(z, [(x0, y0), (x1, y0), (x1, y0 + rng.uniform(1.2, 2.5)), (x0, y0 + 1.2)]),
            color,
            z,
        )
        deck.details.append(
            (
                self.front_rect(z, x0, x1, y0, y0 + 0.25),
                mix(color, (0, 0, 0), 0.35),
            )
        )
        parts = [deck]
        for x in (self.edge(-1) - 0.8, self.edge(1) + 0.8):
            parts.append(
                Obj(
                    "bridge",
                    self.front_rect(z, x - 0.4, x + 0.4, 0, y0),
                    mix(color, (0, 0, 0), 0.15),
                    z,
                )
            )
        self.add_street(z, parts)
        self.shadows.append(self.ground_quad(x0, x1, z - 1.5, z + 3))

    def _hood(self) -> None:
        rng, cam = self.rng, self.cam
        W, H = cam.width, cam.height
        top = H * (1 - rng.uniform(0.04, 0.17))
        bulge = H * rng.uniform(0.01, 0.07)
        xs = np.linspace(-0.02 * W, 1.02 * W, 17)
        t = (xs - W / 2) / (W / 2)
        ys = np.minimum(top + bulge * t**2, H - 1)  # a low top and a big bulge: corners in frame
        pts = [(round(x), round(y)) for x, y in zip(xs, ys, strict=True)]
        pts += [(int(1.02 * W), H + 2), (int(-0.02 * W), H + 2)]
        paint = jitter(rng, (40, 42, 48), 0.3)
        hood = Obj("ego vehicle", pts, paint, 1.0)
        # reflection of the sky along the hood's leading edge
        refl = [(x, y + 2 + H * 0.01) for x, y in pts[:17]]
        refl += [(x, y + H * 0.04) for x, y in reversed(pts[:17])]
        hood.details.append(
            ([(int(x), int(y)) for x, y in refl], mix(paint, (200, 200, 210), 0.25))
        )
        self.objects.append(hood)
