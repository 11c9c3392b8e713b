"""Class-balanced cross-entropy weights, computed once from a training split's label files.

Reads the label PNGs only (no images, no augmentation), so the weights describe the labels the
student is trained on, and records them in the checkpoint's ``trained_with.class_weights``.
"""
from __future__ import annotations

import numpy as np

from edgekd.data.io import read_mask
from edgekd.losses.supervised import CLASS_WEIGHT_METHODS, class_weights_from_counts
from edgekd.errors import EdgekdError


def check_method(method: str) -> str:
    if method not in CLASS_WEIGHT_METHODS:
        raise EdgekdError(f"--class-weights {method!r} is not one of {', '.join(CLASS_WEIGHT_METHODS)}")
    return method


def label_counts(dataset) -> tuple[np.ndarray, np.ndarray]:
    """(pixels per class, total pixels of the images containing each class) over ``dataset``'s labels."""
    info = dataset.info
    pixels = np.zeros(info.num_classes, dtype=np.int64)
    present = np.zeros(info.num_classes, dtype=np.int64)
    for _, mask_path in dataset.pairs:
        mask = read_mask(mask_path)
        counts = np.bincount(mask.reshape(-1), minlength=256)[: info.num_classes]
        pixels += counts
        present += np.where(counts > 0, mask.size, 0)
    return pixels, present


def class_weights_for(dataset, method: str) -> dict:
    """The weights and where they came from, ready for ``trained_with.class_weights``."""
    pixels, present = label_counts(dataset)
    if pixels.sum() == 0:
        raise EdgekdError(f"--class-weights {method}: split {dataset.split!r} has no labelled pixel to count")
    weights = class_weights_from_counts(pixels, present, method=check_method(method))
    return {"method": method, "split": dataset.split, "split_hash": dataset.split_hash(),
            "values": [round(w, 6) for w in weights], "pixel_counts": [int(n) for n in pixels]}
