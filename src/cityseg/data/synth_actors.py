"""Things on the street: vehicles, two-wheelers, people, trees, poles, signs and bins."""

from __future__ import annotations

import functools
import math

import numpy as np

from cityseg.data.synth_geometry import Obj, Point, SceneCanvas, jitter, mix

# A person's proportions, as fractions of their height: half shoulder width, hip and neck
# height, head radius (`_person_pts` draws the figure, `_person` dresses it on the same lines).
SHOULDER, HIP, NECK, HEAD = 0.13, 0.52, 0.84, 0.065
# Car paints: silver, black, grey, red, blue, white, olive.
CAR_PAINTS: tuple[tuple[int, int, int], ...] = (
    (200, 200, 205),
    (30, 30, 35),
    (110, 110, 115),
    (150, 20, 25),
    (20, 40, 110),
    (230, 230, 225),
    (70, 80, 60),
)
# Tyres and their hubs (steel or alloy), seen on vehicles' sides and under their rears.
TYRE, HUB = (22, 22, 24), (112, 114, 120)
ANGLES = np.linspace(0, 2 * np.pi, 14, endpoint=False)  # a wheel's outline, 14 points

# Paint of lamp posts and sign poles: galvanised grey, black, dark green, light grey.
POLE_PAINTS: tuple[tuple[int, int, int], ...] = (
    (120, 120, 118),
    (45, 47, 46),
    (40, 62, 48),
    (150, 152, 150),
)
# Board and lettering of the signs fixed to facades: white, blue, black, yellow, red, green.
WALL_SIGNS: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...] = (
    ((235, 235, 230), (30, 30, 35)),
    ((30, 60, 150), (235, 235, 240)),
    ((22, 24, 28), (230, 230, 225)),
    ((225, 185, 30), (25, 25, 25)),
    ((150, 30, 35), (235, 225, 210)),
    ((30, 100, 60), (235, 235, 230)),
)

# Clothes on real streets: mostly black, navy, greys, browns, olive and beige.
CLOTHES: tuple[tuple[int, int, int], ...] = (
    (25, 25, 28),
    (35, 40, 60),
    (60, 62, 68),
    (105, 105, 110),
    (80, 60, 45),
    (70, 72, 50),
    (160, 140, 110),
    (40, 45, 60),
    (30, 30, 30),
    (90, 80, 70),
    (60, 70, 110),
)


class StreetActors(SceneCanvas):
    """Places traffic, pedestrians and street furniture on the canvas's street layout."""

    def _tree_parts(self, x: float, z: float) -> list[Obj]:
        rng, st = self.rng, self.style
        g = self._group()
        trunk_h = rng.uniform(1.8, 3.2)
        r = rng.uniform(1.5, 3.8)
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
            jitter(rng, (85, 65, 45), 0.2),
            z,
            g,
        )
        crown = Obj(
            "vegetation",
            self._blob(x, trunk_h + r, z, r, r * rng.uniform(0.9, 1.4)),
            jitter(rng, st.foliage_color, 0.12),
            z,
            g,
            crown=True,
        )
        crown.details.append(
            (
                self._blob(x - r * 0.25, trunk_h + r * 1.15, z, r * 0.5, r * 0.5, 8),
                mix(crown.color, (255, 255, 200), 0.15),
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
            if r < 0.2 + 0.55 * st.vegetation:
                self.add_street(z, self._tree_parts(x, z))
            elif r < 0.75:
                self.add_street(z, self._pole(x, z, side))
            else:
                self.add_street(
                    z, self._bin(e + side * rng.uniform(0.6, self.side_w[side] - 0.5), z)
                )
            z += rng.uniform(3, 10)  # dense furniture: `object` is 1.8 % of Cityscapes pixels

    def _pole(self, x: float, z: float, side: int) -> list[Obj]:
        rng = self.rng
        kind = rng.choice(["lamp", "sign", "light"], p=[0.4, 0.35, 0.25])
        grey = jitter(rng, POLE_PAINTS[int(rng.integers(len(POLE_PAINTS)))], 0.2)
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
            parts.append(Obj("pole", self.front_rect(z, a, b, h - 0.12, h), grey, z))
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
            sign = Obj("traffic sign", self.front(z - 0.05, pts), jitter(rng, color, 0.1), z - 0.05)
            sign.details.append(
                (
                    self.front(
                        z - 0.05, [(x + (px - x) * 0.6, y + (py - y) * 0.6) for px, py in pts]
                    ),
                    jitter(rng, inner, 0.05),
                )
            )
            parts.append(sign)
        else:
            bw, bh = 0.18, 0.5
            y = h - 0.05
            box = Obj(
                "traffic light",
                self.front_rect(z - 0.05, x - bw, x + bw, y - bh * 2, y),
                jitter(rng, (35, 35, 30), 0.3),
                z - 0.05,
            )
            on = int(rng.integers(0, 3))
            for k, c in enumerate([(230, 40, 30), (240, 180, 20), (40, 220, 90)]):
                cy = y - bh * 0.33 - k * bh * 0.66
                col = c if k == on else mix(c, (30, 30, 30), 0.8)
                box.details.append(
                    (
                        self.front_rect(z - 0.05, x - 0.1, x + 0.1, cy - 0.1, cy + 0.1),
                        col,
                    )
                )
            parts.append(box)
        return parts

    def wall_signs(self, side: int, x: float, z0: float, z1: float) -> None:
        """Signs fixed to a facade (the plane X = x, from z0 to z1) above head height: plates
        flat on the wall (street names, directions) and blade signs standing out over the
        sidewalk at right angles to it.

        Real streets carry many: CamVid labels them SignSymbol, and nearly half of its real
        `object` pixels were called construction by models that had only seen signs on poles.
        """
        rng = self.rng
        z = z0 + rng.uniform(1.0, 8.0)
        while z < z1 - 1.5 and self.cam.scale(z) >= 4:  # beyond, a sign is under 2 pixels
            board, ink = WALL_SIGNS[int(rng.integers(len(WALL_SIGNS)))]
            board = jitter(rng, board, 0.08)
            y = rng.uniform(2.4, 4.2)
            if rng.uniform() < 0.5:  # a plate on the wall
                w, h = rng.uniform(0.5, 1.4), rng.uniform(0.25, 0.8)
                xs = x - side * 0.06
                sign = Obj("traffic sign", self.side_quad(xs, z, z + w, y, y + h), board, z)
                inner = self.side_quad(xs, z + 0.15 * w, z + 0.85 * w, y + 0.3 * h, y + 0.7 * h)
            else:  # a blade sign on a bracket, facing the camera
                w, h = rng.uniform(0.45, 0.9), rng.uniform(0.4, 0.9)
                a, b = sorted((x - side * 0.15, x - side * (0.15 + w)))
                sign = Obj("traffic sign", self.front_rect(z, a, b, y, y + h), board, z)
                da, dh = 0.15 * (b - a), 0.3 * h
                inner = self.front_rect(z, a + da, b - da, y + dh, y + h - dh)
            sign.details.append((inner, jitter(rng, ink, 0.05)))
            self.add_street(z, [sign])
            z += rng.uniform(5.0, 18.0)

    def _bin(self, x: float, z: float) -> list[Obj]:
        rng = self.rng
        h, w = rng.uniform(0.8, 1.2), rng.uniform(0.25, 0.4)
        color = jitter(
            rng, [(60, 90, 60), (140, 140, 140), (170, 120, 40)][int(rng.integers(3))], 0.2
        )
        # bins and boxes are `static`; prams, carts and parked scooters are `dynamic`
        label = "static" if rng.uniform() < 0.7 else "dynamic"
        return [Obj(label, self.front_rect(z, x - w, x + w, 0, h), color, z)]

    # -- vehicles and people -----------------------------------------------------------------
    def _traffic(self) -> None:
        rng, st = self.rng, self.style
        two_way = rng.uniform() < 0.6  # lanes left of the ego lane carry oncoming traffic
        for k in range(self.lanes):
            xc = self.lanes_l + (k + 0.5) * self.lane_w
            oncoming = two_way and k < self.ego_lane
            z = rng.uniform(6, 20)
            while z < 130:
                if rng.uniform() < 0.2 + 0.5 * st.traffic:
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
        if rng.uniform() < 0.15 + 0.25 * st.traffic:  # a car crossing ahead, at a junction
            z = rng.uniform(12, 45)
            x = rng.uniform(self.lanes_l + 1.0, self.lanes_r - 1.0)
            self.add_street(z, self._profile_car(x, z, 1 if rng.uniform() < 0.5 else -1))
        for side in (-1, 1):  # kerbside parking: cars, vans and bikes along the curb
            if not self.kerb.get(side):
                continue
            x = self.lanes_r + 1.1 if side > 0 else self.lanes_l - 1.1
            z = rng.uniform(5, 14)
            end = rng.uniform(30, 90)
            while z < end:
                kind = str(rng.choice(["car", "van", "bicycle"], p=[0.8, 0.15, 0.05]))
                if kind == "bicycle":
                    self.add_street(z, self._two_wheeler(x + side * 0.6, z, "bicycle"))
                else:
                    self.add_street(z, self._vehicle(x + rng.uniform(-0.2, 0.2), z, kind))
                z += rng.uniform(5.0, 9.0) + (rng.uniform(5, 20) if rng.uniform() < 0.2 else 0)
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
        double = False  # a double-decker bus, as on British streets
        if kind == "van":  # a panel van: labelled car in Cityscapes, tall and boxy
            kind = "car"
            w, h, length = rng.uniform(1.9, 2.1), rng.uniform(1.9, 2.5), rng.uniform(4.8, 6.0)
            paint = jitter(
                rng, [(235, 235, 235), (200, 200, 205), (40, 60, 120)][int(rng.integers(3))], 0.08
            )
            return self._box_vehicle(x, z, w, h, length, paint, g)
        if kind == "car":
            w, h, length = rng.uniform(1.7, 2.0), rng.uniform(1.35, 1.65), rng.uniform(4.0, 4.8)
            paint = jitter(rng, CAR_PAINTS[int(rng.integers(len(CAR_PAINTS)))], 0.1)
        elif kind in ("truck", "caravan", "trailer"):
            w, h, length = rng.uniform(2.3, 2.55), rng.uniform(2.8, 3.8), rng.uniform(6, 10)
            paint = jitter(
                rng,
                [(220, 220, 220), (180, 40, 30), (40, 80, 140), (230, 200, 60)][
                    int(rng.integers(4))
                ],
                0.1,
            )
        else:  # bus
            double = rng.uniform() < 0.5
            h = rng.uniform(4.2, 4.45) if double else rng.uniform(3.0, 3.3)
            w, length = 2.55, rng.uniform(11, 13)
            paint = jitter(
                rng,
                [(240, 200, 30), (200, 30, 40), (230, 230, 230), (40, 120, 180)][
                    int(rng.integers(4))
                ],
                0.08,
            )
        xl, r = x - w / 2, x + w / 2
        parts: list[Obj] = []
        glass = self._glass()
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
                        glass,
                    )
                )
            elif kind == "bus":
                for y0, y1 in ((0.3, 0.47), (0.64, 0.88)) if double else ((0.5, 0.85),):
                    side.details.append(
                        (self.side_quad(sx, z + 0.5, z + length - 0.5, h * y0, h * y1), glass)
                    )
            parts.append(side)
            axles: tuple[float, ...]
            if kind == "car":
                axles, radius = (z + 0.8, z + length - 0.9), 0.32
            elif kind == "bus":
                axles, radius = (z + 3.0, z + length - 2.6), 0.5
            else:
                axles, radius = (z + 1.3, z + 2.6, z + length - 1.4), 0.48
            parts.extend(self._wheels(kind, sx, axles, radius, g))
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
        tyres = (
            self._rear_tyres(xl, r, 0.08, 0.25, 0.22)
            if kind == "car"
            else self._rear_tyres(xl, r, 0.14, 0.32, 0.28)
        )
        rear.details.extend((self.front(z, t), TYRE) for t in tyres)
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
                    glass,
                )
            )
            for lx in (xl + 0.08, r - 0.33):
                rear.details.append(
                    (
                        self.front_rect(z, lx, lx + 0.25, body - 0.22, body - 0.08),
                        (235, 230, 200) if oncoming else (190, 25, 25),
                    )
                )
            rear.details.append(
                (
                    self.front_rect(z, x - 0.26, x + 0.26, 0.3, 0.42),
                    (225, 225, 215),
                )
            )
            rear.details.append(
                (
                    self.front_rect(z, xl + 0.35, r - 0.35, 0.05, 0.14),
                    dark,
                )
            )
        elif kind == "bus":
            self._bus_face(rear, x, z, w, h, paint, glass, double=double, oncoming=oncoming)
        else:
            rear.details.append(
                (
                    self.front_rect(z, xl + 0.1, r - 0.1, h * 0.15, h * 0.95),
                    mix(paint, (0, 0, 0), 0.15),
                )
            )
            self._lamps_and_plate(rear, x, z, w, oncoming)
        parts.append(rear)
        s0, s1 = sorted((xl - 0.3 * self.sun_side, r + 0.6 * self.sun_side))
        self.shadows.append(self.ground_quad(s0, s1, z - 0.2, z + length))
        return parts

    def _bus_face(
        self,
        face: Obj,
        x: float,
        z: float,
        w: float,
        h: float,
        paint: tuple[int, int, int],
        glass: tuple[int, int, int],
        *,
        double: bool,
        oncoming: bool,
    ) -> None:
        """What a bus shows the camera: its rear (a livery band, an advertising panel under
        the top deck's window, lamps, plate and bumper) or its front (a tall windscreen under
        the destination display). Real buses seen close up are mostly such painted panels;
        a plain block of paint with one window reads as a wall. No random draw."""
        xl, r = x - w / 2, x + w / 2
        rect = functools.partial(self.front_rect, z)  # (x0, x1, y0, y1) in metres

        livery = (
            mix(paint, (245, 245, 240), 0.7) if sum(paint) < 450 else mix(paint, (20, 40, 120), 0.7)
        )
        face.details.append((rect(xl, r, 0.3, 0.32 * h), livery))
        if oncoming:  # the front: windscreen, destination display above it
            face.details.append((rect(xl + 0.12, r - 0.12, 0.36 * h, 0.86 * h), glass))
            face.details.append((rect(xl + 0.3, r - 0.3, 0.88 * h, 0.96 * h), (20, 20, 22)))
            face.details.append((rect(x - 0.6, x + 0.6, 0.905 * h, 0.94 * h), (250, 170, 40)))
        else:  # the rear: a window high up, an advertising panel or engine grille under it
            top = 0.66 if double else 0.55
            face.details.append((rect(xl + 0.2, r - 0.2, h * top, h * 0.9), glass))
            panel = mix(livery, (255, 255, 255), 0.5)
            face.details.append((rect(xl + 0.25, r - 0.25, h * 0.36, h * (top - 0.06)), panel))
            for k in range(3):  # its lettering
                y = h * (0.4 + k * (top - 0.48) / 3)
                face.details.append((rect(xl + 0.45, r - 0.45 - 0.3 * k, y, y + 0.06 * h), paint))
        self._lamps_and_plate(face, x, z, w, oncoming)

    def _lamps_and_plate(self, face: Obj, x: float, z: float, w: float, oncoming: bool) -> None:
        """Lamps at a large vehicle's lower corners, its number plate and bumper."""
        xl, r = x - w / 2, x + w / 2
        rect = functools.partial(self.front_rect, z)  # (x0, x1, y0, y1) in metres

        lamp = (235, 230, 200) if oncoming else (190, 25, 25)
        for a in (xl + 0.06, r - 0.24):
            face.details.append((rect(a, a + 0.18, 0.45, 1.05), lamp))
        face.details.append((rect(xl + 0.1, r - 0.1, 0.2, 0.38), (28, 30, 34)))  # bumper
        plate = (235, 235, 225) if oncoming else (230, 195, 30)  # UK: white front, yellow rear
        face.details.append((rect(x - 0.26, x + 0.26, 0.45, 0.57), plate))

    def _profile_car(self, x: float, z: float, facing: int) -> list[Obj]:
        """A car seen whole from its side, centred at x across the view in the plane Z = z (in
        a side street, waiting at the junction): body, windows and both wheels, its bonnet
        toward `facing` (+1: the camera's right). Real streets show cars this way at every
        junction; along the street they show only rears and fronts."""
        rng = self.rng
        g = self._group()
        length, h = rng.uniform(4.0, 4.8), rng.uniform(1.35, 1.6)
        body = 0.5 * h
        paint = jitter(rng, CAR_PAINTS[int(rng.integers(len(CAR_PAINTS)))], 0.1)
        glass = self._glass()

        def at(u: float) -> float:  # distance u (0 rear .. 1 front) along the car, as X
            return x + facing * (u - 0.5) * length

        outline = [
            (at(0.0), 0.12),
            (at(1.0), 0.12),
            (at(1.0), body * 0.9),
            (at(0.97), body),
            (at(0.72), body * 1.05),
            (at(0.6), h),
            (at(0.22), h),
            (at(0.08), body * 1.05),
            (at(0.0), body),
        ]
        car = Obj("car", self.front(z, outline), paint, z, g)
        car.details.append(
            (
                self.front(
                    z,
                    [
                        (at(0.12), body * 1.1),
                        (at(0.68), body * 1.1),
                        (at(0.58), h - 0.07),
                        (at(0.24), h - 0.07),
                    ],
                ),
                glass,
            )
        )
        car.details.append(  # the sill's shadow line
            (
                self.front_rect(z, at(0.05), at(0.95), 0.12, 0.2),
                mix(paint, (0, 0, 0), 0.4),
            )
        )
        parts = [car]
        for u in (0.18, 0.82):
            xc = at(u)
            parts.append(self._wheel("car", (xc, z), True, z - 0.01, 0.32, g))
        return parts

    def _glass(self) -> tuple[int, int, int]:
        """Vehicle window glass: dark, or up to two thirds the sky it reflects (overcast
        streets show cars' rear windows nearly as bright as the sky)."""
        dark = jitter(self.rng, (42, 50, 62), 0.15)
        return mix(dark, self.style.sky_color, self.rng.uniform(0.0, 0.65))

    def _wheels(
        self, kind: str, sx: float, axles: tuple[float, ...], radius: float, g: int
    ) -> list[Obj]:
        """Tyres with grey hubs on a vehicle's visible side (the plane X = sx), one per axle.

        Real cars are told from the road below them by their wheels: dark discs standing on
        the asphalt under the body. They are parts of the vehicle (its label and instance),
        drawn over its side. No random draw: a scene with wheels is the same scene without.
        """
        return [self._wheel(kind, (sx, zc), False, zc - radius, radius, g) for zc in axles]

    def _wheel(
        self,
        kind: str,
        at: tuple[float, float],
        across: bool,
        depth: float,
        radius: float,
        g: int,
    ) -> Obj:
        """One tyre with its grey hub standing on the road at ground point `at` (X, Z): in the
        plane Z = const for a car seen side on (`across`), else in the plane X = const of a
        vehicle's side seen along the street."""
        x, z = at
        uv = self.cam.uv

        def ring(scale: float) -> list[Point]:
            offsets = [
                (scale * radius * math.cos(a), radius * (1 + scale * math.sin(a))) for a in ANGLES
            ]
            if across:
                return [uv(x + u, y, z) for u, y in offsets]
            return [uv(x, y, z + u) for u, y in offsets]

        wheel = Obj(kind, ring(1.0), TYRE, depth, g)
        wheel.details.append((ring(0.55), HUB))
        return wheel

    def _rear_tyres(
        self, xl: float, r: float, inset: float, width: float, top: float
    ) -> list[list[tuple[float, float]]]:
        """The two tyres seen under a vehicle's rear (or front), as paint on its face."""
        return [
            [(x0, 0.0), (x0 + width, 0.0), (x0 + width, top), (x0, top)]
            for x0 in (xl + inset, r - inset - width)
        ]

    def _box_vehicle(
        self,
        x: float,
        z: float,
        w: float,
        h: float,
        length: float,
        paint: tuple[int, int, int],
        g: int,
    ) -> list[Obj]:
        """A boxy vehicle (a van): side, rear with windows, lights and bumper."""
        xl, r = x - w / 2, x + w / 2
        glass = self._glass()
        parts: list[Obj] = []
        sx = xl if xl > 0 else (r if r < 0 else None)
        if sx is not None:
            side = Obj(
                "car",
                self.side_quad(sx, z, z + length, 0.15, h),
                mix(paint, (0, 0, 0), 0.25),
                z + length / 2,
                g,
            )
            side.details.append(
                (
                    self.side_quad(sx, z + length - 1.6, z + length - 0.3, h * 0.55, h * 0.9),
                    glass,
                )
            )
            parts.append(side)
            parts.extend(self._wheels("car", sx, (z + 0.9, z + length - 0.9), 0.34, g))
        rear = Obj(
            "car",
            self.front(z, [(xl + 0.1, 0), (r - 0.1, 0), (r, 0.3), (r, h), (xl, h), (xl, 0.3)]),
            paint,
            z,
            g,
        )
        rear.details.append(
            (
                self.front_rect(z, xl + 0.15, r - 0.15, h * 0.6, h * 0.92),
                glass,
            )
        )
        rear.details.append(
            (
                self.front_rect(z, x - 0.02, x + 0.02, 0.35, h * 0.95),
                mix(paint, (0, 0, 0), 0.4),
            )
        )
        for lx in (xl + 0.05, r - 0.25):
            rear.details.append(
                (
                    self.front_rect(z, lx, lx + 0.2, 0.5, 0.9),
                    (190, 25, 25),
                )
            )
        rear.details.append((self.front_rect(z, xl, r, 0.2, 0.4), (30, 30, 32)))
        rear.details.extend(
            (self.front(z, t), TYRE) for t in self._rear_tyres(xl, r, 0.15, 0.3, 0.2)
        )
        parts.append(rear)
        s0, s1 = sorted((xl - 0.3 * self.sun_side, r + 0.6 * self.sun_side))
        self.shadows.append(self.ground_quad(s0, s1, z - 0.2, z + length))
        return parts

    def _person_pts(
        self, x: float, h: float, stride: float, lean: float = 0.0
    ) -> tuple[list[tuple[float, float]], ...]:
        """Silhouette (body, torso, head, cap: the head's upper half, for hair or a hat) of a
        person of height h centred at x, in metres."""
        sw = h * SHOULDER  # half shoulder width
        hip = h * HIP
        neck = h * NECK
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
        r = h * HEAD
        cy = neck + r * 1.1

        def outline(angles: np.ndarray) -> list[tuple[float, float]]:  # the head's ellipse
            return [(x + lean + r * math.cos(a), cy + r * 1.2 * math.sin(a)) for a in angles]

        head = outline(np.linspace(0, 2 * np.pi, 10, endpoint=False))
        cap = outline(np.linspace(-0.2, np.pi + 0.2, 8))
        return body, torso, head, cap

    def _person(
        self, x: float, z: float, label: str = "person", base_y: float = 0.0, h: float | None = None
    ) -> list[Obj]:
        """A pedestrian (or a rider): legs, a shirt or a long coat, two arms, head and hair.

        Clothes are mostly dark and neutral, as on real streets in most seasons (bright random
        shirts made the synthetic people easy to find and nothing like the real ones); arms
        swing with the stride, and some carry a bag (labelled with the person, as in Cityscapes).
        """
        rng = self.rng
        g = self._group()
        h = h or rng.uniform(1.55, 1.95)
        stride = rng.uniform(0.0, 0.22)
        lean = rng.uniform(-0.05, 0.05)
        body, torso, head, cap = self._person_pts(x, h, stride, lean)

        def lift(pts: list[tuple[float, float]]) -> list[Point]:
            return self.front(z, [(px, py + base_y) for px, py in pts])

        trousers = jitter(rng, CLOTHES[int(rng.integers(len(CLOTHES)))], 0.2)
        coat = rng.uniform() < 0.45
        if rng.uniform() < 0.8:
            top = jitter(rng, CLOTHES[int(rng.integers(len(CLOTHES)))], 0.25)
        else:  # now and then a bright jacket or shirt
            r_, g_, b_ = (int(c) for c in rng.integers(40, 230, 3))
            top = (r_, g_, b_)
        ob = Obj(label, lift(body), trousers, z, g)
        sw, hip, neck = h * SHOULDER, h * HIP, h * NECK
        parts = [ob]
        if coat:  # its own polygon: below the hips a coat is wider than the legs
            hem = h * rng.uniform(0.28, 0.36)
            outline = [
                (x - sw * 0.95, hem),
                (x + sw * 0.95, hem),
                (x + sw * 0.9 + lean, neck - 0.06),
                (x - sw * 0.9 + lean, neck - 0.06),
            ]
            parts.append(Obj(label, lift(outline), top, z, g))
        else:
            ob.details.append((lift(torso), top))
        arm_w = h * 0.035
        for side in (-1, 1):
            swing = side * stride * rng.uniform(0.3, 0.9)
            sx, sy = x + side * (sw + arm_w * 0.3) + lean, neck - 0.07
            hx, hy = x + side * (sw + arm_w * 1.2) + swing, hip * rng.uniform(0.9, 1.0)
            arm = Obj(
                label,
                lift([(sx - arm_w, sy), (sx + arm_w, sy), (hx + arm_w, hy), (hx - arm_w, hy)]),
                mix(top, (0, 0, 0), 0.15),
                z - 0.01,
                g,
            )
            parts.append(arm)
        if rng.uniform() < 0.3:  # a bag at one hip
            side = 1 if rng.uniform() < 0.5 else -1
            bx = x + side * (sw + arm_w * 2.5)
            bw, by = rng.uniform(0.12, 0.2), hip * rng.uniform(0.75, 0.95)
            bag = jitter(rng, CLOTHES[int(rng.integers(len(CLOTHES)))], 0.3)
            parts.append(
                Obj(
                    label,
                    lift([(bx - bw, by - 0.3), (bx + bw, by - 0.3), (bx + bw, by), (bx - bw, by)]),
                    bag,
                    z - 0.02,
                    g,
                )
            )
        skin = jitter(
            rng, [(230, 190, 160), (190, 140, 110), (120, 85, 60)][int(rng.integers(3))], 0.1
        )
        hd = Obj(label, lift(head), skin, z, g)
        hairs = [(30, 25, 20), (70, 50, 30), (120, 90, 50), (90, 90, 90)]
        hair = jitter(rng, hairs[int(rng.integers(4))], 0.2)
        if rng.uniform() < 0.3:  # a hat or a hood in the coat's colour
            hair = top
        hd.details.append((lift(cap), hair))
        return [*parts, hd]

    def _two_wheeler(self, x: float, z: float, kind: str) -> list[Obj]:
        rng = self.rng
        g = self._group()
        moto = kind == "motorcycle"
        ww = 0.09 if not moto else 0.16
        wh = 0.68 if not moto else 0.65
        frame_c = jitter(rng, (60, 60, 70) if not moto else (30, 30, 30), 0.3)
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
                    self.front_rect(z, x - 0.1, x + 0.1, 0.55, 0.7),
                    (180, 30, 30),
                )
            )
        rider = self._person(x, z - 0.05, "rider", base_y=0.35, h=rng.uniform(1.35, 1.5))
        return [bike, *rider]

    def _people(self) -> None:
        rng, st = self.rng, self.style
        count = int(rng.poisson(4 + 16 * st.pedestrians))
        for _ in range(count):
            side = 1 if rng.uniform() < 0.5 else -1
            z = rng.uniform(4, 60)
            x = self.edge(side) + side * rng.uniform(0.6, self.side_w[side] - 0.3)
            # a third walk in twos or threes, side by side or one behind the other
            size = 1 if rng.uniform() < 0.65 else int(rng.integers(2, 4))
            away = -side if abs(x - self.edge(side)) > self.side_w[side] / 2 else side
            for k in range(size):
                dx, dz = (
                    (rng.uniform(0.5, 0.7) * k, rng.uniform(-0.3, 0.3))
                    if rng.uniform() < 0.6
                    else (rng.uniform(-0.2, 0.2), rng.uniform(0.8, 1.6) * k)
                )
                self.add_street(z + dz, self._person(x + away * dx, z + dz))
        if self.crossing is not None:
            for _ in range(int(rng.integers(0, 4))):
                z = self.crossing + rng.uniform(0.5, 3)
                self.add_street(z, self._person(rng.uniform(self.road_l, self.road_r), z))
