"""Real images for calibration and parity: a deterministic sample of one dataset split.

Calibration defaults to the train split and parity to val, so the images that set INT8 ranges
are not the ones that judge them. Pixels stay uint8 (resized to the export size) and are
normalised with the checkpoint's own normalisation when a backend needs floats.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.backends.calibration import normalize_pixels
from edgekd.errors import EdgekdError


@dataclass
class ImageSample:
    """uint8 RGB pixels N×3×H×W, int64 masks N×H×W, and where they came from."""

    pixels: np.ndarray
    masks: np.ndarray
    num_classes: int
    ignore_index: int
    description: dict[str, Any]

    def normalized(self, normalization: dict[str, Any]) -> np.ndarray:
        return normalize_pixels(self.pixels, normalization)


def load_sample(root: str | Path, split: str, count: int, size: tuple[int, int], *, seed: int = 0) -> ImageSample:
    """``count`` images of ``split`` (all if fewer), picked at random with ``seed``, resized to ``size``."""
    from edgekd.data import build_eval_transform, open_dataset

    if count < 1:
        raise EdgekdError(f"image count {count} must be at least 1")
    dataset = open_dataset(root, split, transform=build_eval_transform(size))
    if len(dataset) == 0:
        raise EdgekdError(f"dataset {root} has no images in split {split!r}; pass a folder with a {split} split")
    n = min(count, len(dataset))
    indices = sorted(np.random.default_rng(seed).choice(len(dataset), n, replace=False).tolist()) if n < len(dataset) else list(range(n))
    pixels, masks = [], []
    for i in indices:
        image, mask = dataset[i]
        pixels.append(np.asarray(image, dtype=np.uint8))
        masks.append(np.asarray(mask, dtype=np.int64))
    info = dataset.info
    from PIL import Image

    with Image.open(dataset.pairs[indices[0]][0]) as first:
        native = [first.height, first.width]
    description = {
        "dataset": str(Path(root).expanduser().resolve()), "dataset_name": info.name, "split": split,
        "num_images": n, "available": len(dataset), "selection": f"random without replacement, seed {seed}" if n < len(dataset) else "all",
        "native_size": native, "resized_to": list(size), "images": [Path(dataset.pairs[i][0]).name for i in indices],
    }
    return ImageSample(np.stack(pixels), np.stack(masks), info.num_classes, info.ignore_index, description)
