"""Synthetic AR datasets and video sequences written in the folder layout, plus a reusable cache.

``generate_synthetic_dataset`` writes ``images/*.png``, ``masks/*.png``, ``train.txt``,
``val.txt``, ``dataset.yaml`` and ``synthetic.json`` (the generation parameters; written last,
so its presence marks a complete dataset). Files are written into a hidden temporary folder
beside the target and renamed into place, so an interrupted run never leaves a half dataset.
Image *i* of the train split is drawn from ``default_rng([seed, 0, i])`` and of val from
``[seed, 1, i]``: each image is fixed by (seed, split, index) alone, so changing the number of
training images does not change the validation set.

``generate_sequence`` / ``render_sequence`` give a short clip of one consistent scene seen by a
moving camera (pan, zoom, hand-held shake) with the user's hand moving independently, for
temporal-stability metrics. The scene is rendered once on a larger canvas; each frame is a
similarity warp of it (image bilinear, mask nearest) plus per-frame sensor noise.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from edgekd.data.figures import draw_hand, sample_hand_pose
from edgekd.data.info import DataError, write_dataset_yaml
from edgekd.data.io import write_png
from edgekd.data.scene import (HAND, SYNTHETIC_CLASSES, SYNTHETIC_IGNORE_INDEX, apply_look, render_layers,
                               render_scene, sample_look)
from edgekd.data.shapes import EMPTY
from edgekd.data.transforms import as_hw
from edgekd.paths import cache_dir

GENERATOR_VERSION = 1  # bump whenever the pixels a seed produces change (invalidates caches)
CAMERA_MOTIONS = ("static", "pan", "zoom", "shake", "handheld")
DEFAULT_SIZE = (240, 320)


def _publish(tmp: Path, out_dir: Path, overwrite: bool) -> Path:
    """Rename the finished temporary folder to ``out_dir`` (replacing it only when asked)."""
    if out_dir.exists():
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        elif overwrite:
            trash = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
            out_dir.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DataError(f"{out_dir} already exists and is not empty; choose another folder or pass overwrite=True (--force)")
    tmp.rename(out_dir)
    return out_dir


def _temporary_dir(out_dir: Path) -> Path:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    (tmp / "images").mkdir(parents=True)
    (tmp / "masks").mkdir()
    return tmp


def _check_count(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DataError(f"{name} {value!r} must be an integer >= {minimum}")
    return value


def _check_size(size: int | Sequence[int]) -> tuple[int, int]:
    h, w = as_hw(size, "synthetic image size")
    if not (32 <= h <= 4096 and 32 <= w <= 4096):
        raise DataError(f"synthetic image size {h}x{w} is out of range; use 32..4096 pixels per side (e.g. 240x320)")
    return h, w


def generate_synthetic_dataset(
    out_dir: str | Path,
    *,
    num_train: int = 300,
    num_val: int = 60,
    size: int | Sequence[int] = DEFAULT_SIZE,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic AR dataset in the folder layout and return its root (see module doc)."""
    _check_count("num_train", num_train, 0)
    _check_count("num_val", num_val, 0)
    if num_train + num_val == 0:
        raise DataError("num_train + num_val is 0; ask for at least one image")
    size = _check_size(size)
    out_dir = Path(out_dir).expanduser().resolve()
    if out_dir.exists() and not overwrite and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DataError(f"{out_dir} already exists and is not empty; choose another folder or pass overwrite=True (--force)")
    tmp = _temporary_dir(out_dir)
    try:
        for split, stream, count in (("train", 0, num_train), ("val", 1, num_val)):
            names = []
            for i in range(count):
                image, mask = render_scene(np.random.default_rng([seed, stream, i]), size)
                names.append(f"{split}_{i:05d}")
                write_png(tmp / "images" / f"{names[-1]}.png", image, rgb=True)
                write_png(tmp / "masks" / f"{names[-1]}.png", mask, rgb=False)
            (tmp / f"{split}.txt").write_text("".join(n + "\n" for n in names), encoding="utf-8")
        write_dataset_yaml(tmp, name="synthetic-ar", class_names=SYNTHETIC_CLASSES, ignore_index=SYNTHETIC_IGNORE_INDEX,
                           layout="folder", description="edgekd synthetic AR scenes (edgekd data synth)")
        _write_meta(tmp, {"kind": "dataset", "seed": seed, "size": list(size), "num_train": num_train, "num_val": num_val})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, out_dir, overwrite)


def _write_meta(root: Path, params: dict) -> None:
    meta = {"generator": "edgekd.data.synthetic", "generator_version": GENERATOR_VERSION,
            "classes": list(SYNTHETIC_CLASSES), "ignore_index": SYNTHETIC_IGNORE_INDEX, **params}
    (root / "synthetic.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def default_synthetic_root(
    *,
    num_train: int = 300,
    num_val: int = 60,
    size: int | Sequence[int] = DEFAULT_SIZE,
    seed: int = 0,
) -> Path:
    """A synthetic dataset in the cache, generated on first use and reused afterwards.

    The folder name hashes the parameters and ``GENERATOR_VERSION``, so different requests never
    share a folder and a changed generator never serves stale images. Safe when two processes ask
    at once: each generates privately and the first to finish publishes.
    """
    size = _check_size(size)
    params = {"seed": seed, "size": list(size), "num_train": num_train, "num_val": num_val, "version": GENERATOR_VERSION}
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    root = cache_dir() / f"synthetic-{key}"
    if (root / "synthetic.json").is_file():
        return root
    try:
        return generate_synthetic_dataset(root, num_train=num_train, num_val=num_val, size=size, seed=seed)
    except (DataError, OSError):
        if (root / "synthetic.json").is_file():  # another process published it first
            return root
        raise


def _trajectory(rng: np.random.Generator, num_frames: int, motion: str, size: tuple[int, int]) -> np.ndarray:
    """Per frame (dx, dy, scale, angle_degrees) of the camera window over the canvas; smooth in time."""
    h, w = size
    t = np.linspace(0.0, 1.0, num_frames)
    dx, dy, scale, angle = np.zeros_like(t), np.zeros_like(t), np.ones_like(t), np.zeros_like(t)
    if motion in ("pan", "handheld"):
        amp = rng.uniform(0.08, 0.15) * w * (0.5 if motion == "handheld" else 1.0)
        direction = 1.0 if rng.random() < 0.5 else -1.0
        ease = 0.5 - 0.5 * np.cos(np.pi * t)  # smooth start and stop
        dx += direction * amp * (2 * ease - 1)
        dy += rng.uniform(-0.03, 0.03) * h * np.sin(np.pi * t)
    if motion in ("zoom", "handheld"):
        scale *= 1 + rng.uniform(0.15, 0.3) * (0.5 if motion == "handheld" else 1.0) * (0.5 - 0.5 * np.cos(2 * np.pi * t))
    if motion in ("shake", "handheld"):
        for _ in range(3):
            f, phase = rng.uniform(1.5, 5.0), rng.uniform(0, 2 * np.pi, 3)
            dx += 0.006 * w * np.sin(2 * np.pi * f * t + phase[0])
            dy += 0.006 * h * np.sin(2 * np.pi * f * t + phase[1])
            angle += 0.5 * np.sin(2 * np.pi * f * t + phase[2])
    return np.stack([dx, dy, scale, angle], axis=1)


def _window(canvas_hw, frame_hw, dx, dy, scale, angle) -> np.ndarray:
    """Affine map canvas -> frame for a camera window centred at canvas centre + (dx, dy)."""
    (ch, cw), (h, w) = canvas_hw, frame_hw
    m = cv2.getRotationMatrix2D(((cw - 1) / 2 + dx, (ch - 1) / 2 + dy), angle, scale)
    m[:, 2] += ((w - 1) / 2 - (cw - 1) / 2 - dx, (h - 1) / 2 - (ch - 1) / 2 - dy)
    return m


def render_sequence(
    num_frames: int,
    size: int | Sequence[int] = DEFAULT_SIZE,
    seed: int = 0,
    camera_motion: str = "handheld",
) -> tuple[np.ndarray, np.ndarray]:
    """Frames T×H×W×3 (RGB uint8) and masks T×H×W (uint8) of one scene under smooth camera motion.

    ``camera_motion``: ``static``, ``pan`` (a smooth sweep), ``zoom`` (in and back out),
    ``shake`` (hand-held jitter with slight roll) or ``handheld`` (all three, milder).
    """
    _check_count("num_frames", num_frames, 1)
    if camera_motion not in CAMERA_MOTIONS:
        raise DataError(f"camera_motion {camera_motion!r} is not one of {list(CAMERA_MOTIONS)}")
    h, w = _check_size(size)
    rng = np.random.default_rng([seed, 2])
    canvas_hw = (math.ceil(1.5 * h), math.ceil(1.5 * w))
    canvas, canvas_mask = render_layers(rng, canvas_hw, hands=False, view=(h, w))
    hand_rgb, hand_lab = np.zeros_like(canvas), np.full(canvas_hw, EMPTY, np.uint8)
    pose = sample_hand_pose(rng, (h, w))
    pose = type(pose)((pose.center[0] + (canvas_hw[1] - w) / 2, pose.center[1] + (canvas_hw[0] - h) / 2),
                      pose.direction, pose.palm_length)
    draw_hand(hand_rgb, hand_lab, rng, pose, HAND, (0.0, -1.0))
    look = sample_look(rng)
    path = _trajectory(rng, num_frames, camera_motion, (h, w))
    hand_path = _trajectory(rng, num_frames, "handheld", (h, w)) * (0.8, 1.5, 1, 2)  # the hand moves on its own
    frames = np.empty((num_frames, h, w, 3), np.uint8)
    masks = np.empty((num_frames, h, w), np.uint8)
    for k in range(num_frames):
        m = _window(canvas_hw, (h, w), *path[k])
        image = cv2.warpAffine(canvas, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        masks[k] = cv2.warpAffine(canvas_mask, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
        mh = _window(canvas_hw, (h, w), *hand_path[k])
        lab = cv2.warpAffine(hand_lab, mh, (w, h), flags=cv2.INTER_NEAREST, borderValue=EMPTY)
        drawn = (lab != EMPTY).view(np.uint8)
        cv2.copyTo(cv2.warpAffine(hand_rgb, mh, (w, h), flags=cv2.INTER_LINEAR), drawn, image)
        cv2.copyTo(lab, drawn, masks[k])
        frames[k] = apply_look(image, look, rng, gain_scale=1 + 0.02 * math.sin(2 * math.pi * k / 40))
    return frames, masks


def generate_sequence(
    out_dir: str | Path,
    *,
    num_frames: int = 30,
    size: int | Sequence[int] = DEFAULT_SIZE,
    seed: int = 0,
    camera_motion: str = "handheld",
    overwrite: bool = False,
) -> Path:
    """Write ``render_sequence`` as a folder dataset (``images/frame_00000.png`` ...; split ``all``
    lists the frames in time order) with ``dataset.yaml`` and ``synthetic.json``; return the root."""
    frames, masks = render_sequence(num_frames, size, seed, camera_motion)
    out_dir = Path(out_dir).expanduser().resolve()
    if out_dir.exists() and not overwrite and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DataError(f"{out_dir} already exists and is not empty; choose another folder or pass overwrite=True (--force)")
    tmp = _temporary_dir(out_dir)
    try:
        for k in range(num_frames):
            write_png(tmp / "images" / f"frame_{k:05d}.png", frames[k], rgb=True)
            write_png(tmp / "masks" / f"frame_{k:05d}.png", masks[k], rgb=False)
        write_dataset_yaml(tmp, name="synthetic-ar-sequence", class_names=SYNTHETIC_CLASSES,
                           ignore_index=SYNTHETIC_IGNORE_INDEX, layout="folder",
                           description=f"edgekd synthetic AR sequence, camera motion {camera_motion}")
        _write_meta(tmp, {"kind": "sequence", "seed": seed, "size": list(frames.shape[1:3]),
                          "num_frames": num_frames, "camera_motion": camera_motion})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, out_dir, overwrite)
