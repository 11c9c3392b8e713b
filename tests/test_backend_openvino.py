"""OpenVINO: IR FP32/FP16 and NNCF INT8 — export → load → run → parity, and the precision actually used."""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.export import export_checkpoint, load_artifact, read_manifest
from test_export_support import INT8_AGREEMENT_FLOOR, normalized_val_images, tiny_ckpt, torch_logits  # noqa: F401  (fixture)

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'edgekd[openvino]')")
pytest.importorskip("nncf", reason="NNCF is not installed (pip install 'edgekd[openvino]')")
pytestmark = pytest.mark.backend

FP32_TOL = 1e-3
FP16_WEIGHTS_TOL = 5e-2  # fp16-rounded weights, f32 compute: logits move by ~1e-3 of their range


@pytest.fixture(scope="module")
def artifacts(tiny_ckpt, synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ov")
    paths = export_checkpoint(tiny_ckpt, backends="openvino", precisions="fp32,fp16,int8", out_dir=out,
                              calib_dir=synthetic_root, calib_size=12, parity_images=4)
    return {p.name.rsplit("-", 1)[1]: p for p in paths}


def _run(session, x):
    return np.concatenate([session.run(x[i:i + 1]) for i in range(len(x))])


def test_fp32_with_f32_hint_matches_pytorch(artifacts, tiny_ckpt, synthetic_root):
    x = normalized_val_images(synthetic_root)
    session = load_artifact(artifacts["fp32"], threads=1, precision_hint="f32")
    np.testing.assert_allclose(_run(session, x), torch_logits(tiny_ckpt, x), atol=FP32_TOL, rtol=0)
    info = session.describe()
    assert info["precision"] == "f32" and info["threads"] == 1 and info["device"] == "CPU"
    parity = read_manifest(artifacts["fp32"])["parity"]
    assert parity["variant"] == "f32 hint" and parity["max_abs_logit_diff"] < FP32_TOL
    assert parity["ran_as"]["inference_precision_hint"] == "f32"


def test_device_default_precision_is_read_back_not_assumed(artifacts):
    session = load_artifact(artifacts["fp32"], threads=1)
    info = session.describe()
    assert info["inference_precision_hint"] == session.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    assert info["precision"] == info["inference_precision_hint"]  # an FP32 IR computes in whatever the hint says
    variant = read_manifest(artifacts["fp32"])["parity"]["variants"]["device default"]
    assert variant["ran_as"]["inference_precision_hint"] == info["inference_precision_hint"]
    assert variant["argmax_agreement"] > 0.98  # bf16 moves logits by ~1e-2, not the class map


def test_fp16_compresses_weights(artifacts):
    fp32, fp16 = read_manifest(artifacts["fp32"]), read_manifest(artifacts["fp16"])
    assert fp16["files"]["model.bin"] < 0.6 * fp32["files"]["model.bin"]
    assert fp16["parity"]["max_abs_logit_diff"] < FP16_WEIGHTS_TOL and fp16["parity"]["argmax_agreement"] > 0.99


def test_int8_is_nncf_quantised_on_real_images(artifacts, synthetic_root):
    manifest = read_manifest(artifacts["int8"])
    assert manifest["calibration"]["dataset"] == str(synthetic_root.resolve()) and manifest["calibration"]["num_images"] == 12
    assert manifest["calibration"]["method"].startswith("nncf.quantize")
    session = load_artifact(artifacts["int8"], threads=1, precision_hint="f32")
    info = session.describe()
    assert "i8" in info["runtime_precisions"] or "u8" in info["runtime_precisions"]
    assert info["precision"] == "int8+f32"
    assert manifest["parity"]["argmax_agreement"] > INT8_AGREEMENT_FLOOR


def test_pipelined_throughput_with_an_async_queue(artifacts, synthetic_root):
    session = load_artifact(artifacts["fp32"], threads=1, performance_hint="THROUGHPUT")
    result = session.run_async_throughput(normalized_val_images(synthetic_root, 1), 0.3)
    assert result["fps"] > 0 and result["frames"] >= 1 and result["infer_requests"] >= 1
    assert result["performance_hint"] == "THROUGHPUT"


def test_bad_hint_is_refused(artifacts):
    from edgekd.errors import EdgekdError

    with pytest.raises(EdgekdError, match="precision_hint 'fp32' is not one of f32, bf16, f16"):
        load_artifact(artifacts["fp32"], precision_hint="fp32")


@pytest.mark.slow
def test_accuracy_controlled_int8(tiny_ckpt, synthetic_root, tmp_path):
    (path,) = export_checkpoint(tiny_ckpt, backends="openvino", precisions="int8", out_dir=tmp_path, calib_dir=synthetic_root,
                                calib_size=8, parity_images=4, options={"max_accuracy_drop": 0.01})
    manifest = read_manifest(path)
    assert manifest["quantization"]["method"] == "nncf.quantize_with_accuracy_control"
    assert manifest["quantization"]["max_miou_drop"] == 0.01 and manifest["quantization"]["validation_images"] == 4
    # NNCF bounds the drop against the IR at the device's default precision on these 4 images;
    # parity compares with PyTorch under the f32 hint, so allow the bf16-vs-f32 difference on top.
    assert manifest["parity"]["miou_delta"] >= -0.02
