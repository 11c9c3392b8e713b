"""Stride, camera aspect and memory checks, and the precision checks that need no runtime."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgekd.doctor.precision import check_artifact_precision, check_int8_calibration, check_openvino_default
from edgekd.doctor.shapes import activation_memory, check_camera, check_input_matches, check_memory, check_stride
from edgekd.profiles import Camera, load_profile


def codes(findings) -> dict[str, str]:
    return {f.code: f.severity for f in findings}


class _CropsLogits(torch.nn.Module):
    """Stands in for a skip-concatenating model: at an off-stride size its logits come out smaller."""

    def forward(self, x):
        h, w = x.shape[-2:]
        return torch.zeros(1, 3, h // 32 * 32, w // 32 * 32)


def test_stride_check_is_the_export_rule():
    assert check_stride((360, 480), 8, "x") == []
    assert check_stride((37, 41), 1, "x") == []
    # a model export refuses at that size (wrong-size logits): an error, as export stops there
    (f,) = check_stride((360, 480), 32, "x", device="host", model=_CropsLogits(), arch="crops")
    assert (f.severity, f.code, f.device) == ("error", "stride-mismatch", "host")
    assert f.details["nearest_valid"] == [384, 480] and "returns 352x480 logits" in f.why_it_matters
    # a model that resizes internally: export accepts it with a note, the doctor warns
    from edgekd.models import create_model

    (f,) = check_stride((63, 95), 8, "x", model=create_model("unet_tiny", num_classes=3), arch="unet_tiny")
    assert (f.severity, f.code) == ("warning", "stride-offgrid") and f.details["nearest_valid"] == [64, 96]
    # an artifact (no model): its export accepted the size, so the same warning
    (f,) = check_stride((360, 480), 32, "artifact input")
    assert (f.severity, f.code) == ("warning", "stride-offgrid")


def test_camera_aspect():
    host = load_profile("host")
    same = replace(host, camera=Camera(width=640, height=480, fps=30))  # 4:3 like 480×360
    assert check_camera(same) == []
    (f,) = check_camera(replace(host, camera=Camera(width=1280, height=720, fps=30)))
    assert f.code == "camera-aspect" and f.severity == "warning"
    assert f.details["letterbox_padding_share"] == pytest.approx(0.25)  # 480×270 of 480×360 holds the picture
    h, w = f.details["suggested_input_hw"]
    assert h % 32 == 0 and w % 32 == 0 and abs(w / h - 16 / 9) < 0.1


def test_input_size_must_match_the_device_pipeline():
    host = load_profile("host")
    assert check_input_matches((360, 480), host) == []
    assert codes(check_input_matches((256, 256), host)) == {"input-size-mismatch": "error"}


def chain_model():
    """x(1×4×8×8) → Relu a → Relu b → Add(a, b): a stays alive while b is computed."""
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"]), helper.make_node("Add", ["a", "b"], ["y"])]
    w = numpy_helper.from_array(np.ones((16,), np.float32), "unused_w")
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_activation_memory_liveness():
    mem = activation_memory(chain_model())
    n = 4 * 8 * 8
    assert mem["peak_activation_elements"] == 3 * n  # x freed after the first Relu; a, b and y live together at the Add
    assert mem["all_activation_elements"] == 4 * n
    assert mem["weight_elements"] == 16


def test_memory_budget_severity():
    host = load_profile("host")
    mem = {"peak_activation_elements": 2**20, "weight_elements": 2**20, "all_activation_elements": 0}  # 8 MB at fp32
    assert codes(check_memory(mem, host)) == {"memory-budget": "info"}
    tight = replace(host, precisions=("fp32", "int8"), real_time=replace(host.real_time, memory_budget_mb=4))
    assert codes(check_memory(mem, tight)) == {"memory-budget": "warning"}  # fits only at int8 (2 MB)
    tiny = replace(tight, real_time=replace(host.real_time, memory_budget_mb=1))
    (f,) = check_memory(mem, tiny)
    assert f.severity == "error" and f.details["needed_mb"] == {"fp32": 8.0, "int8": 2.0}


def test_int8_calibration_checks(tmp_path):
    host = load_profile("host")
    assert codes(check_int8_calibration(host, None)) == {"int8-no-calibration": "warning"}
    assert check_int8_calibration(replace(host, precisions=("fp32",)), None) == []
    assert codes(check_artifact_precision({"precision": "int8", "calibration": None})) == {"int8-no-calibration": "error"}
    few = {"precision": "int8", "calibration": {"num_images": 10}}
    assert codes(check_artifact_precision(few)) == {"int8-few-calibration-images": "warning"}
    assert check_artifact_precision({"precision": "fp32", "parity": {"status": "ok"}}) == []
    warned = {"precision": "fp32", "parity": {"status": "ok", "warning": "argmax agreement 0.9 is below 0.98"}}
    assert codes(check_artifact_precision(warned)) == {"parity-warning": "warning"}


def test_openvino_default_precision_remote_profile_is_info():
    remote = load_profile("intel-x86-cpu")
    assert codes(check_openvino_default(remote)) == {"openvino-default-precision": "info"}
    hinted = replace(remote, runtime=replace(remote.runtime, openvino_inference_precision="f32"))
    assert check_openvino_default(hinted) == []
    assert check_openvino_default(load_profile("jetson-orin-nano")) == []  # no OpenVINO there


@pytest.mark.backend
def test_openvino_default_precision_on_this_machine():
    pytest.importorskip("openvino", reason="OpenVINO not installed")
    from edgekd.doctor.precision import openvino_cpu_defaults

    defaults = openvino_cpu_defaults()
    findings = check_openvino_default(load_profile("host"))
    if defaults["default_hint"] == "f32":
        assert findings == []
    else:  # e.g. bf16 on AMX CPUs (this development VM)
        assert codes(findings) == {"openvino-default-precision": "warning"}
        assert "BF16" in findings[0].details["capabilities"]
