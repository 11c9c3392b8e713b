"""Graph checks on small ONNX graphs built with onnx.helper (no export needed)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekd.doctor import graph
from edgekd.doctor.graph_runtime import check_batchnorm, check_onnxruntime, check_openvino

OPSET = [helper.make_opsetid("", 17)]


def make_model(nodes, inputs, outputs, inits=(), opset=OPSET) -> onnx.ModelProto:
    g = helper.make_graph(list(nodes), "t", list(inputs), list(outputs), initializer=list(inits))
    return helper.make_model(g, opset_imports=opset, ir_version=9)  # an IR version every runtime here reads


def vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def weight(name, shape, seed=0):
    return numpy_helper.from_array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), name)


def conv_model(dilation=1, input_shape=(1, 3, 16, 16)) -> onnx.ModelProto:
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[dilation] * 4, dilations=[dilation, dilation])
    return make_model([conv], [vi("x", list(input_shape))], [vi("y", None)], [weight("w", (4, 3, 3, 3))])


def codes(findings) -> dict[str, str]:
    return {f.code: f.severity for f in findings}


def test_clean_conv_graph_passes_tensorrt_and_coreml():
    m = conv_model()
    assert graph.check_tensorrt(m, "jetson") == []
    assert graph.check_coreml(m, "iphone") == []
    assert graph.check_dynamic(m, "tensorrt", "jetson") == []


def test_tensorrt_rejects_unsupported_op():
    m = make_model([helper.make_node("Unique", ["x"], ["y"], name="uniq")], [vi("x", [8])], [vi("y", None)])
    findings = graph.check_tensorrt(m, "jetson")
    assert codes(findings) == {"tensorrt-unsupported-op": "error"}
    assert findings[0].details["ops"] == ["Unique"] and findings[0].device == "jetson"


def resize_model(mode: str, coord: str = "half_pixel") -> onnx.ModelProto:
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode=mode, coordinate_transformation_mode=coord)
    return make_model([node], [vi("x", [1, 3, 8, 8])], [vi("y", None)], [scales])


def test_resize_modes():
    assert graph.check_tensorrt(resize_model("linear"), "j") == []
    assert codes(graph.check_tensorrt(resize_model("cubic"), "j")) == {"tensorrt-resize-mode": "error"}
    assert codes(graph.check_tensorrt(resize_model("linear", "tf_crop_and_resize"), "j")) == {"tensorrt-resize-mode": "error"}
    assert codes(graph.check_coreml(resize_model("cubic"), "i")) == {"coreml-resize-mode": "error"}


def test_dynamic_dims_per_backend():
    spatial = conv_model(input_shape=("N", 3, "H", "W"))
    batch = conv_model(input_shape=("N", 3, 16, 16))
    assert graph.dynamic_inputs(spatial) == {"x": ["N", 3, "H", "W"]}
    assert codes(graph.check_dynamic(spatial, "tensorrt", "j")) == {"dynamic-shape": "warning"}
    assert codes(graph.check_dynamic(spatial, "coreml", "i")) == {"dynamic-shape": "warning"}
    assert codes(graph.check_dynamic(spatial, "onnxruntime", "h")) == {"dynamic-shape": "info"}
    assert codes(graph.check_dynamic(batch, "tensorrt", "j")) == {"dynamic-shape": "info"}


def test_dilated_conv_flagged_for_the_neural_engine():
    findings = graph.check_coreml(conv_model(dilation=2), "iphone")
    assert codes(findings) == {"ane-dilated-conv": "warning"}
    assert findings[0].details["dilations"] == [2]


def test_custom_domain_op():
    node = helper.make_node("FusedConv", ["x", "w"], ["y"], domain="com.microsoft", name="fused")
    m = make_model([node], [vi("x", [1, 3, 8, 8])], [vi("y", None)], [weight("w", (4, 3, 3, 3))],
                   opset=OPSET + [helper.make_opsetid("com.microsoft", 1)])
    assert codes(graph.check_custom_domains(m, "tensorrt", "j")) == {"custom-domain-op": "error"}
    assert graph.check_custom_domains(m, "onnxruntime", "h") == []  # ONNX Runtime's own contrib op


def test_tensorrt_needs_zero_points_of_zero():
    inits = [numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s"),
             numpy_helper.from_array(np.array(128, dtype=np.uint8), "zp")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dq")]
    m = make_model(nodes, [vi("x", [1, 4])], [vi("y", None)], inits)
    findings = graph.check_tensorrt(m, "j")
    assert codes(findings) == {"tensorrt-qdq-zero-point": "error"}
    assert findings[0].details["nodes"] == ["q", "dq"]


def bn_model(after: str) -> onnx.ModelProto:
    """Conv → BN, Conv → Relu → BN, or two Convs → Add → BN (1×4×8×8 activations)."""
    c = 4
    inits = [weight("w", (c, 3, 3, 3)), weight("w2", (c, 3, 3, 3), seed=1)]
    inits += [numpy_helper.from_array(np.ones(c, np.float32), n) for n in ("g", "v")]
    inits += [numpy_helper.from_array(np.zeros(c, np.float32), n) for n in ("b", "m")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1])]
    src = "c"
    if after == "relu":
        nodes.append(helper.make_node("Relu", ["c"], ["r"], name="relu"))
        src = "r"
    if after == "add":
        nodes += [helper.make_node("Conv", ["x", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
                  helper.make_node("Add", ["c", "c2"], ["s"], name="add")]
        src = "s"
    nodes.append(helper.make_node("BatchNormalization", [src, "g", "b", "m", "v"], ["y"], name="bn"))
    return make_model(nodes, [vi("x", [1, 3, 8, 8])], [vi("y", None)], inits)


def test_batchnorm_foldable_post_op_or_not():
    folded = check_batchnorm(bn_model("conv"))
    assert codes(folded) == {"bn-not-folded": "info"} and folded[0].details["foldable"] == ["bn"]
    post = check_batchnorm(bn_model("relu"))
    assert codes(post) == {"bn-not-folded": "info"} and post[0].details["post_op"] == ["bn"]
    findings = check_batchnorm(bn_model("add"))
    assert codes(findings) == {"bn-unfoldable": "warning"}
    d = findings[0].details
    assert d["after_ops"] == ["Add"] and d["count"] == 1
    assert d["mb_per_frame_fp32"] == pytest.approx((2 * 4 * 8 * 8 + 4 * 4) * 4 / 1e6)  # read + write + 4 parameter vectors


def test_onnxruntime_loads_a_valid_graph_and_refuses_a_broken_one(tmp_path):
    good = tmp_path / "good.onnx"
    onnx.save(conv_model(), good)
    assert check_onnxruntime(good, "host") == []
    bad = tmp_path / "bad.onnx"
    onnx.save(make_model([helper.make_node("NoSuchOp", ["x"], ["y"], name="n")], [vi("x", [2])], [vi("y", [2])]), bad)
    assert codes(check_onnxruntime(bad, "host")) == {"onnxruntime-load-failed": "error"}


@pytest.mark.backend
def test_openvino_supports_a_plain_conv(tmp_path):
    pytest.importorskip("openvino", reason="OpenVINO not installed")
    path = tmp_path / "conv.onnx"
    onnx.save(conv_model(), path)
    findings = check_openvino(path, "host", local=True, threads=1)
    assert all(f.code == "openvino-reference-kernels" for f in findings)  # supported; at most a profiling note
