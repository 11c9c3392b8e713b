"""Parity figures on hand-made logits whose answers are known."""
from __future__ import annotations

import numpy as np

from edgekd.parity import compare, summary_line, worst_warning


def _logits(classes: np.ndarray, num_classes: int = 3) -> np.ndarray:
    """One-hot logits (N×C×H×W) whose argmax is ``classes`` (N×H×W)."""
    return np.moveaxis(np.eye(num_classes, dtype=np.float32)[classes], -1, 1)


def test_identical_outputs_agree_fully():
    classes = np.array([[[0, 1], [2, 2]]])
    result = compare(_logits(classes), _logits(classes), classes, num_classes=3, ignore_index=255)
    assert result["max_abs_logit_diff"] == 0 and result["argmax_agreement"] == 1.0 and result["miou_delta"] == 0.0
    assert result["miou_reference"] == 1.0 and "warning" not in result


def test_one_flipped_pixel_of_four():
    target = np.array([[[0, 1], [2, 2]]])
    candidate = np.array([[[0, 1], [2, 1]]])
    result = compare(_logits(target), _logits(candidate), target, num_classes=3, ignore_index=255, threshold=0.98)
    assert result["argmax_agreement"] == 0.75 and result["max_abs_logit_diff"] == 1.0
    # candidate IoUs: class0 1, class1 1/2, class2 1/2 → mIoU 2/3; reference 1 → delta -1/3
    assert abs(result["miou_delta"] - (-1 / 3)) < 1e-6
    assert "below 0.98" in result["warning"] and worst_warning(result) == result["warning"]
    assert "argmax agreement 75.00%" in summary_line("x", result)


def test_ignored_pixels_do_not_count_in_miou_but_do_in_agreement():
    target = np.array([[[0, 255], [1, 1]]])
    reference = np.array([[[0, 0], [1, 1]]])
    candidate = np.array([[[0, 1], [1, 1]]])
    result = compare(_logits(reference), _logits(candidate), target, num_classes=3, ignore_index=255)
    assert result["argmax_agreement"] == 0.75 and result["miou_delta"] == 0.0


def test_shape_mismatch_is_a_failed_parity_not_a_crash():
    a = np.zeros((1, 3, 4, 4), np.float32)
    result = compare(a, np.zeros((1, 3, 4, 5), np.float32), np.zeros((1, 4, 4), np.int64), num_classes=3, ignore_index=None)
    assert result["status"] == "failed" and "differs from the reference" in result["reason"]


def test_variant_warnings_surface():
    parity = {"status": "ok", "variants": {"device default": {"warning": "low"}}}
    assert worst_warning(parity) == "[device default] low"
