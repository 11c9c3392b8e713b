"""Synthetic AR scenes: a room seen by a hand-held camera, with tables, objects, people and hands.

Classes (``SYNTHETIC_CLASSES``, label value = position):
0 background (ceiling, windows, posters), 1 floor, 2 wall, 3 table, 4 person (head to toe,
clothes included), 5 hand (the AR user's own hand and forearm, entering from an image edge),
6 object (boxes, cups, bottles, cans, balls on tables or the floor).

Every pixel gets a class: masks carry no ignore band, so boundary metrics see exact edges.
``SYNTHETIC_IGNORE_INDEX`` (255) is still declared, for padding in augmentation. A scene is a
pure function of its random generator: same seed, same pixels. Drawing order is far to near
(painter's algorithm on depth), shadows fall before their casters are drawn, and the camera
look (exposure, white balance, light gradient, vignette, blur, sensor noise) comes last.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import cv2
import numpy as np

from edgekd.data.figures import draw_hand, draw_person, sample_hand_pose
from edgekd.data.geometry import Camera, sample_camera
from edgekd.data.objects import (Light, Table, cast_shadow, draw_box, draw_round, draw_table, object_color,
                                 sample_table)
from edgekd.data.shapes import SHIFT, warp_quad
from edgekd.data.textures import add_grain, choose, floor_texture, jitter, modulate, poster_texture, wall_paint, window_texture

SYNTHETIC_CLASSES = ("background", "floor", "wall", "table", "person", "hand", "object")
BACKGROUND, FLOOR, WALL, TABLE, PERSON, HAND, OBJECT = range(len(SYNTHETIC_CLASSES))
SYNTHETIC_IGNORE_INDEX = 255
SYNTHETIC_PALETTE = ((0, 0, 0), (128, 64, 128), (190, 190, 170), (160, 100, 40), (220, 20, 60), (255, 200, 120), (0, 120, 255))


@dataclass(frozen=True)
class Room:
    left: float  # distance to the left wall (metres)
    right: float
    depth: float  # distance to the back wall
    ceiling: float


@dataclass(frozen=True)
class Look:
    """The camera's rendering of the scene (applied last, per frame in sequences)."""

    gain: float
    white_balance: tuple[float, float, float]
    ramp_direction: tuple[float, float]
    ramp: float
    vignette: float
    blur: float
    noise: float


def sample_look(rng: np.random.Generator) -> Look:
    angle = rng.uniform(0, 2 * np.pi)
    return Look(
        gain=rng.uniform(0.65, 1.25), white_balance=tuple(1 + rng.uniform(-0.07, 0.07, 3)),
        ramp_direction=(float(np.cos(angle)), float(np.sin(angle))), ramp=rng.uniform(0, 0.3),
        vignette=rng.uniform(0, 0.35), blur=rng.uniform(0.0, 1.0) if rng.random() < 0.5 else 0.0,
        noise=rng.uniform(1.0, 6.0),
    )


@lru_cache(maxsize=8)
def _grids(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ys = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    xs = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    return xs, ys, (xs * xs + ys * ys) / 2


def apply_look(image: np.ndarray, look: Look, rng: np.random.Generator, gain_scale: float = 1.0) -> np.ndarray:
    """Exposure, white balance, light gradient, vignette, optional blur and sensor noise -> uint8."""
    h, w = image.shape[:2]
    xs, ys, r2 = _grids(h, w)
    dx, dy = look.ramp_direction
    shading = (1 + look.ramp * (xs * dx + ys * dy)) * (1 - look.vignette * r2)
    shade3 = cv2.cvtColor(shading, cv2.COLOR_GRAY2RGB)
    gains = np.float32(look.gain * gain_scale) * np.asarray(look.white_balance, np.float32)
    out = cv2.multiply(image, cv2.multiply(shade3, (*(float(g) for g in gains), 0.0)), dtype=cv2.CV_8U)
    if look.blur > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), look.blur)
    return add_grain(out, rng, look.noise * 1.732)  # uniform noise of std look.noise


def _fill(image, mask, poly, color, label) -> None:
    if poly is not None:
        pts = [np.round(poly * (1 << SHIFT)).astype(np.int32)]
        cv2.fillPoly(image, pts, color, cv2.LINE_8, SHIFT)
        cv2.fillPoly(mask, pts, label, cv2.LINE_8, SHIFT)


def draw_room(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, cam: Camera, room: Room) -> None:
    """Ceiling, three painted walls with skirting, a textured floor, windows and posters."""
    lx, rx, d, c, zn = -room.left, room.right, room.depth, room.ceiling, 0.01
    paint = wall_paint(rng)
    _fill(image, mask, cam.polygon([(lx, c, zn), (rx, c, zn), (rx, c, d), (lx, c, d)]), jitter(rng, (235, 235, 230), 15), BACKGROUND)
    for x, k in ((lx, rng.uniform(0.8, 1.05)), (rx, rng.uniform(0.8, 1.05))):
        _fill(image, mask, cam.polygon([(x, 0, zn), (x, c, zn), (x, c, d), (x, 0, d)]), tuple(v * k for v in paint), WALL)
    _fill(image, mask, cam.polygon([(lx, 0, d), (rx, 0, d), (rx, c, d), (lx, c, d)]), paint, WALL)
    image[:] = modulate(image, rng, 0.07, 0, cells=3)  # grain comes with the sensor noise
    skirting, sk = jitter(rng, (240, 240, 235) if rng.random() < 0.6 else (90, 60, 40), 10), rng.uniform(0.05, 0.12)
    for quad in ([(lx, 0, zn), (lx, sk, zn), (lx, sk, d), (lx, 0, d)], [(rx, 0, zn), (rx, sk, zn), (rx, sk, d), (rx, 0, d)],
                 [(lx, 0, d), (rx, 0, d), (rx, sk, d), (lx, sk, d)]):
        _fill(image, mask, cam.polygon(quad), skirting, WALL)
    near, ppm = 0.4, 24.0
    tex = floor_texture(rng, int((d - near) * ppm), int((rx - lx) * ppm), ppm)
    quad = cam.project(np.array([(lx, 0, d), (rx, 0, d), (rx, 0, near), (lx, 0, near)]))
    warp_quad(image, mask, tex, quad, FLOOR, clip_poly=cam.polygon([(lx, 0, zn), (rx, 0, zn), (rx, 0, d), (lx, 0, d)]))
    _decorate(image, mask, rng, cam, room)


def _decorate(image, mask, rng, cam: Camera, room: Room) -> None:
    """Windows and posters (class background) on the back and side walls."""
    lx, rx, d = -room.left, room.right, room.depth
    for wall in ["back"] * int(rng.integers(0, 3)) + ["left"] * int(rng.integers(0, 2)) + ["right"] * int(rng.integers(0, 2)):
        window = rng.random() < 0.4
        width, height = (rng.uniform(0.5, 1.4), rng.uniform(0.8, 1.3)) if window else (rng.uniform(0.4, 0.9), rng.uniform(0.5, 1.0))
        y0 = rng.uniform(0.9, 1.3)
        y1 = min(y0 + height, room.ceiling - 0.1)
        if wall == "back":
            x0 = rng.uniform(lx + 0.1, max(lx + 0.1, rx - width - 0.1))
            quad = [(x0, y1, d), (x0 + width, y1, d), (x0 + width, y0, d), (x0, y0, d)]
        else:
            z0 = rng.uniform(1.5, max(1.5, d - width - 0.3))
            x, za, zb = (lx, z0, z0 + width) if wall == "left" else (rx, z0 + width, z0)
            quad = [(x, y1, za), (x, y1, zb), (x, y0, zb), (x, y0, za)]
        tex = window_texture(rng) if window else poster_texture(rng)
        if np.all(cam.depth(np.array(quad)) > 0.2):
            warp_quad(image, mask, tex, cam.project(np.array(quad)), BACKGROUND)


def _sample_light(rng: np.random.Generator) -> Light:
    a, length = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.8)
    sx, sy = np.cos(a), -abs(np.sin(a)) - 0.3
    norm = float(np.hypot(sx, sy))
    return Light((float(np.cos(a) * length), float(np.sin(a) * length)), (sx / norm, sy / norm), rng.uniform(0.25, 0.6))


def _scene_entities(rng, cam: Camera, room: Room, light: Light) -> list[tuple[float, Callable]]:
    """(depth, draw(image, mask)) for the table, objects and people; drawn far to near."""
    lx, rx = -room.left, room.right
    items: list[tuple[float, Callable]] = []
    table: Table | None = None
    if rng.random() < 0.8:
        table = sample_table(rng, (lx, rx), (1.2, min(room.depth - 1.0, 4.0)))
        items.append((table.z, lambda im, m, t=table: draw_table(im, m, rng, cam, t, light, TABLE)))
        for _ in range(int(rng.integers(0, 4))):
            x = table.x + rng.uniform(-0.42, 0.42) * table.width
            z = table.z + rng.uniform(-0.35, 0.35) * table.depth
            items.append((min(z, table.z - 1e-3), _object(rng, cam, light, (x, table.height, z), small=True)))
    for _ in range(int(rng.integers(0, 3))):
        x, z = rng.uniform(lx + 0.4, rx - 0.4), rng.uniform(1.0, room.depth - 0.4)
        items.append((z, _object(rng, cam, light, (x, 0.0, z), small=False)))
    for _ in range(choose(rng, (0, 1, 2), (0.3, 0.5, 0.2))):
        x, z, tall = rng.uniform(lx + 0.3, rx - 0.3), rng.uniform(1.5, room.depth - 0.4), rng.uniform(1.5, 1.9)
        items.append((z, lambda im, m, x=x, z=z, tall=tall: _person(im, m, rng, cam, light, x, z, tall)))
    items.sort(key=lambda item: -item[0])
    return items


def _object(rng, cam: Camera, light: Light, base, small: bool) -> Callable:
    kind = choose(rng, ("box", "cup", "bottle", "can", "ball") if small else ("box", "box", "ball"))
    color = object_color(rng, kind)
    if kind == "box":
        k = 1.0 if small else 2.5
        size = tuple(rng.uniform(0.08, 0.3, 3) * k)
        return lambda im, m: draw_box(im, m, rng, cam, base, size, color, light, OBJECT)
    if kind == "cup":
        radius, height = rng.uniform(0.035, 0.05), rng.uniform(0.08, 0.12)
    elif kind == "bottle":
        radius, height = rng.uniform(0.03, 0.045), rng.uniform(0.2, 0.32)
    elif kind == "can":
        radius, height = 0.033, 0.12
    else:
        radius, height = rng.uniform(0.04, 0.1) * (1 if small else 2), 0.0
    return lambda im, m: draw_round(im, m, rng, cam, base, radius, height, kind, color, light, OBJECT)


def _person(image, mask, rng, cam: Camera, light: Light, x: float, z: float, tall: float) -> None:
    ring = np.array([(x + 0.3 * np.cos(a), 0.0, z + 0.2 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)])
    cast_shadow(image, cam, light, ring, 0.4)
    foot, head = cam.project(np.array([(x, 0.0, z), (x, tall, z)]))
    draw_person(image, mask, rng, (float(foot[0]), float(foot[1])), float(np.hypot(*(foot - head))), PERSON, light.screen)


def render_layers(rng: np.random.Generator, size: tuple[int, int], *, hands: bool = True,
                  view: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The lit scene before the camera look: RGB uint8 H×W×3 and its uint8 label mask.

    ``view`` (H, W): the camera is that of a ``view``-sized frame centred in a larger ``size``
    canvas (sequences crop moving frames out of it); default: the canvas is the frame.
    """
    h, w = size
    image, mask = np.zeros((h, w, 3), np.uint8), np.zeros((h, w), np.uint8)
    vh, vw = view or size
    cam = sample_camera(rng, (vh, vw), ((w - vw) / 2, (h - vh) / 2))
    room = Room(rng.uniform(1.5, 3.5), rng.uniform(1.5, 3.5), rng.uniform(4.0, 9.0), rng.uniform(2.4, 3.0))
    light = _sample_light(rng)
    draw_room(image, mask, rng, cam, room)
    for _, draw in _scene_entities(rng, cam, room, light):
        draw(image, mask)
    if hands:
        for _ in range(choose(rng, (0, 1, 2), (0.35, 0.45, 0.2))):
            draw_hand(image, mask, rng, sample_hand_pose(rng, size), HAND, light.screen)
    return image, mask


def render_scene(seed: int | np.random.Generator, size: tuple[int, int] = (240, 320)) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic frame in memory: (RGB uint8 H×W×3, uint8 H×W labels of ``SYNTHETIC_CLASSES``)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    image, mask = render_layers(rng, size)
    return apply_look(image, sample_look(rng), rng), mask
