"""Doctor checks for LiteRT / ExecuTorch: XNNPACK fallbacks and dynamic shapes, from delegation records and real lowering."""
from __future__ import annotations

import pytest

from edgekd.doctor import mobile


def record(by_op: dict[str, tuple[int, int]], partitions: int = 1) -> dict:
    ops = {k: {"delegated": d, "not_delegated": n} for k, (d, n) in by_op.items()}
    delegated = sum(d for d, _ in by_op.values())
    total = delegated + sum(n for _, n in by_op.values())
    return {"by_op": ops, "partitions": partitions, "delegated_nodes": delegated, "total_nodes": total}


def test_fully_delegated_graph_has_no_finding():
    rec = record({"aten.convolution.default": (12, 0), "getitem": (0, 3), "dim_order_ops._to_dim_order_copy.default": (0, 1)})
    assert mobile.check_delegation(rec, "executorch", "pixel-9") == []


def test_avg_pool_fallback_is_a_warning_naming_the_op_and_the_fix():
    rec = record({"aten.convolution.default": (10, 0), "aten.avg_pool2d.default": (0, 2)}, partitions=3)
    (finding,) = mobile.check_delegation(rec, "executorch", "pixel-9")
    assert finding.severity == "warning" and finding.code == "xnnpack-op-fallback" and finding.device == "pixel-9"
    assert finding.details["ops"] == {"aten.avg_pool2d.default": 2} and finding.details["partitions"] == 3
    assert "count_include_pad=False" in finding.fix and "aten.avg_pool2d.default ×2" in finding.what


def test_nothing_delegated_is_an_error_and_no_record_is_info():
    (err,) = mobile.check_delegation(record({"CONV_2D": (0, 4)}), "litert", None)
    assert err.severity == "error" and err.code == "xnnpack-nothing-delegated"
    (info,) = mobile.check_delegation(None, "litert", None)
    assert info.severity == "info" and info.code == "check-skipped"


def test_dynamic_dimensions_are_flagged():
    assert mobile.check_fixed_shapes([{"name": "x", "shape": [1, 3, 360, 480]}], "litert", None) == []
    (finding,) = mobile.check_fixed_shapes([{"name": "x", "shape": [-1, 3, 360, 480]}], "litert", "galaxy-s24-ultra")
    assert finding.code == "mobile-dynamic-shape" and finding.details["inputs"] == {"x": [-1, 3, 360, 480]}


@pytest.mark.backend
def test_real_lowering_finds_the_padded_average_pool(tmp_path):
    """ESPNet's AvgPool2d(3, 2, padding=1) counts the padding: XNNPACK's pooling cannot, so it falls back."""
    pytest.importorskip("executorch.runtime", reason="executorch is not installed (pip install 'edgekd[executorch]')")
    import torch
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(3, 2, padding=1), nn.Conv2d(8, 4, 1))
    findings = mobile.check_checkpoint(model, (32, 48), "pixel-9")
    assert [f.code for f in findings] == ["xnnpack-op-fallback"]
    assert any("avg_pool2d" in op for op in findings[0].details["ops"])
    clean = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(3, 2, padding=1, count_include_pad=False))
    assert mobile.check_checkpoint(clean, (32, 48), "pixel-9") == []
