"""Reading images and label masks with OpenCV, with errors that name the file.

Files are read as bytes and decoded with ``cv2.imdecode`` so that any path works (cv2.imread
fails silently on some non-ASCII paths). EXIF orientation is ignored on purpose: label masks are
drawn on the stored pixel grid, and rotating only the photo would misalign the pair.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgekd.data.info import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")  # lossless only: JPEG would corrupt labels


def _read_bytes(path: Path) -> np.ndarray:
    try:
        return np.fromfile(str(path), dtype=np.uint8)
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err.strerror or err}); check that it exists and is readable") from err


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 H×W×3 array (grey and RGBA files are converted to 3-channel RGB)."""
    data = _read_bytes(path)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if bgr is None:
        raise DataError(f"{path} is not a readable image ({data.size} bytes); replace or remove it")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_mask(path: Path) -> np.ndarray:
    """A uint8 H×W array of class indices; anything but 8-bit single channel is refused."""
    data = _read_bytes(path)
    mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if mask is None:
        raise DataError(f"{path} is not a readable mask image ({data.size} bytes); replace or remove it")
    if mask.ndim != 2:
        raise DataError(
            f"{path} is a {mask.shape[2]}-channel mask; masks must be 8-bit single-channel PNGs of class "
            f"indices (colour-coded or palette PNGs, e.g. Pascal VOC's, decode to colour: save the class indices as a greyscale PNG)"
        )
    if mask.dtype != np.uint8:
        raise DataError(f"{path} is a {mask.dtype} mask; masks must be 8-bit (values 0..255) single-channel PNGs")
    return mask


def encode_png(array: np.ndarray, *, rgb: bool) -> bytes:
    """PNG bytes of an RGB image (``rgb=True``) or a single-channel mask; deterministic per input.

    Photos use zlib's run-length strategy: on noisy camera-like images it was both faster
    (~6 vs ~9 ms at 240x320) and smaller (~135 vs ~150 kB) than the default filtered level 1.
    """
    pixels = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if rgb else array
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    if rgb:
        params += [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    ok, buf = cv2.imencode(".png", pixels, params)
    if not ok:
        raise DataError(f"OpenCV could not encode a {array.shape} {array.dtype} array as PNG")
    return buf.tobytes()


def write_png(path: Path, array: np.ndarray, *, rgb: bool) -> None:
    path.write_bytes(encode_png(array, rgb=rgb))
