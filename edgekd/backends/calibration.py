"""Calibration batches from real images, shared by every INT8 path.

One plain class feeds ONNX Runtime's ``CalibrationDataReader``, NNCF's ``Dataset`` and TensorRT's
``IInt8EntropyCalibrator2``, so the batching logic is tested once, without any runtime installed.
Images come from a real dataset split (never random noise: activation ranges of noise are not
those of camera frames, and the quantised model would clip real activations).
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from edgekd.errors import EdgekdError

CALIBRATION_METHODS = ("auto", "minmax", "entropy", "percentile")  # auto: each one measured, the best kept


def normalize_pixels(pixels: np.ndarray, normalization: dict[str, Any]) -> np.ndarray:
    """uint8 (or float) RGB N×3×H×W pixels in 0..255 → the model's normalised float32 input."""
    x = pixels.astype(np.float32)
    if normalization.get("channel_order", "RGB") == "BGR":
        x = x[:, ::-1]
    mean = np.asarray(normalization["mean"], dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(normalization["std"], dtype=np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


class CalibrationBatches:
    """Fixed-size batches over calibration images, with a cursor (``next_batch``/``reset``).

    ``images`` are either normalised float32 or uint8 pixels plus ``normalization`` (then each
    batch is normalised when fed, which keeps a stored calibration set 4× smaller). A last
    partial batch is dropped because TensorRT's calibrator needs a constant batch size; the
    count actually used is ``num_images_used``.
    """

    def __init__(self, images: np.ndarray, batch_size: int = 1, normalization: dict[str, Any] | None = None) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise EdgekdError(f"calibration images must be N×3×H×W, got shape {tuple(images.shape)}")
        if batch_size < 1 or batch_size > len(images):
            raise EdgekdError(f"calibration batch size {batch_size} must be between 1 and the {len(images)} images")
        if images.dtype == np.uint8 and normalization is None:
            raise EdgekdError("uint8 calibration pixels need the model's normalization (mean/std/channel order)")
        self.images = images
        self.batch_size = batch_size
        self.normalization = normalization
        self._cursor = 0

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    @property
    def num_images_used(self) -> int:
        return len(self) * self.batch_size

    @property
    def batch_shape(self) -> tuple[int, int, int, int]:
        return (self.batch_size, *self.images.shape[1:])

    def reset(self) -> None:
        self._cursor = 0

    def batch(self, index: int) -> np.ndarray:
        """Full batch ``index`` (0-based), normalised float32."""
        if not 0 <= index < len(self):
            raise IndexError(f"calibration batch {index} out of range 0..{len(self) - 1}")
        batch = self.images[index * self.batch_size:(index + 1) * self.batch_size]
        if self.normalization is not None and batch.dtype == np.uint8:
            return normalize_pixels(batch, self.normalization)
        return np.ascontiguousarray(batch, dtype=np.float32)

    def next_batch(self) -> np.ndarray | None:
        """The next normalised float32 batch, or None once every full batch was fed."""
        if self._cursor >= len(self):
            return None
        self._cursor += 1
        return self.batch(self._cursor - 1)

    def __iter__(self) -> Iterator[np.ndarray]:
        self.reset()
        while (batch := self.next_batch()) is not None:
            yield batch


def check_method(method: str) -> str:
    """Validate a calibration method name (case-insensitive) and return it lower-cased."""
    name = method.lower()
    if name not in CALIBRATION_METHODS:
        from edgekd.backends.registry import nearest

        raise EdgekdError(
            f"unknown calibration method {method!r}{nearest(name, list(CALIBRATION_METHODS))}; use one of {', '.join(CALIBRATION_METHODS)}"
        )
    return name
