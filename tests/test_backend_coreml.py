"""Core ML: ML Program conversion (torch.export), spec load on Linux, options; predictions only on macOS."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from edgekd.backends.base import BackendUnavailable
from edgekd.export import export_checkpoint, load_artifact, read_manifest
from test_export_support import build_tiny, make_checkpoint, normalized_val_images, tiny_ckpt, torch_logits  # noqa: F401

pytest.importorskip("coremltools", reason="coremltools is not installed (pip install 'edgekd[coreml]')")
pytestmark = pytest.mark.backend
ON_MAC = sys.platform == "darwin"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("cml") / "tiny.safetensors", build_tiny(num_classes=4).eval(),
                           class_names=["a", "b", "c", "d"])


def test_fp16_ml_program_passes_the_spec_load(ckpt, tmp_path):
    (path,) = export_checkpoint(ckpt, backends="coreml", precisions="fp16", out_dir=tmp_path)
    manifest = read_manifest(path)
    info = manifest["coreml"]
    assert (path / "model.mlpackage").is_dir() and manifest["runtime_file"] == "model.mlpackage"
    assert info["minimum_deployment_target"] == "iOS16" and info["compute_units"] == "ALL"
    spec = info["spec_check"]
    assert spec["model_type"] == "mlProgram" and spec["specification_version"] >= 7 and spec["operations"] > 5
    assert spec["inputs"] == [{"name": "input", "type": "multiArrayType"}] and spec["outputs"][0]["name"] == "logits"
    assert manifest["precision_used"] == "fp16 compute" and "torch.export" in manifest["converter"]
    assert any(name.startswith("model.mlpackage/") for name in manifest["files"])


def test_normalization_baked_in_gives_an_image_input(ckpt, tmp_path):
    import coremltools as ct

    (path,) = export_checkpoint(ckpt, backends="coreml", precisions="fp32", out_dir=tmp_path,
                                options={"coreml_bake_normalization": True, "coreml_compute_units": "CPU_AND_NE"})
    info = read_manifest(path)["coreml"]
    assert info["normalization_baked"] and info["compute_units"] == "CPU_AND_NE"
    assert info["spec_check"]["inputs"] == [{"name": "image", "type": "imageType"}]
    meta = ct.models.MLModel(str(path / "model.mlpackage"), skip_model_load=True).user_defined_metadata
    assert json.loads(meta["edgekd.class_names"]) == ["a", "b", "c", "d"] and meta["edgekd.normalization_baked"] == "True"


@pytest.fixture(scope="module")
def plain_fp32(ckpt, tmp_path_factory):
    (path,) = export_checkpoint(ckpt, backends="coreml", precisions="fp32", out_dir=tmp_path_factory.mktemp("plain"))
    return path


@pytest.mark.parametrize("mode, ratio", [("linear8", 0.7), ("palettize4", 0.5)])
def test_weight_compression_shrinks_the_package(ckpt, plain_fp32, tmp_path, mode, ratio):
    plain = plain_fp32
    (small,) = export_checkpoint(ckpt, backends="coreml", precisions="fp32", out_dir=tmp_path / mode, options={"coreml_weights": mode})
    weights = lambda p: sum(v for k, v in read_manifest(p)["files"].items() if "weights" in k)  # noqa: E731
    assert weights(small) < ratio * weights(plain)
    assert read_manifest(small)["precision_used"] == f"fp32 compute, {mode} weights"


def test_bad_option_values_name_the_choices(ckpt, tmp_path):
    from edgekd.errors import EdgekdError

    with pytest.raises(EdgekdError, match="compute units 'NPU'.*ALL, CPU_ONLY"):
        export_checkpoint(ckpt, backends="coreml", precisions="fp16", out_dir=tmp_path, options={"coreml_compute_units": "NPU"})
    assert not any(tmp_path.rglob("coreml-*")), "a refused export leaves nothing behind"


@pytest.mark.skipif(ON_MAC, reason="on macOS predictions run; see test_parity_on_macos")
def test_on_linux_parity_is_unavailable_and_load_says_why(tiny_ckpt, synthetic_root, tmp_path):
    (path,) = export_checkpoint(tiny_ckpt, backends="coreml", precisions="fp16", out_dir=tmp_path, calib_dir=synthetic_root,
                                parity_images=2)
    parity = read_manifest(path)["parity"]
    assert parity["status"] == "unavailable" and parity["reason"].startswith("Core ML prediction needs macOS")
    with pytest.raises(BackendUnavailable, match="Core ML prediction needs macOS"):
        load_artifact(path)


@pytest.mark.skipif(not ON_MAC, reason="Core ML prediction needs macOS")
def test_parity_on_macos(tiny_ckpt, synthetic_root, tmp_path):
    (path,) = export_checkpoint(tiny_ckpt, backends="coreml", precisions="fp32", out_dir=tmp_path, calib_dir=synthetic_root,
                                parity_images=2)
    x = normalized_val_images(synthetic_root, 2)
    got = load_artifact(path, compute_units="CPU_ONLY").run(x)
    np.testing.assert_allclose(got, torch_logits(tiny_ckpt, x), atol=1e-2)
    assert read_manifest(path)["parity"]["argmax_agreement"] > 0.99
