"""Joint image + mask augmentation with OpenCV on numpy arrays.

Every transform takes ``(image, mask, rng)``: an RGB uint8 H×W×3 image, an H×W integer mask
and a ``numpy.random.Generator``, and returns the new ``(image, mask)``. Geometry is applied to
both with the same parameters (masks always with nearest-neighbour sampling, so labels are never
blended); colour changes touch the image only. Padding fills the image with 0 and the mask with
the ignore index, so padded pixels never count in a loss or a metric.

``Compose`` owns the random generator. Reproducibility: with ``seed`` set, the main process
gives the same augmentations on every run; inside a DataLoader worker the generator is re-seeded
from ``(seed, torch.initial_seed())``, which differs per worker and per epoch and is itself
reproducible once ``torch.manual_seed`` is set, so workers never repeat each other.
"""
from __future__ import annotations

import os
from typing import Protocol, Sequence

import cv2
import numpy as np
import torch

from edgekd.errors import EdgekdError
from edgekd.input_sizes import parse_hw

MASK_INTERPOLATION = cv2.INTER_NEAREST_EXACT  # pixel-centre aligned, like the image's bilinear
IMAGE_INTERPOLATIONS = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}


class JointTransform(Protocol):
    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]: ...


def as_hw(size: int | Sequence[int], what: str = "size") -> tuple[int, int]:
    """``(H, W)`` from an int or a pair of positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size)):
        raise EdgekdError(f"{what} {size!r} must be a positive int or a pair (H, W) of positive ints")
    return int(size[0]), int(size[1])


parse_size = parse_hw  # the one HxW parser (edgekd.input_sizes); the name stays for callers


def _resize_pair(image: np.ndarray, mask: np.ndarray, hw: tuple[int, int], interpolation: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = hw
    if image.shape[:2] == (h, w):
        return image, mask
    return (cv2.resize(image, (w, h), interpolation=interpolation),
            cv2.resize(mask, (w, h), interpolation=MASK_INTERPOLATION))


class Resize:
    """Resize to a fixed (H, W): image bilinear or area, mask nearest."""

    def __init__(self, size: int | Sequence[int], interpolation: str = "bilinear") -> None:
        self.size = as_hw(size)
        if interpolation not in IMAGE_INTERPOLATIONS:
            raise EdgekdError(f"interpolation {interpolation!r} is not one of {list(IMAGE_INTERPOLATIONS)}")
        self.interpolation = interpolation

    def __call__(self, image, mask, rng):
        return _resize_pair(image, mask, self.size, IMAGE_INTERPOLATIONS[self.interpolation])


class RandomScale:
    """Scale both sides by one factor drawn uniformly from ``scale_range`` (area filter when shrinking)."""

    def __init__(self, scale_range: Sequence[float]) -> None:
        lo, hi = (float(v) for v in scale_range)
        if not 0 < lo <= hi:
            raise EdgekdError(f"scale_range {tuple(scale_range)!r} must be (low, high) with 0 < low <= high")
        self.scale_range = (lo, hi)

    def __call__(self, image, mask, rng):
        s = rng.uniform(*self.scale_range)
        h, w = image.shape[:2]
        hw = (max(1, round(h * s)), max(1, round(w * s)))
        return _resize_pair(image, mask, hw, cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


class RandomCrop:
    """Crop a window of ``size`` at a random place; a smaller input is padded (image 0, mask ignore)."""

    def __init__(self, size: int | Sequence[int], ignore_index: int, image_pad: int = 0) -> None:
        self.size = as_hw(size, "crop size")
        self.ignore_index = int(ignore_index)
        self.image_pad = int(image_pad)

    def __call__(self, image, mask, rng):
        (H, W), (h, w) = self.size, image.shape[:2]
        y0 = int(rng.integers(min(0, h - H), max(0, h - H) + 1))
        x0 = int(rng.integers(min(0, w - W), max(0, w - W) + 1))
        if h >= H and w >= W:  # the window lies inside: a plain slice
            return (np.ascontiguousarray(image[y0:y0 + H, x0:x0 + W]),
                    np.ascontiguousarray(mask[y0:y0 + H, x0:x0 + W]))
        out_img = np.full((H, W, image.shape[2]), self.image_pad, dtype=image.dtype)
        out_mask = np.full((H, W), self.ignore_index, dtype=mask.dtype)
        sy, sx = max(0, y0), max(0, x0)  # source start
        dy, dx = sy - y0, sx - x0  # destination start
        ch, cw = min(h - sy, H - dy), min(w - sx, W - dx)
        out_img[dy:dy + ch, dx:dx + cw] = image[sy:sy + ch, sx:sx + cw]
        out_mask[dy:dy + ch, dx:dx + cw] = mask[sy:sy + ch, sx:sx + cw]
        return out_img, out_mask


class HorizontalFlip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, image, mask, rng):
        if rng.random() < self.p:
            return cv2.flip(image, 1), cv2.flip(mask, 1)
        return image, mask


class ColorJitter:
    """Random brightness, contrast, saturation (factors in 1±x) and hue shift (±x of a full turn); image only."""

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2, hue: float = 0.05) -> None:
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if not 0 <= value < 1:
                raise EdgekdError(f"colour jitter {name} {value!r} must be in [0, 1)")
        if not 0 <= hue <= 0.5:
            raise EdgekdError(f"colour jitter hue {hue!r} must be in [0, 0.5] (fraction of a full hue turn)")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def __call__(self, image, mask, rng):
        b, c, s = (rng.uniform(1 - x, 1 + x) for x in (self.brightness, self.contrast, self.saturation))
        h = rng.uniform(-self.hue, self.hue)
        img = image.astype(np.float32) * b
        grey = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        img = (img - grey.mean()) * c + grey.mean()
        grey = grey[..., None] * c + grey.mean() * (1 - c)  # grey of the contrast-adjusted image
        img = (img - grey) * s + grey
        out = np.clip(img, 0, 255).astype(np.uint8)
        shift = int(round(h * 256)) % 256
        if shift:
            hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV_FULL)
            hsv[..., 0] += np.uint8(shift)  # uint8 wraps around: a rotation of hue
            out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
        return out, mask


class Compose:
    """Apply transforms in order with one generator; safe and reproducible in DataLoader workers."""

    def __init__(self, transforms: Sequence[JointTransform], seed: int | None = None) -> None:
        self.transforms = list(transforms)
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._owner: tuple | None = None

    def __repr__(self) -> str:
        names = ", ".join(type(t).__name__ for t in self.transforms)
        return f"Compose([{names}], seed={self.seed})"

    def reseed(self, seed: int | None) -> None:
        self.seed, self._rng, self._owner = seed, None, None

    def generator(self) -> np.random.Generator:
        """The generator for this process / worker, (re)created when that changes."""
        worker = torch.utils.data.get_worker_info()
        owner = (os.getpid(), None, None) if worker is None else (os.getpid(), worker.id, torch.initial_seed())
        if self._rng is None or owner != self._owner:
            if worker is None:
                entropy = self.seed
            else:
                entropy = [torch.initial_seed()] + ([] if self.seed is None else [self.seed])
            self._rng, self._owner = np.random.default_rng(entropy), owner
        return self._rng

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = self.generator()
        for t in self.transforms:
            image, mask = t(image, mask, rng)
        return image, mask


def build_train_transform(
    crop_size: int | Sequence[int] | None,
    scale_range: Sequence[float] | None = (0.5, 2.0),
    flip: bool = True,
    color_jitter: float = 0.2,
    *,
    ignore_index: int,
    seed: int | None = None,
) -> Compose:
    """Random scale -> random crop (padded with ``ignore_index``) -> flip -> colour jitter.

    ``ignore_index`` has no default on purpose: it must be the dataset's (``info.ignore_index``),
    or padded pixels would be learnt as a class. ``crop_size=None`` keeps the scaled size (then
    batches need equal-sized images); ``color_jitter`` is the brightness/contrast/saturation
    strength, hue moves by a quarter of it.
    """
    transforms: list[JointTransform] = []
    if scale_range is not None and tuple(scale_range) != (1.0, 1.0):
        transforms.append(RandomScale(scale_range))
    if crop_size is not None:
        transforms.append(RandomCrop(crop_size, ignore_index))
    if flip:
        transforms.append(HorizontalFlip(0.5))
    if color_jitter:
        transforms.append(ColorJitter(color_jitter, color_jitter, color_jitter, color_jitter / 4))
    return Compose(transforms, seed=seed)


def build_eval_transform(size: int | Sequence[int] | None = None, interpolation: str = "bilinear") -> Compose:
    """Deterministic: native size (``None``) or a resize to ``size`` (H, W); masks resized nearest."""
    return Compose([] if size is None else [Resize(size, interpolation)])
