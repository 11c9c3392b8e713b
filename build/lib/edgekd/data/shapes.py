"""Drawing helpers for the synthetic scenes: labelled local patches, textured quads, soft shadows.

Everything works on a small bounding-box patch rather than the whole frame, which keeps a
240×320 scene at a few milliseconds. Coordinates are float pixel positions; OpenCV draws them
with 2 fractional bits (``shift=2``) so shapes move smoothly in sequences.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from edgekd.data.textures import modulate

EMPTY = 255  # "nothing drawn here" inside a patch (never written to a mask)
SHIFT = 2
SCALE = 1 << SHIFT


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, np.float64) * SCALE).astype(np.int32)


def bbox(points: np.ndarray, frame_hw: tuple[int, int], margin: float = 1.0) -> tuple[int, int, int, int] | None:
    """Integer (x0, y0, x1, y1) of ``points`` clipped to the frame, or None when off-frame."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    h, w = frame_hw
    x0 = max(0, int(np.floor(pts[:, 0].min() - margin)))
    y0 = max(0, int(np.floor(pts[:, 1].min() - margin)))
    x1 = min(w, int(np.ceil(pts[:, 0].max() + margin)) + 1)
    y1 = min(h, int(np.ceil(pts[:, 1].max() + margin)) + 1)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


class Patch:
    """A labelled RGB canvas over part of the frame; shapes drawn into it are composited at once."""

    def __init__(self, box: tuple[int, int, int, int]) -> None:
        self.x0, self.y0, x1, y1 = box
        self.rgb = np.zeros((y1 - self.y0, x1 - self.x0, 3), np.uint8)
        self.lab = np.full((y1 - self.y0, x1 - self.x0), EMPTY, np.uint8)

    def _local(self, points) -> np.ndarray:
        return _fixed(np.asarray(points, np.float64).reshape(-1, 2) - (self.x0, self.y0))

    def poly(self, points, color, label: int) -> None:
        pts = [self._local(points)]
        cv2.fillPoly(self.rgb, pts, color, cv2.LINE_8, SHIFT)
        cv2.fillPoly(self.lab, pts, label, cv2.LINE_8, SHIFT)

    def line(self, p, q, thickness: float, color, label: int) -> None:
        a, b = self._local([p, q])
        t = max(1, int(round(thickness)))
        cv2.line(self.rgb, tuple(a), tuple(b), color, t, cv2.LINE_8, SHIFT)
        cv2.line(self.lab, tuple(a), tuple(b), label, t, cv2.LINE_8, SHIFT)

    def ellipse(self, center, axes, angle: float, color, label: int, start: float = 0, end: float = 360,
                thickness: float = -1) -> None:
        c = tuple(self._local([center])[0])
        ax = tuple(int(v) for v in _fixed(np.maximum(np.asarray(axes, np.float64), 0.5)))
        t = -1 if thickness < 0 else max(1, int(round(thickness)))
        cv2.ellipse(self.rgb, c, ax, angle, start, end, color, t, cv2.LINE_8, SHIFT)
        cv2.ellipse(self.lab, c, ax, angle, start, end, label, t, cv2.LINE_8, SHIFT)

    def texture(self, rng: np.random.Generator, low: float, fine: float, cells: int = 4,
                light: Sequence[float] | None = None, amount: float = 0.0) -> None:
        """Smooth shading, grain and (optionally) a light ramp brighter towards ``light`` by ±amount."""
        self.rgb = modulate(self.rgb, rng, low, fine, cells, light, amount)

    def commit(self, image: np.ndarray, mask: np.ndarray) -> None:
        drawn = (self.lab != EMPTY).view(np.uint8)
        h, w = self.lab.shape
        cv2.copyTo(self.rgb, drawn, image[self.y0:self.y0 + h, self.x0:self.x0 + w])
        cv2.copyTo(self.lab, drawn, mask[self.y0:self.y0 + h, self.x0:self.x0 + w])


def warp_quad(image: np.ndarray, mask: np.ndarray, texture: np.ndarray, quad: np.ndarray, label: int,
              clip_poly: np.ndarray | None = None) -> None:
    """Map ``texture`` onto the image quad (TL, TR, BR, BL) in perspective and label its pixels.

    ``clip_poly`` (default: the quad) is the region actually painted, e.g. a floor polygon that
    extends past the texture's near edge (sampled with reflection there).
    """
    region_poly = quad if clip_poly is None else clip_poly
    box = bbox(region_poly, image.shape[:2], 0)
    if box is None:
        return
    x0, y0, x1, y1 = box
    th, tw = texture.shape[:2]
    src = np.float32([[0, 0], [tw - 1, 0], [tw - 1, th - 1], [0, th - 1]])
    dst = (np.asarray(quad, np.float64) - (x0, y0)).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(texture, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT)
    inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
    pts = [_fixed(np.asarray(region_poly, np.float64) - (x0, y0))]
    cv2.fillPoly(inside, pts, 1, cv2.LINE_8, SHIFT)
    cv2.copyTo(warped, inside, image[y0:y1, x0:x1])
    cv2.fillPoly(mask[y0:y1, x0:x1], pts, label, cv2.LINE_8, SHIFT)


def soft_shadow(image: np.ndarray, polygon: np.ndarray, strength: float, blur: float) -> None:
    """Darken the image under ``polygon`` by up to ``strength`` with a blurred edge of ``blur`` px."""
    margin = 3 * blur + 1
    box = bbox(polygon, image.shape[:2], margin)
    if box is None:
        return
    x0, y0, x1, y1 = box
    shade = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(shade, [_fixed(np.asarray(polygon, np.float64) - (x0, y0))], 1.0, cv2.LINE_8, SHIFT)
    if blur > 0.3:
        shade = cv2.GaussianBlur(shade, (0, 0), blur)
    region = image[y0:y1, x0:x1]
    region[:] = cv2.multiply(region, cv2.cvtColor(1.0 - strength * shade, cv2.COLOR_GRAY2RGB), dtype=cv2.CV_8U)

