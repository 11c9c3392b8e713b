"""Weight checks: subnormal / NaN / Inf / FP16-range counts on a crafted state dict (golden counts) and flushing."""
from __future__ import annotations

import math

import pytest
import torch

from edgekd.doctor.weights import (
    check_weights, count_subnormals, denormals_flushed, flush_subnormals, subnormal_mask, weights_health,
)

TINY32 = torch.finfo(torch.float32).tiny


def crafted_state() -> dict[str, torch.Tensor]:
    """Golden content: conv.weight has 3 subnormals, 1 NaN, 1 Inf, 1 value > 65504, 1 normal value < FP16's tiny."""
    return {
        "conv.weight": torch.tensor([1.0, 1e-40, -1e-42, 0.0, math.nan, math.inf, TINY32 / 2, 7.0e4, 1e-5, -0.5]),
        "bn.running_mean": torch.tensor([1e-39, 0.25, 0.0, 0.0]),  # 1 subnormal
        "bn.num_batches_tracked": torch.tensor(3),  # integer buffer: skipped
        "fc.weight": torch.ones(2, 3),
    }


def codes(findings) -> dict[str, str]:
    return {f.code: f.severity for f in findings}


def test_health_golden_counts():
    health = {h.name: h for h in weights_health(crafted_state())}
    assert set(health) == {"conv.weight", "bn.running_mean", "fc.weight"}
    conv = health["conv.weight"]
    assert (conv.numel, conv.subnormal, conv.nan, conv.inf, conv.fp16_overflow, conv.fp16_underflow) == (10, 3, 1, 1, 1, 1)
    assert health["bn.running_mean"].subnormal == 1
    assert health["fc.weight"].subnormal == 0
    assert count_subnormals(crafted_state()) == 4


def test_check_weights_findings_and_details():
    findings = check_weights(crafted_state())
    assert codes(findings) == {"nonfinite-weights": "error", "subnormal-weights": "warning", "fp16-overflow": "warning",
                               "fp16-underflow": "info"}
    sub = next(f for f in findings if f.code == "subnormal-weights")
    assert sub.details["count"] == 4 and sub.details["of_values"] == 20 and sub.details["tensors_affected"] == 2
    assert sub.details["per_tensor"] == {"conv.weight": 3, "bn.running_mean": 1}
    nonfinite = next(f for f in findings if f.code == "nonfinite-weights")
    assert nonfinite.details["nan"]["count"] == 1 and nonfinite.details["inf"]["count"] == 1


def test_clean_weights_have_no_findings():
    torch.manual_seed(0)
    assert check_weights({"w": torch.randn(64, 64), "b": torch.zeros(64)}) == []


def test_flush_zeroes_only_subnormals_and_leaves_input_alone():
    state = crafted_state()
    original = state["conv.weight"].clone()
    new, count = flush_subnormals(state)
    assert count == 4
    assert torch.equal(state["conv.weight"].nan_to_num(), original.nan_to_num())  # input untouched
    w = new["conv.weight"]
    assert w[1].item() == 0 and w[2].item() == 0 and w[6].item() == 0
    assert w[0].item() == 1.0 and math.isnan(w[4].item()) and math.isinf(w[5].item()) and w[8].item() == pytest.approx(1e-5)
    assert new["bn.num_batches_tracked"] is state["bn.num_batches_tracked"]
    assert new["fc.weight"] is state["fc.weight"]  # untouched tensors are passed through
    assert count_subnormals(new) == 0 and flush_subnormals(new)[1] == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_subnormals_of_other_float_types(dtype):
    tiny = torch.finfo(dtype).tiny
    x = torch.tensor([tiny / 4, -tiny / 8, tiny, 0.0, 1.0], dtype=dtype)
    assert subnormal_mask(x).tolist() == [True, True, False, False, False]


def test_detection_does_not_depend_on_the_thread_denormal_mode():
    """With DAZ on, the CPU compares subnormals equal to zero; the bit test must still see them."""
    x = torch.tensor([1e-40, 1.0])
    assert not denormals_flushed()
    torch.set_flush_denormal(True)
    try:
        assert denormals_flushed()
        assert subnormal_mask(x).tolist() == [True, False]
        assert flush_subnormals({"x": x})[1] == 1
    finally:
        torch.set_flush_denormal(False)
