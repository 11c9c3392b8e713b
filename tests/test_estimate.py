"""Cost model FLOPs/bytes against hand-computed values, and the roofline arithmetic."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekd.errors import EdgekdError
from edgekd.estimate.onnx_cost import graph_cost
from edgekd.estimate.roofline import estimate_cost


def vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def w(name, shape):
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def model(nodes, inputs, outputs, inits):
    g = helper.make_graph(nodes, "t", inputs, outputs, initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def costs(m, fuse=True):
    return {n.name: n for n in graph_cost(m, fuse=fuse).nodes}


def test_conv_gemm_matmul_convtranspose_flops_by_hand():
    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], name="conv", pads=[1, 1, 1, 1]),  # 3→8, 3×3, 32×32
        helper.make_node("Conv", ["d_in", "dw"], ["d"], name="dw", pads=[1, 1, 1, 1], group=8),  # depthwise 8, 16×16
        helper.make_node("ConvTranspose", ["t_in", "tw"], ["t"], name="deconv", strides=[2, 2]),  # 4→2, 2×2, 8×8→16×16
        helper.make_node("Gemm", ["a", "gb", "gc"], ["g"], name="gemm"),  # 4×16 @ 16×10 + 10
        helper.make_node("MatMul", ["m_in", "mw"], ["mm"], name="matmul"),  # 2×3×4 @ 4×5
    ]
    inputs = [vi("x", [1, 3, 32, 32]), vi("d_in", [1, 8, 16, 16]), vi("t_in", [1, 4, 8, 8]), vi("a", [4, 16]), vi("m_in", [2, 3, 4])]
    outputs = [vi(n, None) for n in ("c", "d", "t", "g", "mm")]
    inits = [w("cw", (8, 3, 3, 3)), w("cb", (8,)), w("dw", (8, 1, 3, 3)), w("tw", (4, 2, 2, 2)), w("gb", (16, 10)),
             w("gc", (10,)), w("mw", (4, 5))]
    c = costs(model(nodes, inputs, outputs, inits))
    assert c["conv"].flops == 2 * (8 * 32 * 32) * (3 * 3 * 3) + 8 * 32 * 32  # 450,560 incl. the bias add
    assert c["dw"].flops == 2 * (8 * 16 * 16) * 9  # 36,864
    assert c["deconv"].flops == 2 * (4 * 8 * 8) * (2 * 2 * 2)  # each input pixel scatters to C_out·k·k outputs: 4,096
    assert c["gemm"].flops == 2 * 4 * 16 * 10 + 4 * 10  # 1,320
    assert c["matmul"].flops == 2 * (2 * 3 * 5) * 4  # 240
    conv = c["conv"]
    assert (conv.act_in, conv.weights, conv.act_out) == (3 * 32 * 32, 8 * 27 + 8, 8 * 32 * 32)
    assert conv.bytes_moved(4, 4) == 4 * (3072 + 224 + 8192)
    assert conv.bytes_moved(1, 1) == 3072 + 224 + 8192


def conv_relu_model(extra_consumer: bool):
    nodes = [helper.make_node("Conv", ["x", "cw"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu")]
    outputs = [vi("r", None)]
    if extra_consumer:
        nodes.append(helper.make_node("Sigmoid", ["c"], ["s"], name="sig"))
        outputs.append(vi("s", None))
    return model(nodes, [vi("x", [1, 3, 8, 8])], outputs, [w("cw", (4, 3, 3, 3))])


def test_elementwise_fusion_rule():
    fused = costs(conv_relu_model(False))["relu"]
    assert fused.fused and fused.flops == 4 * 8 * 8 and fused.bytes_moved(4, 4) == 0
    assert not costs(conv_relu_model(False), fuse=False)["relu"].fused
    shared = costs(conv_relu_model(True))  # conv output read twice: cannot live in the conv's epilogue
    assert not shared["relu"].fused and shared["relu"].bytes_moved(4, 4) == 4 * 2 * 256
    assert shared["sig"].flops == 4 * 256


def test_views_move_nothing_and_symbolic_dims_are_recorded():
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "shape")
    m = model([helper.make_node("Reshape", ["x", "shape"], ["y"], name="r")], [vi("x", ["N", 3, 4, 4])], [vi("y", None)], [shape])
    g = graph_cost(m)
    assert g.nodes[0].bytes_moved(4, 4) == 0 and g.flops == 0
    assert "N" in g.assumed_dims


@pytest.fixture
def profile():
    from edgekd.profiles import load_profile

    p = load_profile("jetson-orin-nano")
    hw = replace(p.hardware, peak_fp32_tflops=1.0, peak_fp16_tflops=2.0, memory_bandwidth_gbs=10.0)
    return replace(p, hardware=hw)


def test_roofline_arithmetic(profile):
    m = conv_relu_model(False)
    cost = graph_cost(m)
    e = estimate_cost(cost, profile, "fp32", efficiency=0.5)
    conv = next(n for n in cost.nodes if n.name == "conv")
    t_compute = (conv.flops + 256) / 1e12  # the fused ReLU still computes
    t_memory = conv.bytes_moved(4, 4) / 10e9
    assert t_memory > conv.flops / 1e12  # this tiny conv is memory-bound
    expected_bound_ms = 1e3 * (t_memory + max(256 / 1e12, 0.0))  # conv: memory term; relu: compute only (no traffic)
    assert e.roofline_ms == pytest.approx(expected_bound_ms)  # the DRAM roofline the factor divides
    assert e.bound_ms == pytest.approx(1e3 * cost.flops / 1e12)  # the hard bound: FLOPs / peak
    assert e.latency_ms == pytest.approx(expected_bound_ms / 0.5) and not e.at_bound
    assert e.kind == "estimate" and e.efficiency_source.startswith("given by the user")
    assert (e.memory_bound_layers, e.compute_bound_layers) == (1, 1)
    assert t_compute > 0 and e.basis["bytes_per_element"] == 4.0
    half = estimate_cost(cost, profile, "fp16", efficiency=0.5)
    assert half.roofline_ms == pytest.approx(1e3 * (conv.bytes_moved(2, 2) / 10e9 + 256 / 2e12))


def test_missing_peak_is_an_error_and_missing_bandwidth_a_lower_bound(profile):
    cost = graph_cost(conv_relu_model(False))
    no_fp16 = replace(profile, hardware=replace(profile.hardware, peak_fp16_tflops=None))
    with pytest.raises(EdgekdError, match="peak_fp16_tflops"):
        estimate_cost(cost, no_fp16, "fp16", efficiency=0.5)
    no_bw = replace(profile, hardware=replace(profile.hardware, memory_bandwidth_gbs=None))
    e = estimate_cost(cost, no_bw, "fp32", efficiency=1.0)
    assert e.bound_ms == pytest.approx(1e3 * cost.flops / 1e12) == pytest.approx(e.roofline_ms)
    assert any("lower bound" in n for n in e.notes)
    with pytest.raises(EdgekdError, match="efficiency"):
        estimate_cost(cost, profile, "fp32", efficiency=1.5)


def test_efficiency_source_is_stated(profile, monkeypatch):
    from edgekd.estimate import calibration
    from edgekd.profiles import load_profile

    fake = {"date": "d", "entries": {
        "host/onnxruntime/fp32": {"efficiency": 1.2, "runtime": "onnxruntime-fp32", "fit_models": ["a"], "test_models": ["b"],
                                  "test_median_abs_error_pct": 10.0},
        "host/openvino/bf16": {"efficiency": 0.5, "runtime": "openvino-default", "fit_models": ["a"], "test_models": ["b"],
                               "test_median_abs_error_pct": 20.0}}}
    monkeypatch.setattr(calibration, "CALIBRATION", fake)
    cost = graph_cost(conv_relu_model(False))
    own = estimate_cost(cost, load_profile("host"), "fp32")
    assert own.efficiency == 1.2 and "NOT measured" not in own.efficiency_source
    assert not any("not measured on this device" in n for n in own.notes)
    # host's backend is ORT; bf16 fit is OpenVINO's. A CPU without bf16 has no measured bf16 peak, so give one
    # (the efficiency source is what this checks, not the peak).
    other_runtime = estimate_cost(cost, load_profile("host"), "bf16", peak_tflops=1.0)
    assert other_runtime.efficiency == 0.5 and other_runtime.efficiency_source.startswith("host/openvino/bf16 (not onnxruntime)")
    borrowed = estimate_cost(cost, profile, "fp32")  # jetson: no fit of its own; host's 1.2 is capped at 1
    assert borrowed.efficiency == 1.0 and borrowed.efficiency_source.startswith("NOT measured on jetson-orin-nano")
    assert estimate_cost(cost, profile, "fp16").efficiency == 0.5  # 16-bit borrows the bf16 fit
    assert any("not measured on this device" in n for n in borrowed.notes)


@pytest.fixture(scope="module")
def zoo_costs(tmp_path_factory):
    """Two zoo graphs at a small size: a compute-heavy one (conv stacks) and a light mobile one."""
    import torch

    from edgekd.backends.onnx_export import export_onnx
    from edgekd.models import create_model

    out = {}
    for name in ("unet_tiny", "lraspp_mobilenetv3_small"):
        torch.manual_seed(0)
        path = tmp_path_factory.mktemp(name) / "model.onnx"
        export_onnx(create_model(name, num_classes=11).eval(), (64, 96), path)
        out[name] = graph_cost(path)
    return out


def test_estimate_is_never_below_its_bound_on_any_shipped_profile(zoo_costs):
    """Every (profile, precision with a peak, zoo model) row: estimate ≥ FLOPs/peak, with the calibrated
    factors as they ship (the host's are above 1, which used to print estimates below the bound)."""
    from edgekd.estimate.roofline import PEAK_KEYS
    from edgekd.profiles import list_profiles

    rows = 0
    for profile in list_profiles():
        for precision in profile.precisions:
            if precision not in PEAK_KEYS or getattr(profile.hardware, PEAK_KEYS[precision]) is None:
                continue
            for name, cost in zoo_costs.items():
                e = estimate_cost(cost, profile, precision)
                assert e.latency_ms >= e.bound_ms * (1 - 1e-12), (profile.name, precision, name)
                assert e.roofline_ms >= e.bound_ms * (1 - 1e-12)
                if e.at_bound:
                    assert e.latency_ms == e.bound_ms and any("bound itself" in n for n in e.notes)
                else:
                    assert e.latency_ms == pytest.approx(e.roofline_ms / e.efficiency)
                rows += 1
    assert rows >= 10


def test_a_factor_above_one_on_a_compute_bound_graph_gives_the_bound_itself(profile):
    """Calibrated host factors exceed 1; on a compute-bound graph roofline/factor would undercut FLOPs/peak."""
    cost = graph_cost(conv_relu_model(False))
    compute_only = replace(profile, hardware=replace(profile.hardware, memory_bandwidth_gbs=None))
    from edgekd.estimate import calibration

    fitted = {"date": "d", "entries": {f"{profile.name}/{profile.backend}/fp32": {
        "efficiency": 1.25, "runtime": "x", "fit_models": ["a"], "test_models": ["b"], "test_median_abs_error_pct": 5.0}}}
    import unittest.mock

    with unittest.mock.patch.object(calibration, "CALIBRATION", fitted):
        e = estimate_cost(cost, compute_only, "fp32")
    assert e.efficiency == 1.25 and e.roofline_ms == pytest.approx(e.bound_ms)
    assert e.at_bound and e.latency_ms == pytest.approx(e.bound_ms)
    assert any("the estimate is that bound itself" in n for n in e.notes)


def test_estimate_cli_says_when_the_estimate_is_the_bound(tmp_path, capsys, monkeypatch):
    from edgekd.cli import main
    from edgekd.estimate import calibration

    path = tmp_path / "conv.onnx"
    import onnx

    onnx.save(conv_relu_model(False), path)
    fitted = {"date": "d", "entries": {"host/onnxruntime/fp32": {
        "efficiency": 50.0, "runtime": "x", "fit_models": ["a"], "test_models": ["b"], "test_median_abs_error_pct": 5.0}}}
    monkeypatch.setattr(calibration, "CALIBRATION", fitted)
    assert main(["estimate", str(path), "--device", "host", "--precision", "fp32"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # lines wrap at 80 columns in a pipe
    assert "= the lower bound itself" in out and "lower bound (FLOPs ÷ peak)" in out
