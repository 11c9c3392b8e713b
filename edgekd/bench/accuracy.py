"""Accuracy through a backend session: mIoU, per-class IoU, boundary F-score on a dataset split.

The protocol is the one ``edgekd.evaluate`` uses for PyTorch, done with the same numpy/OpenCV
pre-processing the end-to-end pipeline times: the image is resized to the model input and
normalised by the artifact's manifest, logits are resized (bilinear) to the label's size and
argmaxed there. The delta versus FP32 compares with a PyTorch FP32 run of the same checkpoint
through this very code, so only the runtime differs between the two numbers.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import cv2
import numpy as np

from edgekd.bench.e2e import FramePipeline
from edgekd.bench.finite import check_finite
from edgekd.metrics import BoundaryFScore, ConfusionMatrix, check_class_count

BOUNDARY_TOLERANCE_PX = 2
_CV2_MAX_CHANNELS = 512


def logits_to_labels(logits: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Class map H×W at ``out_hw`` from logits 1×C×h×w: bilinear resize of the scores, then argmax."""
    scores = logits[0].transpose(1, 2, 0)
    if scores.shape[:2] != tuple(out_hw):
        if scores.shape[2] <= _CV2_MAX_CHANNELS:
            scores = cv2.resize(scores, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)
        else:
            scores = np.stack([cv2.resize(np.ascontiguousarray(scores[..., c]), (out_hw[1], out_hw[0]),
                                          interpolation=cv2.INTER_LINEAR) for c in range(scores.shape[2])], -1)
        if scores.ndim == 2:  # a single-channel output loses its channel axis in cv2.resize
            scores = scores[..., None]
    return np.argmax(scores, axis=2)


def evaluate_session(run: Callable[[np.ndarray], np.ndarray], sync: Callable[[], None], dataset: Any, *,
                     input_hw: tuple[int, int], normalization: dict[str, Any], limit: int | None = None) -> dict[str, Any]:
    """Accuracy of ``run`` on ``dataset`` (an ``edgekd.data`` split: ``read_pair`` gives RGB uint8 + labels)."""
    info = dataset.info
    confusion = ConfusionMatrix(info.num_classes, info.ignore_index)
    boundary = BoundaryFScore(info.ignore_index, BOUNDARY_TOLERANCE_PX)
    n = len(dataset) if limit is None else min(len(dataset), int(limit))
    if n == 0:
        raise ValueError(f"dataset split {getattr(dataset, 'split', '?')!r} under {info.root} has no images")
    pre = FramePipeline(run, sync, input_hw, tuple(normalization["mean"]), tuple(normalization["std"]),
                        normalization.get("channel_order", "RGB"), camera_hw=input_hw)
    t0 = time.perf_counter_ns()
    for i in range(n):
        image, mask = dataset.read_pair(i)
        logits = np.asarray(run(pre.preprocess(image)))
        sync()
        if i == 0:
            check_class_count(logits.shape[1], info.num_classes, info.ignore_index, model="the artifact's output",
                              dataset=f"{info.name} ({info.root})")
        check_finite(logits, f"logits of image {i} of {info.name}")
        pred = logits_to_labels(logits, mask.shape)
        confusion.update(pred, mask)
        boundary.update(pred, mask)
    seconds = (time.perf_counter_ns() - t0) / 1e9
    per_class = confusion.per_class_iou()
    return {
        "dataset": info.name, "split": getattr(dataset, "split", None), "images": n,
        "miou": confusion.miou(),
        "per_class_iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(info.class_names, per_class)},
        "pixel_accuracy": confusion.pixel_accuracy(),
        "boundary_f": boundary.f_score(), "boundary_tolerance_px": BOUNDARY_TOLERANCE_PX,
        "eval_s": seconds, "protocol": "resize to input (bilinear), logits resized to label size (bilinear), argmax",
    }


def evaluate_fused(session: Any, contract: dict[str, Any], dataset: Any, *, limit: int | None = None) -> dict[str, Any]:
    """Accuracy of a fused artifact (``--embed-pre-post``): each image is resized (bilinear) to the
    artifact's camera frame size and fed as the uint8 frame in the contract's channel order; the
    uint8 class map that comes out is resized (nearest) to the label's size."""
    from edgekd.bench.e2e import FusedFramePipeline

    frame_hw = tuple(int(v) for v in contract["input"]["shape"][1:3])
    pipeline = FusedFramePipeline(session, contract, frame_hw)
    bgr = contract["input"].get("channel_order", "RGB").upper() == "BGR"
    info = dataset.info
    confusion = ConfusionMatrix(info.num_classes, info.ignore_index)
    boundary = BoundaryFScore(info.ignore_index, BOUNDARY_TOLERANCE_PX)
    n = len(dataset) if limit is None else min(len(dataset), int(limit))
    t0 = time.perf_counter_ns()
    for i in range(n):
        image, mask = dataset.read_pair(i)
        frame = cv2.resize(image, (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_LINEAR)
        classes = pipeline.classes(frame[..., ::-1] if bgr else frame)
        pred = cv2.resize(classes, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST).astype(np.int64)
        confusion.update(pred, mask)
        boundary.update(pred, mask)
    per_class = confusion.per_class_iou()
    return {
        "dataset": info.name, "split": getattr(dataset, "split", None), "images": n, "miou": confusion.miou(),
        "per_class_iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(info.class_names, per_class)},
        "pixel_accuracy": confusion.pixel_accuracy(), "boundary_f": boundary.f_score(),
        "boundary_tolerance_px": BOUNDARY_TOLERANCE_PX, "eval_s": (time.perf_counter_ns() - t0) / 1e9,
        "protocol": "image resized to the camera frame (bilinear), fused graph (resize, normalise, argmax inside), "
                    "class map resized to label size (nearest)",
    }


def open_split(root: str, split: str = "val"):
    """The dataset split to evaluate on (imports ``edgekd.data`` only when accuracy is asked for)."""
    from edgekd.data import open_dataset

    return open_dataset(root, split)


def add_reference_delta(accuracy: dict[str, Any] | None, reference: dict[str, Any] | None) -> dict[str, Any] | None:
    """Put ``delta_miou_vs_fp32`` / ``delta_boundary_f_vs_fp32`` into ``accuracy`` (or the reason there is none)."""
    if accuracy is None or accuracy.get("miou") is None:
        return accuracy
    if not reference or reference.get("miou") is None:
        reason = (reference or {}).get("reason", "no PyTorch FP32 reference for this checkpoint")
        return {**accuracy, "fp32_reference": None, "delta_miou_vs_fp32": None, "delta_reason": reason}
    if reference.get("images") != accuracy.get("images"):
        return {**accuracy, "fp32_reference": reference, "delta_miou_vs_fp32": None,
                "delta_reason": f"reference used {reference.get('images')} images, this cell {accuracy.get('images')}"}
    return {
        **accuracy, "fp32_reference": {k: reference.get(k) for k in ("miou", "boundary_f", "images", "artifact")},
        "delta_miou_vs_fp32": accuracy["miou"] - reference["miou"],
        "delta_boundary_f_vs_fp32": accuracy["boundary_f"] - reference["boundary_f"],
    }
