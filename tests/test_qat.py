"""Quantisation-aware distillation (--qat): NNCF fake quantisers, a safetensors-only checkpoint, INT8 export as trained."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgekd.errors import EdgekdError
from edgekd.training.distill import DistillConfig, distill

from conftest import SMALL_RUN


def test_qat_without_init_is_refused(synthetic_root, tmp_path):
    cfg = DistillConfig(arch="unet_tiny", data=str(synthetic_root), out=str(tmp_path / "q.safetensors"), qat=True, **SMALL_RUN)
    with pytest.raises(EdgekdError, match="--qat fine-tunes a trained student .*pass --init CKPT"):
        distill(cfg)


def test_qat_with_a_feature_loss_is_refused(synthetic_root, tiny_teacher, tmp_path):
    cfg = DistillConfig(arch=None, data=str(synthetic_root), out=str(tmp_path / "q.safetensors"), qat=True, init=str(tiny_teacher),
                        losses=["ce", "fitnet@stage3"], **SMALL_RUN)
    with pytest.raises(EdgekdError, match="logits only.*drop the feature losses fitnet@stage3"):
        distill(cfg)
    assert not (tmp_path / "q.safetensors").exists()


@pytest.mark.slow
@pytest.mark.backend
def test_qat_run_reloads_from_safetensors_and_exports_int8_as_trained(synthetic_root, tiny_teacher, tmp_path):
    """distill --qat → safetensors checkpoint (scales as tensors, NNCF placement as JSON) → ORT and OpenVINO INT8 with parity."""
    pytest.importorskip("nncf")
    pytest.importorskip("openvino")
    import torch
    from safetensors import safe_open

    from edgekd.checkpoint import load_checkpoint, read_meta
    from edgekd.export import export_checkpoint, read_manifest
    from edgekd.qat import HOOK_PREFIX

    out = tmp_path / "qat.safetensors"
    cfg = DistillConfig(arch=None, data=str(synthetic_root), out=str(out), qat=True, init=str(tiny_teacher), losses=["ce", "kd"],
                        optimizer="adamw", lr=1e-4, freeze_bn=True, qat_calib_images=4, **SMALL_RUN)
    distill(cfg)
    meta = read_meta(out)
    assert meta.trained_with["method"] == "qat-distill" and meta.trained_with["teachers"][0]["path"] == tiny_teacher.name
    assert meta.quantization["format"] == "nncf-torch-qat" and meta.quantization["calibration_images"] == 4
    json.dumps(meta.quantization)  # plain data in the safetensors header
    with safe_open(str(out), "pt") as f:
        scales = [k for k in f.keys() if k.startswith(HOOK_PREFIX)]
    assert scales, "the quantiser scales are tensors of the checkpoint"
    model, _ = load_checkpoint(out)
    again, _ = load_checkpoint(out)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        y1, y2 = model(x), again(x)
    assert torch.equal(y1, y2), "a reloaded QAT checkpoint computes the same fake-quantised logits"

    paths = export_checkpoint(out, backends="onnxruntime,openvino", precisions="fp32,int8", out_dir=tmp_path / "art",
                              data_dir=synthetic_root, parity_images=4, options={"max_accuracy_drop": "off"})
    manifests = {p.name: read_manifest(p) for p in paths}
    ort, ov = manifests["onnxruntime-int8"], manifests["openvino-int8"]
    assert ort["quantization"]["method"] == "qat" and ov["quantization"]["method"] == "qat"
    import onnx

    ops = {n.op_type for n in onnx.load(str(next(p for p in paths if p.name == "onnxruntime-int8") / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops, "the ONNX Runtime INT8 graph carries the trained QDQ pairs"
    assert ort["quantization"]["runtime_graph"], "what ONNX Runtime really runs is recorded"
    # parity: the INT8 artifacts against the fake-quantised PyTorch model they were trained as
    for m in (ort, ov):
        assert m["parity"]["argmax_agreement"] > 0.9, m["parity"]
        assert m["accuracy_gate"]["status"] == "off" and np.isfinite(m["accuracy_gate"]["int8_miou"])
