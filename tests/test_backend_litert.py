"""LiteRT: litert-torch FP32/FP16 .tflite — export → load → run → parity, and the XNNPACK delegation recorded."""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.export import export_checkpoint, load_artifact, read_manifest
from test_export_support import normalized_val_images, tiny_ckpt, torch_logits  # noqa: F401  (fixture)

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (pip install 'edgekd[litert]')")
pytest.importorskip("litert_torch", reason="litert-torch is not installed (pip install 'edgekd[litert]')")
pytestmark = pytest.mark.backend

FP32_TOL = 1e-3


@pytest.fixture(scope="module")
def artifacts(tiny_ckpt, synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("litert")
    paths = export_checkpoint(tiny_ckpt, backends="litert", precisions="fp32,fp16", out_dir=out,
                              calib_dir=synthetic_root, parity_images=4)
    return {p.name.rsplit("-", 1)[1]: p for p in paths}


def test_fp32_matches_pytorch_through_xnnpack(artifacts, tiny_ckpt, synthetic_root):
    x = normalized_val_images(synthetic_root)
    session = load_artifact(artifacts["fp32"], threads=1)
    np.testing.assert_allclose(session.run(x), torch_logits(tiny_ckpt, x), atol=FP32_TOL, rtol=0)
    info = session.describe()
    assert info["threads"] == 1 and info["xnnpack"] and info["delegated_nodes"] > 0
    manifest = read_manifest(artifacts["fp32"])
    assert manifest["parity"]["status"] == "ok" and manifest["parity"]["max_abs_logit_diff"] < FP32_TOL
    d = manifest["delegation"]
    assert d["delegated_nodes"] + d["not_delegated_nodes"] == d["total_nodes"] > 0


def test_builtin_kernels_without_xnnpack_give_the_same_logits(artifacts, synthetic_root):
    x = normalized_val_images(synthetic_root, 1)
    with_xnn = load_artifact(artifacts["fp32"], threads=1).run(x)
    builtin = load_artifact(artifacts["fp32"], threads=1, xnnpack=False)
    assert builtin.describe()["delegated_nodes"] == 0
    np.testing.assert_allclose(builtin.run(x), with_xnn, atol=FP32_TOL, rtol=0)


def test_fp16_weights_halve_the_file(artifacts):
    fp32, fp16 = read_manifest(artifacts["fp32"]), read_manifest(artifacts["fp16"])
    assert fp16["files"]["model.tflite"] < 0.7 * fp32["files"]["model.tflite"]
    assert fp16["parity"]["argmax_agreement"] > 0.99
