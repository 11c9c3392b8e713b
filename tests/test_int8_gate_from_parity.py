"""The INT8 gate of backends without a search of their own (LiteRT, ExecuTorch): accept or refuse, from parity."""
from __future__ import annotations

import pytest

from edgekd.backends.int8_budget import AccuracyGateError, gate_from_parity

# ESPNet through LiteRT full-integer INT8, 16 CamVid val images (docs/export.md): 70.02 -> 62.92 mIoU
LOSSY = {"status": "below_threshold", "images": 16, "miou_reference": 0.700196, "miou_backend": 0.629201}
CLOSE = {"status": "ok", "images": 16, "miou_reference": 0.700196, "miou_backend": 0.6950}


def test_default_budget_refuses_a_seven_point_loss_in_one_line():
    with pytest.raises(AccuracyGateError) as err:
        gate_from_parity("litert", None, LOSSY)
    message = str(err.value)
    assert "\n" not in message and "litert INT8 cannot meet --max-accuracy-drop 0.7002 mIoU points (default: 1% of the FP32 mIoU)" in message
    assert "best drop 7.10 points (62.92 vs FP32 70.02)" in message and "no artifact written" in message


def test_within_budget_passes_and_records_the_figures():
    gate = gate_from_parity("executorch", None, CLOSE)
    assert gate["status"] == "passed" and gate["measured_as"] == "parity vs PyTorch FP32"
    assert gate["fp32_miou"] == pytest.approx(70.02, abs=0.01) and gate["int8_miou"] == pytest.approx(69.5)
    assert gate["drop_points"] == pytest.approx(0.52, abs=0.01) and gate["validation_images"] == 16


def test_explicit_budget_and_off():
    assert gate_from_parity("litert", 8, LOSSY)["status"] == "passed"
    off = gate_from_parity("litert", "off", LOSSY)
    assert off["status"] == "off" and off["int8_miou"] == pytest.approx(62.92, abs=0.01)


def test_no_parity_figures_is_not_measured_not_passed():
    gate = gate_from_parity("litert", None, {"status": "skipped", "reason": "no labelled images given"})
    assert gate == {"status": "not measured", "reason": "no labelled images given"}
