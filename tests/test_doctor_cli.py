"""`edgekd doctor` / `edgekd estimate` end to end on a tiny checkpoint and a tiny device profile.

The profile (64×64 input, ONNX Runtime only) lives in a temporary EDGEKD_PROFILE_DIR so the
doctor exports one small graph and runs only ONNX Runtime's check.
"""
from __future__ import annotations

import json

import pytest
import torch

from edgekd.cli import main

PROFILE = """\
name: tiny-test
description: a 64x64 ONNX Runtime device for tests
backend: onnxruntime
precisions: [fp32]
runtime: {threads: 1}
input_size: [64, 64]
camera: {width: 64, height: 64, fps: 30}
real_time: {target_fps: 30, latency_budget_ms: 33, memory_budget_mb: 256}
hardware: {source: made-up test figures, peak_fp32_tflops: 1.0, memory_bandwidth_gbs: 10.0}
connection: {type: local}
"""


@pytest.fixture
def tiny_profile(tmp_path, monkeypatch):
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "tiny-test.yaml").write_text(PROFILE)
    monkeypatch.setenv("EDGEKD_PROFILE_DIR", str(folder))
    return "tiny-test"


def make_checkpoint(path, poison: str | None = None):
    from edgekd.checkpoint import CheckpointMeta, save_checkpoint
    from edgekd.models import create_model

    torch.manual_seed(0)
    model = create_model("unet_tiny", num_classes=3).eval()
    weight = next(p for name, p in model.named_parameters() if name.endswith("weight") and p.ndim == 4)
    with torch.no_grad():
        weight.view(-1)[:50] = 1e-40  # subnormal: a warning, not an error
        if poison == "nan":
            weight.view(-1)[50] = float("nan")
    norm = model.normalization
    meta = CheckpointMeta(arch="unet_tiny", num_classes=3, class_names=["a", "b", "c"], ignore_index=255, input_size=[64, 64],
                          mean=list(norm.mean), std=list(norm.std))
    return save_checkpoint(path, model, meta)


def run_json(argv, capsys) -> tuple[int, dict]:
    code = main(argv + ["--json"])
    return code, json.loads(capsys.readouterr().out)


def test_doctor_exit_codes(tmp_path, tiny_profile, capsys):
    ok = make_checkpoint(tmp_path / "ok.safetensors")
    code, report = run_json(["doctor", str(ok), "--device", tiny_profile], capsys)
    assert code == 0 and report["exit_code"] == 0
    found = {f["code"]: f for f in report["findings"]}
    assert found["subnormal-weights"]["severity"] == "warning" and found["subnormal-weights"]["details"]["count"] == 50
    assert found["memory-budget"]["severity"] == "info"
    assert report["facts"]["graphs"]["64x64"]["gflops"] > 0

    bad = make_checkpoint(tmp_path / "nan.safetensors", poison="nan")
    code, report = run_json(["doctor", str(bad), "--device", tiny_profile], capsys)
    assert code == 1 and report["summary"]["error"] == 1
    assert report["findings"][0]["code"] == "nonfinite-weights"  # errors listed first


def test_doctor_bad_input_exits_2(tmp_path, tiny_profile, capsys):
    ok = make_checkpoint(tmp_path / "ok.safetensors")
    assert main(["doctor", str(ok), "--device", "no-such-device"]) == 2
    assert "unknown device profile" in capsys.readouterr().err
    assert main(["doctor", str(tmp_path / "missing.pth"), "--device", tiny_profile]) == 2


def test_estimate_cli_labels_estimates(tmp_path, tiny_profile, capsys):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((8, 3, 3, 3), np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[w])
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    code, out = run_json(["estimate", str(path), "--device", tiny_profile, "--efficiency", "0.5"], capsys)
    assert code == 0 and out["kind"] == "estimate"
    (e,) = out["estimates"]
    assert e["kind"] == "estimate" and e["precision"] == "fp32" and e["efficiency"] == 0.5
    flops = 2 * 8 * 64 * 64 * 27
    moved = 4 * (3 * 64 * 64 + 8 * 27 + 8 * 64 * 64)
    assert e["flops"] == flops
    assert e["roofline_ms"] == pytest.approx(1e3 * max(flops / 1e12, moved / 10e9))
    assert e["bound_ms"] == pytest.approx(1e3 * flops / 1e12)
    assert e["latency_ms"] == pytest.approx(2 * e["roofline_ms"])
    assert main(["estimate", str(path), "--device", tiny_profile, "--precision", "int8", "--efficiency", "0.5"]) == 2


def test_estimate_prints_the_hardware_paragraph_once_for_several_precisions(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "s.safetensors")
    argv = ["estimate", str(ckpt), "--device", "jetson-orin-nano", "--input-size", "64x64", "--layers", "1"]
    assert main(argv + ["--precision", "fp32", "--precision", "fp16", "--precision", "int8"]) == 0
    out = capsys.readouterr().out
    assert out.count("hardware source:") == 1 and out.count("estimate (not a measurement)") == 3
    assert out.index("hardware source:") < out.index("estimate (not a measurement)")  # above the estimates it is for
    assert out.count("efficiency ") >= 2  # the per-precision efficiencies differ here: each under its estimate
    assert main(argv + ["--precision", "int8"]) == 0
    single = capsys.readouterr().out
    assert single.count("hardware source:") == 1 and single.index("estimate (not a measurement)") < single.index("hardware source:")


@pytest.mark.slow
def test_doctor_fix_writes_a_flushed_copy_with_parity_and_speed(tmp_path, tiny_profile, capsys):
    from edgekd.checkpoint import load_checkpoint, read_meta
    from edgekd.doctor.weights import count_subnormals

    src = make_checkpoint(tmp_path / "sub.safetensors")
    out = tmp_path / "fixed.safetensors"
    code, report = run_json(["doctor", str(src), "--device", tiny_profile, "--fix", str(out), "--speed-iters", "3",
                             "--threads", "1"], capsys)
    assert code == 0
    fix = report["fix"]
    assert fix["subnormals_flushed"] == 50
    assert fix["parity"]["argmax_agreement"] > 0.99 and fix["parity"]["max_abs_logit_diff"] < 1e-3
    assert set(fix["speed"]) == {"torch", "onnxruntime"}
    assert all(s["before"]["median_ms"] > 0 and s["after"]["median_ms"] > 0 for s in fix["speed"].values())
    model, _ = load_checkpoint(out)
    assert count_subnormals(model.state_dict()) == 0
    assert read_meta(out).trained_with["weights_fixed"]["subnormals_flushed"] == 50


def test_fix_refuses_a_bad_output_before_doing_anything(tmp_path, tiny_profile, capsys):
    src = make_checkpoint(tmp_path / "sub.safetensors")
    assert main(["doctor", str(src), "--device", tiny_profile, "--fix", str(tmp_path / "out.pth")]) == 2
    assert main(["doctor", str(src), "--device", tiny_profile, "--fix", str(src)]) == 2
    assert "safetensors" in capsys.readouterr().err


def make_artifact(folder, precision="int8"):
    """A hand-made ONNX Runtime artifact: a 3→4 conv with 5 subnormal weights, and its manifest."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.full((4, 3, 3, 3), 0.1, np.float32)
    w.reshape(-1)[:5] = 1e-40
    g = helper.make_graph([helper.make_node("Conv", ["input", "w"], ["logits"], pads=[1, 1, 1, 1])], "g",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 64, 64])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 64, 64])],
                          initializer=[numpy_helper.from_array(w, "w")])
    folder.mkdir(parents=True)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), folder / "model.onnx")
    manifest = {"format": "edgekd-artifact", "format_version": 1, "backend": "onnxruntime", "precision": precision,
                "input_shape": [1, 3, 64, 64], "num_classes": 4, "output_stride": 1, "runtime_file": "model.onnx",
                "normalization": {"mean": [0, 0, 0], "std": [1, 1, 1], "channel_order": "RGB"}, "calibration": None}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_doctor_on_an_artifact(tmp_path, tiny_profile, capsys):
    art = make_artifact(tmp_path / "art" / "onnxruntime-int8")
    code, report = run_json(["doctor", str(art), "--device", tiny_profile, "--device", "jetson-orin-nano"], capsys)
    found = {(f["code"], f["device"]): f["severity"] for f in report["findings"]}
    assert report["kind"] == "artifact" and code == 1
    assert found[("int8-no-calibration", None)] == "error"  # INT8 artifact without a calibration record
    assert found[("backend-mismatch", "jetson-orin-nano")] == "error"  # a TensorRT device cannot load it
    assert found[("subnormal-weights", None)] == "warning"  # read from the ONNX initializers
    assert found[("memory-budget", tiny_profile)] == "info"
    assert main(["doctor", str(art), "--device", tiny_profile, "--fix", str(tmp_path / "x.safetensors")]) == 2
