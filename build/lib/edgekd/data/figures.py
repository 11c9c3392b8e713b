"""People (standing figures) and egocentric hands (palm, fingers, thumb, forearm) for the scenes.

A person is labelled ``person`` head to toe, clothes included; a *hand* is the AR user's own
hand and forearm entering the view from an image edge, large and close to the camera. Their
appearance differs on purpose (clothes and small skin areas versus a large skin-toned shape with
fingers), which is what an AR hand-segmentation model has to tell apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekd.data.shapes import Patch, bbox
from edgekd.data.textures import HAIR, PANTS, choose, hsv_color, jitter, pick, skin_color


def _rot(v: np.ndarray, degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def draw_person(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, foot: tuple[float, float],
                height: float, label: int, light: tuple[float, float]) -> None:
    """A standing figure ``height`` pixels tall whose feet are at ``foot`` (x, y)."""
    u, v = foot
    box = bbox([[u - 0.5 * height, v - 1.05 * height], [u + 0.5 * height, v + 0.04 * height]], image.shape[:2])
    if box is None or height < 6:
        return
    p = Patch(box)
    skin, shirt = skin_color(rng), hsv_color(rng, sat=(0.3, 0.95), val=(0.3, 0.95))
    pants, hair, shoes = pick(rng, PANTS), pick(rng, HAIR), jitter(rng, (35, 30, 30), 15)
    build, lean = rng.uniform(0.9, 1.15), rng.uniform(-0.03, 0.03) * height
    y = lambda fraction: v - fraction * height  # noqa: E731 - height above the feet
    _legs(p, u, y, height * build, height, pants, shoes, label, rng)
    shoulder_y, half_sh, half_hip = y(0.815), 0.125 * height * build, 0.095 * height * build
    p.poly([(u - half_sh + lean, shoulder_y), (u + half_sh + lean, shoulder_y),
            (u + half_hip, y(0.48)), (u - half_hip, y(0.48))], shirt, label)
    p.ellipse((u + lean, shoulder_y + 0.02 * height), (half_sh, 0.035 * height), 0, shirt, label, 180, 360)
    short_sleeves = rng.random() < 0.4
    for side in (-1, 1):
        start = np.array([u + lean + side * half_sh * 0.9, shoulder_y + 0.025 * height])
        _arm(p, rng, start, side, height, build, shirt, skin if short_sleeves else shirt, skin, label)
    p.line((u + lean, y(0.83)), (u + lean, y(0.885)), 0.05 * height, skin, label)
    head = (u + 1.2 * lean, y(0.935))
    p.ellipse(head, (0.058 * height, 0.07 * height), 0, skin, label)
    p.ellipse((head[0], head[1] - 0.012 * height), (0.063 * height, 0.064 * height), 0, hair, label, 180, 360)
    p.texture(rng, 0.12, 9, cells=6, light=light, amount=0.15)
    p.commit(image, mask)


def _legs(p: Patch, u: float, y, width: float, height: float, pants, shoes, label: int, rng) -> None:
    stance = rng.uniform(0.0, 0.07) * height
    for side in (-1, 1):
        hip = (u + side * 0.05 * width, y(0.5))
        knee = (u + side * (0.05 * width + 0.5 * stance), y(0.27))
        ankle = (u + side * (0.05 * width + stance), y(0.045))
        p.line(hip, knee, 0.085 * width, pants, label)
        p.line(knee, ankle, 0.07 * width, pants, label)
        p.ellipse((ankle[0] + side * 0.012 * height, y(0.02)), (0.045 * height, 0.022 * height), 0, shoes, label)


def _arm(p: Patch, rng, shoulder: np.ndarray, side: int, height: float, build: float, sleeve, forearm, skin, label) -> None:
    raised = rng.random() < 0.2
    a1 = np.deg2rad(rng.uniform(60, 160) if raised else rng.uniform(4, 35))  # from straight down, outwards
    a2 = a1 + np.deg2rad(rng.uniform(-10, 90)) * (1 if raised else choose(rng, (-1, 1)) * 0.6)
    elbow = shoulder + 0.19 * height * np.array([side * np.sin(a1), np.cos(a1)])
    direction = np.array([side * np.sin(a2), np.cos(a2)])
    wrist = elbow + 0.16 * height * direction
    thickness = 0.055 * height * build
    p.line(shoulder, elbow, thickness, sleeve, label)
    p.line(elbow, wrist, 0.85 * thickness, forearm, label)
    p.ellipse(wrist + 0.02 * height * direction, (0.028 * height, 0.036 * height),
              float(np.rad2deg(np.arctan2(direction[1], direction[0]))) + 90, skin, label)


@dataclass(frozen=True)
class HandPose:
    """Where an egocentric hand is: palm centre (x, y), finger direction in degrees, palm length px."""

    center: tuple[float, float]
    direction: float
    palm_length: float


def sample_hand_pose(rng: np.random.Generator, frame_hw: tuple[int, int]) -> HandPose:
    """A hand reaching in from the bottom (most often) or a side edge of the frame."""
    h, w = frame_hw
    edge = choose(rng, ("bottom", "left", "right"), (0.6, 0.2, 0.2))
    length = h * rng.uniform(0.17, 0.3)
    if edge == "bottom":
        return HandPose((rng.uniform(0.15, 0.85) * w, rng.uniform(0.5, 0.92) * h), -90 + rng.uniform(-45, 45), length)
    angle = rng.uniform(-60, 10)
    x = rng.uniform(0.12, 0.4) * w
    if edge == "right":
        angle, x = 180 - angle, w - x
    return HandPose((x, rng.uniform(0.35, 0.9) * h), angle, length)


def draw_hand(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, pose: HandPose, label: int,
              light: tuple[float, float]) -> None:
    """Forearm, palm, thumb and four fingers (curl, spread and pointing poses), skin-toned."""
    d = _rot(np.array([1.0, 0.0]), pose.direction)
    n = np.array([-d[1], d[0]])
    length = pose.palm_length
    width = length * rng.uniform(0.82, 0.95)
    center = np.asarray(pose.center, np.float64)
    wrist, knuckle = center - d * 0.5 * length, center + d * 0.45 * length
    far = wrist - d * 3.0 * max(image.shape[:2])
    forearm = [wrist + n * 0.42 * width, wrist - n * 0.42 * width, far - n * 0.65 * width, far + n * 0.65 * width]
    reach = [center + d * 1.4 * length + n * s * 1.2 * width for s in (-1, 1)]
    box = bbox(np.array(forearm + reach), image.shape[:2])
    if box is None:
        return
    p = Patch(box)
    skin = skin_color(rng)
    crease = tuple(c * 0.72 for c in skin)
    p.poly(forearm, skin, label)
    p.poly([wrist + n * 0.45 * width, wrist - n * 0.45 * width, knuckle - n * 0.5 * width, knuckle + n * 0.5 * width], skin, label)
    p.ellipse(knuckle, (0.5 * width, 0.14 * length), float(np.rad2deg(np.arctan2(n[1], n[0]))), skin, label)
    side = choose(rng, (-1, 1))
    _thumb(p, rng, wrist, d, n, side, length, width, skin, crease, label)
    _fingers(p, rng, knuckle, d, n, side, length, width, skin, crease, label)
    p.texture(rng, 0.08, 7, cells=5, light=light, amount=0.12)
    p.commit(image, mask)


def _fingers(p: Patch, rng, knuckle, d, n, side, length, width, skin, crease, label) -> None:
    pose = choose(rng, ("open", "relaxed", "point"), (0.4, 0.4, 0.2))
    spread = rng.uniform(0, 12) if pose == "open" else rng.uniform(0, 4)
    for k, (offset, rel) in enumerate(zip((0.36, 0.12, -0.12, -0.36), (0.78, 0.86, 0.8, 0.62))):
        curl = {"open": rng.uniform(0, 0.15), "relaxed": rng.uniform(0.2, 0.55),
                "point": rng.uniform(0, 0.1) if k == 0 else rng.uniform(0.75, 0.9)}[pose]
        visible = length * rel * rng.uniform(0.92, 1.05) * (1 - 0.65 * curl)
        base = knuckle + n * side * offset * width - d * 0.05 * length
        dir1 = _rot(d, side * spread * (1.5 - k))
        mid = base + dir1 * 0.55 * visible
        tip = mid + _rot(dir1, -side * 25 * curl) * 0.45 * visible
        thick = width * (0.2 if k == 3 else 0.235)
        p.line(base, mid, thick + 2, crease, label)
        p.line(mid, tip, 0.92 * thick + 2, crease, label)
        p.line(base, mid, thick, skin, label)
        p.line(mid, tip, 0.92 * thick, skin, label)


def _thumb(p: Patch, rng, wrist, d, n, side, length, width, skin, crease, label) -> None:
    base = wrist + d * 0.2 * length + n * side * 0.4 * width
    dir1 = _rot(d, side * rng.uniform(35, 75))  # rotating d by +90 degrees gives n: out to the thumb side
    mid = base + dir1 * 0.38 * length
    tip = mid + _rot(dir1, -side * rng.uniform(-10, 35)) * 0.3 * length  # tip bends back towards the fingers
    thick = 0.27 * width
    p.line(base, mid, thick + 2, crease, label)
    p.line(mid, tip, 0.9 * thick + 2, crease, label)
    p.line(base, mid, thick, skin, label)
    p.line(mid, tip, 0.9 * thick, skin, label)
