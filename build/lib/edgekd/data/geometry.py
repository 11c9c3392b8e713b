"""A pinhole camera for the synthetic rooms: world metres -> image pixels.

World frame: X right, Y up from the floor, Z forward from the camera's foot point. The camera
sits at height ``height`` and looks down by ``pitch`` (AR users look at tables and hands) with a
small ``roll``. Planes stay planes under projection, so textured floors and table tops are exact
homographies; polygons are clipped at a near plane first, so walls and ceilings passing beside
or behind the camera still project correctly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NEAR = 0.05  # metres in front of the camera


@dataclass(frozen=True)
class Camera:
    focal: float
    cx: float
    cy: float
    height: float
    pitch: float  # radians, positive looks down
    roll: float  # radians

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World (N, 3) -> camera (N, 3) with y down and z the depth along the optical axis."""
        p = np.asarray(points, np.float64).reshape(-1, 3)
        c, s = math.cos(self.pitch), math.sin(self.pitch)
        rotation = np.array([[1.0, 0.0, 0.0], [0.0, -c, -s], [0.0, -s, c]])  # y flipped: camera y points down
        return p @ rotation.T + (0.0, self.height * c, self.height * s)

    def depth(self, points: np.ndarray) -> np.ndarray:
        return self.to_camera(points)[:, 2]

    def project(self, points: np.ndarray) -> np.ndarray:
        """World (N, 3) -> pixel (N, 2); points must be in front of the camera."""
        cam = self.to_camera(points)
        xy = cam[:, :2] * (self.focal / np.maximum(cam[:, 2:], 1e-6))
        c, s = math.cos(self.roll), math.sin(self.roll)
        return xy @ np.array([[c, s], [-s, c]]) + (self.cx, self.cy)

    def polygon(self, points: np.ndarray) -> np.ndarray | None:
        """Project a planar world polygon clipped to the near plane; None when wholly behind."""
        clipped = clip_near(self, np.asarray(points, np.float64).reshape(-1, 3))
        return None if clipped is None else self.project(clipped)

    def pixels_per_metre(self, point) -> float:
        return self.focal / max(float(self.depth(np.asarray(point))[0]), 1e-6)


def clip_near(camera: Camera, polygon: np.ndarray) -> np.ndarray | None:
    """Sutherland-Hodgman clip of a world polygon against depth >= NEAR."""
    depth = camera.depth(polygon)
    if np.all(depth >= NEAR):
        return polygon
    out = []
    n = len(polygon)
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        da, db = depth[i], depth[(i + 1) % n]
        if da >= NEAR:
            out.append(a)
        if (da >= NEAR) != (db >= NEAR):
            t = (NEAR - da) / (db - da)
            out.append(a + t * (b - a))
    return np.array(out) if len(out) >= 3 else None


def sample_camera(rng: np.random.Generator, frame_hw: tuple[int, int], offset: tuple[float, float] = (0.0, 0.0)) -> Camera:
    """Hand-held AR viewpoints: 55-75 degree horizontal field of view, looking 0-40 degrees down.

    ``offset`` (x, y) moves the principal point when the frame sits inside a larger canvas.
    """
    h, w = frame_hw
    return Camera(
        focal=w * rng.uniform(0.65, 0.95),
        cx=w * (0.5 + rng.uniform(-0.04, 0.04)) + offset[0],
        cy=h * (0.5 + rng.uniform(-0.04, 0.04)) + offset[1],
        height=rng.uniform(1.2, 1.7),
        pitch=np.deg2rad(rng.uniform(0, 40)),
        roll=np.deg2rad(rng.uniform(-4, 4)),
    )
