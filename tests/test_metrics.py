"""mIoU and boundary F-score against independent implementations, on random and real inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekd.metrics import BoundaryFScore, ConfusionMatrix
from tests.conftest import CAMVID, require_shared


def numpy_reference_miou(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore: int) -> float:
    """Plain per-class loop: IoU = |P∩T| / |P∪T| over non-ignored pixels, classes present only."""
    valid = target != ignore
    ious = []
    for c in range(num_classes):
        p, t = (pred == c) & valid, (target == c) & valid
        union = (p | t).sum()
        if union:
            ious.append((p & t).sum() / union)
    return float(np.mean(ious))


def test_miou_matches_numpy_and_torchmetrics_on_random_input():
    from torchmetrics.classification import MulticlassJaccardIndex

    rng = np.random.default_rng(1)
    target = rng.integers(0, 7, size=(3, 40, 50))
    pred = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, 6, target.shape))
    pred = np.minimum(pred, 5)
    cm = ConfusionMatrix(6, ignore_index=6)
    cm.update(pred, target)
    tm = MulticlassJaccardIndex(num_classes=7, ignore_index=6, average="none")(torch.tensor(pred), torch.tensor(target))
    assert cm.miou() == pytest.approx(numpy_reference_miou(pred, target, 6, 6), abs=1e-9)
    assert cm.miou() == pytest.approx(tm[:6].mean().item(), abs=1e-6)


def test_prediction_outside_class_range_counts_as_a_miss():
    target = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 11, 1, 1]])  # e.g. a "void" channel predicted by a 12-channel model
    cm = ConfusionMatrix(2, ignore_index=11)
    cm.update(pred, target)
    assert cm.per_class_iou().tolist() == pytest.approx([0.5, 1.0])
    assert cm.pixel_accuracy() == pytest.approx(0.75)


def test_boundary_f_score_perfect_and_shifted():
    target = np.zeros((1, 30, 30), dtype=np.int64)
    target[:, :, 15:] = 1
    perfect = BoundaryFScore(tolerance_px=2)
    perfect.update(target, target)
    assert perfect.f_score() == 1.0
    shifted = np.zeros_like(target)
    shifted[:, :, 20:] = 1  # the edge moved 5 px
    far = BoundaryFScore(tolerance_px=2)
    far.update(shifted, target)
    assert far.f_score() == 0.0
    near = BoundaryFScore(tolerance_px=5)
    near.update(shifted, target)
    assert near.f_score() == 1.0


def test_miou_on_real_camvid_labels_matches_numpy_reference():
    import cv2

    root = require_shared(CAMVID)
    names = sorted((root / "valannot").iterdir())[:3]
    targets = np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in names]).astype(np.int64)
    # A plausible prediction: the label map shifted by 3 px, with the void class replaced by road.
    pred = np.roll(targets, 3, axis=2)
    pred[pred == 11] = 3
    cm = ConfusionMatrix(11, ignore_index=11)
    cm.update(pred, targets)
    assert cm.miou() == pytest.approx(numpy_reference_miou(pred, targets, 11, 11), abs=1e-9)
    assert 0.3 < cm.miou() < 1.0


def test_boundary_of_an_ignore_region_is_not_a_class_boundary():
    target = np.zeros((1, 20, 20), dtype=np.int64)
    target[:, :, 10:] = 1
    target[:, 5:8, :] = 255  # an ignored band across both classes
    score = BoundaryFScore(ignore_index=255, tolerance_px=1)
    score.update(np.where(target == 255, 0, target), target)
    assert score.f_score() == 1.0
