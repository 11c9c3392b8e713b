"""Procedural colours and textures for the synthetic scenes (numpy + OpenCV, a few ms at most).

Each class gets a distinctive but varied appearance, so that a network has something real to
learn: pastel painted walls, tiled / planked / carpeted floors, wood-grain tables, skin tones
from light to dark, saturated clothes and objects, bright windows and colourful posters.
"""
from __future__ import annotations

import colorsys
from functools import lru_cache

import cv2
import numpy as np

SKIN_TONES = np.array([  # RGB, light to dark (Fitzpatrick-like range)
    (255, 219, 186), (241, 194, 160), (224, 172, 130), (198, 140, 100),
    (161, 110, 75), (120, 78, 52), (88, 57, 40),
], dtype=np.float32)
HAIR = np.array([(20, 16, 14), (60, 40, 28), (110, 75, 45), (190, 160, 110), (150, 150, 150)], dtype=np.float32)
PANTS = np.array([(40, 60, 100), (30, 30, 35), (150, 130, 100), (90, 90, 95), (60, 80, 130)], dtype=np.float32)
WOODS = np.array([(196, 150, 100), (150, 100, 60), (110, 70, 40), (80, 50, 30), (205, 170, 125)], dtype=np.float32)


def choose(rng: np.random.Generator, options: tuple, p: tuple[float, ...] | None = None):
    """One of ``options`` (with probabilities ``p``); a plain-Python ``rng.choice`` without its overhead."""
    if p is None:
        return options[int(rng.integers(len(options)))]
    u, total = rng.random(), 0.0
    for option, weight in zip(options, p):
        total += weight
        if u < total:
            return option
    return options[-1]


def jitter(rng: np.random.Generator, color, amount: float = 12.0) -> tuple[float, float, float]:
    """A colour moved by up to ``amount`` per channel, as plain floats for cv2 drawing."""
    c = np.clip(np.asarray(color, dtype=np.float32) + rng.uniform(-amount, amount, 3), 0, 255)
    return tuple(float(v) for v in c)


def hsv_color(rng: np.random.Generator, sat=(0.5, 1.0), val=(0.45, 1.0), hue=(0.0, 1.0)) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(*hue) % 1.0, rng.uniform(*sat), rng.uniform(*val))
    return (r * 255.0, g * 255.0, b * 255.0)


def skin_color(rng: np.random.Generator) -> tuple[float, float, float]:
    i = rng.uniform(0, len(SKIN_TONES) - 1)
    lo = int(i)
    mix = SKIN_TONES[lo] * (1 - (i - lo)) + SKIN_TONES[min(lo + 1, len(SKIN_TONES) - 1)] * (i - lo)
    return jitter(rng, mix, 8)


def pick(rng: np.random.Generator, table: np.ndarray, amount: float = 10.0) -> tuple[float, float, float]:
    return jitter(rng, table[rng.integers(len(table))], amount)


def wall_paint(rng: np.random.Generator) -> tuple[float, float, float]:
    """Light, low-saturation paint: whites, creams, pale greys, blues and greens."""
    return hsv_color(rng, sat=(0.02, 0.25), val=(0.72, 0.97))


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int = 4) -> np.ndarray:
    """Low-frequency noise in about [-1, 1] (bilinear upsampling of a coarse random grid)."""
    ch, cw = max(2, cells), max(2, round(cells * w / max(h, 1)))
    grid = rng.standard_normal((ch, cw)).astype(np.float32) * 0.5
    return cv2.resize(grid, (max(w, 1), max(h, 1)), interpolation=cv2.INTER_LINEAR)


def grain(rng: np.random.Generator, h: int, w: int, amount: float) -> np.ndarray:
    """Fine per-pixel noise (float32, ±amount)."""
    return (rng.random((h, w), dtype=np.float32) - 0.5) * (2 * amount)


@lru_cache(maxsize=1)
def _noise_pool() -> np.ndarray:
    """4 MiB of fixed random bytes: a random window of it is noise at the cost of a copy."""
    return np.frombuffer(np.random.default_rng(0x5EED).bytes(1 << 22), np.uint8)


def random_bytes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniform random bytes (a window of the pool at a random offset; fresh bytes when large)."""
    pool = _noise_pool()
    if n > pool.size // 2:
        return np.frombuffer(rng.bytes(n), np.uint8)
    start = int(rng.integers(0, pool.size - n))
    return pool[start:start + n]


def add_grain(rgb: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Add uniform per-channel noise of ±amount to a uint8 image (saturating)."""
    noise = random_bytes(rng, rgb.size).reshape(rgb.shape)
    k = amount / 127.5
    return cv2.addWeighted(rgb, 1.0, noise, k, -127.5 * k, dtype=cv2.CV_8U)


def modulate(rgb: np.ndarray, rng: np.random.Generator, low: float, fine: float, cells: int = 4,
             light: tuple[float, float] | None = None, amount: float = 0.0) -> np.ndarray:
    """Multiply a uint8 RGB image by smooth shading (and a directional light ramp), add grain.

    Works in uint8 with OpenCV's saturating arithmetic: this runs on whole frames, so it must
    cost tens of microseconds, not the milliseconds of a float32 numpy round trip.
    """
    h, w = rgb.shape[:2]
    shade = smooth_noise(rng, h, w, cells) * np.float32(low) + np.float32(1.0)
    if light is not None and amount:
        shade += np.linspace(-amount * light[1], amount * light[1], h, dtype=np.float32)[:, None]
        shade += np.linspace(-amount * light[0], amount * light[0], w, dtype=np.float32)[None, :]
    out = cv2.multiply(rgb, cv2.cvtColor(shade, cv2.COLOR_GRAY2RGB), dtype=cv2.CV_8U)
    return add_grain(out, rng, fine) if fine else out


def wood_texture(rng: np.random.Generator, h: int, w: int, base=None) -> np.ndarray:
    """Wood grain along the width: warped sinusoidal rings over a brown base."""
    base = np.asarray(base if base is not None else pick(rng, WOODS, 15), dtype=np.float32)
    y = np.arange(h, dtype=np.float32)[:, None]
    warp = smooth_noise(rng, h, w, 3) * rng.uniform(4, 10) + smooth_noise(rng, h, w, 8) * 1.5
    rings = np.sin((y + warp) * rng.uniform(0.25, 0.6))
    shade = 1.0 + 0.12 * rings + 0.05 * smooth_noise(rng, h, w, 5)
    tex = base[None, None, :] * shade[..., None] + grain(rng, h, w, 5)[..., None]
    return np.clip(tex, 0, 255).astype(np.uint8)


def floor_texture(rng: np.random.Generator, h: int, w: int, px_per_m: float) -> np.ndarray:
    """A floor seen from above, ``px_per_m`` texture pixels per metre: tiles, planks or carpet."""
    kind = choose(rng, ("tiles", "planks", "carpet"), (0.35, 0.4, 0.25))
    if kind == "planks":
        return _planks(rng, h, w, px_per_m)
    if kind == "tiles":
        return _tiles(rng, h, w, px_per_m)
    base = hsv_color(rng, sat=(0.1, 0.5), val=(0.25, 0.6))
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = base
    return modulate(rgb, rng, 0.15, 22, cells=6)


def _tiles(rng: np.random.Generator, h: int, w: int, px_per_m: float) -> np.ndarray:
    step = max(4, int(rng.uniform(0.3, 0.6) * px_per_m))
    base = np.asarray(hsv_color(rng, sat=(0.0, 0.35), val=(0.45, 0.92)), np.float32)
    ny, nx = h // step + 1, w // step + 1
    tile_gain = 1.0 + rng.uniform(-0.06, 0.06, (ny, nx)).astype(np.float32)
    gain = cv2.resize(tile_gain, (nx * step, ny * step), interpolation=cv2.INTER_NEAREST)[:h, :w]
    rgb = base[None, None, :] * gain[..., None]
    grout = np.asarray(base * rng.uniform(0.45, 0.7), np.float32)
    rgb[::step, :] = grout
    rgb[:, ::step] = grout
    return modulate(rgb, rng, 0.06, 8, cells=5)


def _planks(rng: np.random.Generator, h: int, w: int, px_per_m: float) -> np.ndarray:
    """Boards running along the texture's height (away from the camera)."""
    board = max(3, int(rng.uniform(0.1, 0.2) * px_per_m))
    tex = wood_texture(rng, w, h).transpose(1, 0, 2).copy()  # grain along the boards
    n = w // board + 1
    gains = 1.0 + rng.uniform(-0.15, 0.15, n).astype(np.float32)
    cols = np.repeat(gains, board)[:w]
    out = tex.astype(np.float32) * cols[None, :, None]
    out[:, ::board] *= 0.55  # seams between boards
    return np.clip(out, 0, 255).astype(np.uint8)


def window_texture(rng: np.random.Generator, h: int = 64, w: int = 64) -> np.ndarray:
    """A bright window: sky gradient behind a light frame with cross bars."""
    top = np.asarray(hsv_color(rng, hue=(0.55, 0.62), sat=(0.25, 0.6), val=(0.85, 1.0)), np.float32)
    bottom = np.asarray((235, 240, 245), np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = np.ascontiguousarray(np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3)).astype(np.uint8))
    frame = jitter(rng, (240, 240, 235) if rng.random() < 0.7 else (120, 85, 55), 10)
    k = max(2, h // 12)
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), frame, k)
    cv2.line(img, (w // 2, 0), (w // 2, h), frame, k)
    if rng.random() < 0.6:
        cv2.line(img, (0, h // 2), (w, h // 2), frame, k)
    return img


def poster_texture(rng: np.random.Generator, h: int = 64, w: int = 48) -> np.ndarray:
    """A framed picture or poster: a few saturated shapes on a coloured ground."""
    img = np.empty((h, w, 3), np.uint8)
    img[:] = hsv_color(rng, sat=(0.2, 0.9), val=(0.3, 1.0))
    for _ in range(int(rng.integers(2, 6))):
        color = hsv_color(rng)
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), int(rng.integers(3, max(4, w // 3))), color, -1)
        else:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(4, w)), y + int(rng.integers(4, h))), color, -1)
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), jitter(rng, (30, 30, 30), 20), max(2, w // 16))
    return img
