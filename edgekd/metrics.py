"""Segmentation accuracy: confusion-matrix mIoU with an ignore index, and boundary F-score.

Predictions outside 0..num_classes-1 (e.g. a model's extra "void" channel) count as wrong for
the true class: they add to its false negatives and to no class's true positives.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from edgekd.errors import EdgekdError


class ClassCountError(EdgekdError):
    """A model's output channels are not the dataset's classes: any mIoU computed would be wrong."""


def has_void_head(model_classes: int, num_classes: int, ignore_index: int | None) -> bool:
    """One extra trailing channel that is the dataset's void label (ESPNet's CamVid head: 12 outputs,
    11 classes, ignore index 11). Its predictions count as wrong (see ``ConfusionMatrix``)."""
    return model_classes == num_classes + 1 and ignore_index == num_classes


def check_class_count(model_classes: int, num_classes: int, ignore_index: int | None, *, model: str, dataset: str) -> None:
    """Refuse scoring a model on a dataset of another label set, naming both counts.

    The one mismatch allowed is the void head of ``has_void_head``; any other would print an mIoU
    under the dataset's class names that measures nothing (class i of the model is not class i of
    the data).
    """
    model_classes, num_classes = int(model_classes), int(num_classes)
    if model_classes == num_classes or has_void_head(model_classes, num_classes, ignore_index):
        return
    raise ClassCountError(
        f"{model} predicts {model_classes} classes but dataset {dataset} has {num_classes} (ignore index {ignore_index}): "
        "its mIoU would be meaningless; evaluate on the label set the model was trained on (only one extra trailing "
        "void channel is accepted, when the ignore index equals the class count)")


def _to_numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


class ConfusionMatrix:
    """Accumulates a num_classes × (num_classes + 1) matrix: rows true class, last column = 'other'."""

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    def update(self, pred, target) -> None:
        pred = _to_numpy(pred).astype(np.int64).ravel()
        target = _to_numpy(target).astype(np.int64).ravel()
        if pred.shape != target.shape:
            raise ValueError(f"prediction has {pred.size} pixels, target {target.size}")
        keep = (target >= 0) & (target < self.num_classes)
        if self.ignore_index is not None:
            keep &= target != self.ignore_index
        pred, target = pred[keep], target[keep]
        pred = np.where((pred >= 0) & (pred < self.num_classes), pred, self.num_classes)
        idx = target * (self.num_classes + 1) + pred
        self.matrix += np.bincount(idx, minlength=self.matrix.size).reshape(self.matrix.shape)

    def per_class_iou(self) -> np.ndarray:
        """IoU per class; NaN for a class absent from both prediction and target."""
        square = self.matrix[:, : self.num_classes]
        tp = np.diag(square).astype(np.float64)
        fn = self.matrix.sum(axis=1) - tp
        fp = square.sum(axis=0) - tp
        denom = tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)

    def miou(self) -> float:
        """Mean IoU over classes that occur in prediction or target."""
        iou = self.per_class_iou()
        return float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else float("nan")

    def pixel_accuracy(self) -> float:
        total = self.matrix.sum()
        return float(np.trace(self.matrix[:, : self.num_classes]) / total) if total else float("nan")


def _boundary(labels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Pixels whose 4-neighbourhood holds another label; pairs touching an ignored pixel do not count
    (the edge of an ignore region is not a class boundary)."""
    b = np.zeros(labels.shape, dtype=bool)
    horizontal = (labels[:, 1:] != labels[:, :-1]) & valid[:, 1:] & valid[:, :-1]
    vertical = (labels[1:, :] != labels[:-1, :]) & valid[1:, :] & valid[:-1, :]
    b[:, 1:] |= horizontal
    b[:, :-1] |= horizontal
    b[1:, :] |= vertical
    b[:-1, :] |= vertical
    return b


class BoundaryFScore:
    """Boundary F-score (Perazzi et al. 2016 / Csurka et al. 2013) at a pixel tolerance.

    A predicted boundary pixel is a hit when a ground-truth boundary pixel lies within
    ``tolerance_px`` (Chebyshev distance, i.e. a (2t+1)² square) and vice versa; precision and
    recall are pooled over all images, ignored pixels excluded. Default tolerance: 2 px at the
    evaluation resolution.
    """

    def __init__(self, ignore_index: int | None = None, tolerance_px: int = 2) -> None:
        self.ignore_index = ignore_index
        self.tolerance_px = tolerance_px
        self.kernel = np.ones((2 * tolerance_px + 1, 2 * tolerance_px + 1), np.uint8)
        self.hits_pred = self.total_pred = self.hits_true = self.total_true = 0

    def update(self, pred, target) -> None:
        pred, target = _to_numpy(pred), _to_numpy(target)
        for p, t in zip(pred.reshape(-1, *pred.shape[-2:]), target.reshape(-1, *target.shape[-2:])):
            valid = np.ones(t.shape, bool) if self.ignore_index is None else t != self.ignore_index
            bp = _boundary(p, valid)
            bt = _boundary(t, valid)
            near_t = cv2.dilate(bt.astype(np.uint8), self.kernel).astype(bool)
            near_p = cv2.dilate(bp.astype(np.uint8), self.kernel).astype(bool)
            self.hits_pred += int((bp & near_t).sum())
            self.total_pred += int(bp.sum())
            self.hits_true += int((bt & near_p).sum())
            self.total_true += int(bt.sum())

    def f_score(self) -> float:
        precision = self.hits_pred / self.total_pred if self.total_pred else 0.0
        recall = self.hits_true / self.total_true if self.total_true else 0.0
        return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
