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


def test_export_cli_prints_none_of_coremltools_harmless_warnings_and_records_them(ckpt, tmp_path):
    """A fresh process (coremltools warns at import): the export succeeds, the terminal shows none of the
    known-harmless lines, and the manifest keeps them."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'tests'}", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    run = subprocess.run([sys.executable, "-m", "edgekd", "export", str(ckpt), "--backend", "coreml", "--precision", "fp16",
                          "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    printed = run.stdout + run.stderr
    for noise in ("scikit-learn version", "has not been tested with coremltools", "Failed to load _ML", "WARNING",
                  "DeprecationWarning", "FutureWarning", "Converting PyTorch Frontend", "Running MIL"):
        assert noise not in printed, noise
    (manifest_path,) = tmp_path.rglob("manifest.json")
    messages = json.loads(manifest_path.read_text())["coreml"]["converter_messages"]
    assert any("has not been tested with coremltools" in m for m in messages)
    assert any(m.startswith("DeprecationWarning") for m in messages)
    if not ON_MAC:
        assert any("Failed to load _MLModelProxy" in m for m in messages)


def test_converter_scope_passes_unknown_messages_through_and_all_of_them_on_failure(capsys):
    import logging
    import warnings

    from edgekd.backends.coreml import converter_messages

    log = logging.getLogger("coremltools.converters.some_pass")
    kept: list[str] = []
    with converter_messages(kept):
        log.warning("Torch version 9.9 has not been tested with coremltools. You may run into unexpected errors.")
        log.warning("op 'foo' is not supported: falling back")  # not known to be harmless
        warnings.warn("internal API moved", DeprecationWarning)
        warnings.warn("output may be wrong", UserWarning)
        sys.stderr.write("Running MIL default pipeline:  50%|#####     | 1/2\rsomething real went to stderr\n")
    err = capsys.readouterr().err
    assert [m.split(":")[0] for m in kept] == ["coremltools.converters.some_pass WARNING", "DeprecationWarning"]
    assert "op 'foo' is not supported" in err and "UserWarning: output may be wrong" in err
    assert "something real went to stderr" in err and "Running MIL" not in err and "has not been tested" not in err
    assert logging.getLogger("coremltools").propagate is True and not logging.getLogger("coremltools").handlers

    with pytest.raises(RuntimeError), converter_messages([]):
        log.warning("Torch version 9.9 has not been tested with coremltools.")
        raise RuntimeError("conversion failed")
    assert "has not been tested" in capsys.readouterr().err  # on failure the harmless ones may be why: printed
