"""Tables and small objects (boxes, cups, bottles, cans, balls) placed in the synthetic rooms.

Each is drawn in true perspective from a ``Camera``, casts a soft shadow on what it stands on
(drawn before the object, so nothing in front of it is darkened), and is shaded per face or
across its width so that shape, not only colour, tells what it is.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgekd.data.geometry import Camera
from edgekd.data.shapes import Patch, bbox, soft_shadow, warp_quad
from edgekd.data.textures import WOODS, hsv_color, jitter, pick, wood_texture


@dataclass(frozen=True)
class Light:
    """Shadow offset on the ground per metre of height (x, z), screen gradient direction, darkness."""

    ground: tuple[float, float]
    screen: tuple[float, float]
    shadow: float


@dataclass(frozen=True)
class Table:
    x: float
    z: float
    width: float
    depth: float
    height: float
    color: tuple[float, float, float]


def sample_table(rng: np.random.Generator, walls_x: tuple[float, float], z_range: tuple[float, float]) -> Table:
    """A table between the side walls at ``walls_x`` (left, right), centred at a depth in ``z_range``."""
    width, depth = rng.uniform(0.8, 1.8), rng.uniform(0.5, 0.9)
    half = width / 2 + 0.1
    x = rng.uniform(walls_x[0] + half, max(walls_x[0] + half, walls_x[1] - half))
    return Table(x, rng.uniform(*z_range), width, depth, rng.uniform(0.68, 0.8), pick(rng, WOODS, 15))


def _shade(color, k: float) -> tuple[float, float, float]:
    return tuple(float(min(255.0, c * k)) for c in color)


def _rect(x0, x1, y0, y1, z) -> np.ndarray:
    return np.array([(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)], np.float64)


def cast_shadow(image, cam: Camera, light: Light, footprint: np.ndarray, height: float) -> None:
    """Darken the projection of a ground footprint (world points) pushed away from the light."""
    shifted = footprint + np.array([light.ground[0], 0.0, light.ground[1]]) * height
    points = np.concatenate([footprint, shifted])
    if np.any(cam.depth(points) < 0.1):
        return
    hull = cv2.convexHull(cam.project(points).astype(np.float32)).reshape(-1, 2)
    spread = cam.pixels_per_metre(footprint[:1]) * 0.05
    soft_shadow(image, hull, light.shadow, max(0.5, spread))


def draw_table(image, mask, rng, cam: Camera, t: Table, light: Light, label: int) -> None:
    x0, x1, z0, z1, top = t.x - t.width / 2, t.x + t.width / 2, t.z - t.depth / 2, t.z + t.depth / 2, t.height
    footprint = np.array([(x0, 0, z0), (x1, 0, z0), (x1, 0, z1), (x0, 0, z1)], np.float64)
    cast_shadow(image, cam, light, footprint, 0.25)
    corners = np.concatenate([footprint, footprint + (0, top, 0)])
    box = bbox(cam.project(corners), image.shape[:2])
    if box is None:
        return
    p = Patch(box)
    dark, leg, inset, apron = _shade(t.color, 0.7), 0.045, 0.05, 0.09
    legs = [(x, z) for z in (z1 - inset, z0 + inset) for x in (x0 + inset, x1 - inset)]  # back pair first
    for i, (lx, lz) in enumerate(legs):
        if i == 2:  # between the back and the front legs: side and front aprons
            if x0 > 0 or x1 < 0:
                xs = x0 if x0 > 0 else x1
                side = np.array([(xs, top - apron, z0), (xs, top - apron, z1), (xs, top, z1), (xs, top, z0)])
                p.poly(cam.project(side), _shade(dark, 0.85), label)
            p.poly(cam.project(_rect(x0, x1, top - apron, top, z0)), dark, label)
        p.poly(cam.project(_rect(lx - leg / 2, lx + leg / 2, 0.0, top - apron, lz - leg / 2)), _shade(dark, 0.9), label)
    p.texture(rng, 0.06, 5)
    p.commit(image, mask)
    top_quad = cam.project(np.array([(x0, top, z1), (x1, top, z1), (x1, top, z0), (x0, top, z0)]))
    warp_quad(image, mask, wood_texture(rng, 64, 128, t.color), top_quad, label)


def _box_faces(base, size, yaw) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(world corners, outward normal, shade) of the six faces of a yawed box."""
    sx, sy, sz = (s / 2 for s in size)
    c, s = np.cos(yaw), np.sin(yaw)
    ax, az = np.array([c, 0, s]) * sx, np.array([-s, 0, c]) * sz
    centre = np.asarray(base, np.float64) + (0, size[1] / 2, 0)
    up = np.array([0, sy, 0])
    faces = []
    for normal_axis, u, v, shade in ((ax, az, up, 0.62), (-ax, az, up, 0.62), (az, ax, up, 0.8), (-az, ax, up, 0.8), (up, ax, az, 1.0)):
        fc = centre + normal_axis
        faces.append((np.array([fc - u - v, fc + u - v, fc + u + v, fc - u + v]), normal_axis, shade))
    return faces


def draw_box(image, mask, rng, cam: Camera, base, size, color, light: Light, label: int) -> None:
    eye = np.array([0.0, cam.height, 0.0])
    all_faces = _box_faces(base, size, rng.uniform(-0.6, 0.6))
    faces = [(pts, sh) for pts, normal, sh in all_faces if np.dot(normal, eye - pts.mean(0)) > 0]
    footprint = all_faces[4][0] - (0, size[1], 0)
    cast_shadow(image, cam, light, footprint, size[1])
    projected = [cam.polygon(pts) for pts, _ in faces]
    box = bbox(np.concatenate([q for q in projected if q is not None]), image.shape[:2]) if any(q is not None for q in projected) else None
    if box is None:
        return
    p = Patch(box)
    for (pts, shade), q in zip(faces, projected):
        if q is not None:
            p.poly(q, _shade(color, shade), label)
    p.texture(rng, 0.05, 5)
    p.commit(image, mask)


def draw_round(image, mask, rng, cam: Camera, base, radius: float, height: float, kind: str, color,
               light: Light, label: int) -> None:
    """Cup, bottle, can (upright cylinders) or ball (``height`` ignored) standing on ``base``."""
    bx, by, bz = base
    ring = np.array([(bx + radius * np.cos(a), by, bz + radius * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)])
    cast_shadow(image, cam, light, ring, 2 * radius if kind == "ball" else height)
    if kind == "ball":
        centre = cam.project(np.array([(bx, by + radius, bz)]))[0]
        rp = radius * cam.pixels_per_metre((bx, by + radius, bz))
        box = bbox(np.array([centre - rp, centre + rp]), image.shape[:2])
        if box is None:
            return
        p = Patch(box)
        p.ellipse(centre, (rp, rp), 0, color, label)
        p.ellipse(centre - 0.35 * rp, (0.3 * rp, 0.3 * rp), 0, _shade(color, 1.25), label)
    else:
        p = _cylinder(image, cam, (bx, by, bz), radius, height, kind, color, label)
        if p is None:
            return
    p.texture(rng, 0.05, 5, light=light.screen, amount=0.25)
    p.commit(image, mask)


def _cylinder(image, cam: Camera, base, radius, height, kind, color, label) -> Patch | None:
    bx, by, bz = base
    body_top = height * (0.6 if kind == "bottle" else 1.0)
    pts = cam.project(np.array([(bx, by, bz), (bx, by + body_top, bz), (bx + radius, by + body_top, bz),
                                (bx, by + body_top, bz - radius), (bx, by + body_top, bz + radius),
                                (bx, by, bz - radius), (bx, by, bz + radius), (bx, by + height, bz)]))
    bottom, top, rx = pts[0], pts[1], abs(pts[2][0] - pts[1][0])
    ry_top, ry_bot = abs(pts[3][1] - pts[4][1]) / 2, abs(pts[5][1] - pts[6][1]) / 2
    box = bbox(np.array([bottom - (2 * rx, ry_bot), top + (2 * rx, -ry_top), pts[7] - (rx, 0)]), image.shape[:2])
    if box is None:
        return None
    p = Patch(box)
    p.ellipse(bottom, (rx, ry_bot), 0, _shade(color, 0.8), label)
    p.poly([top - (rx, 0), top + (rx, 0), bottom + (rx, 0), bottom - (rx, 0)], color, label)
    p.line(top - (0.45 * rx, -ry_top), bottom - (0.45 * rx, 0), 0.25 * rx, _shade(color, 1.3), label)
    if kind == "bottle":
        neck = pts[7]
        p.poly([top - (rx, 0), top + (rx, 0), neck + (0.35 * rx, -0.3 * (top[1] - neck[1])), neck - (0.35 * rx, -0.3 * (top[1] - neck[1]))], color, label)
        p.line(neck + (0, 0.3 * (top[1] - neck[1])), neck, 0.7 * rx, _shade(color, 0.9), label)
        p.ellipse(neck, (0.4 * rx, 0.4 * ry_top + 0.5), 0, _shade(color, 0.5), label)
    else:
        p.ellipse(top, (rx, ry_top), 0, _shade(color, 1.1), label)
        if kind == "cup":
            p.ellipse(top, (0.85 * rx, 0.85 * ry_top), 0, _shade(color, 0.55), label)
            mid = (top + bottom) / 2
            p.ellipse(mid + (1.05 * rx, 0), (0.45 * rx, 0.3 * abs(bottom[1] - top[1])), 0, color, label, -90, 90, 0.18 * rx)
    return p


def object_color(rng: np.random.Generator, kind: str) -> tuple[float, float, float]:
    """Mostly saturated colours; some cardboard boxes and white cups for realism."""
    if kind == "box" and rng.random() < 0.25:
        return jitter(rng, (175, 135, 90), 15)
    if kind == "cup" and rng.random() < 0.3:
        return jitter(rng, (235, 235, 230), 10)
    return hsv_color(rng, sat=(0.55, 1.0), val=(0.5, 1.0))
