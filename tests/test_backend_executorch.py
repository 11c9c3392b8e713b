"""ExecuTorch: torch.export → XNNPACK-lowered .pte, FP32 and PT2E INT8 — export → load → run → parity, delegation recorded."""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.errors import EdgekdError
from edgekd.export import export_checkpoint, load_artifact, read_manifest
from test_export_support import INT8_AGREEMENT_FLOOR, normalized_val_images, tiny_ckpt, torch_logits  # noqa: F401  (fixture)

pytest.importorskip("executorch.runtime", reason="executorch is not installed (pip install 'edgekd[executorch]')")
pytestmark = pytest.mark.backend

FP32_TOL = 1e-3


@pytest.fixture(scope="module")
def artifacts(tiny_ckpt, synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("executorch")
    paths = export_checkpoint(tiny_ckpt, backends="executorch", precisions="fp32,int8", out_dir=out,
                              calib_dir=synthetic_root, calib_size=12, parity_images=4,
                              options={"max_accuracy_drop": 5})  # the tiny model's 1% default is one flipped region
    return {p.name.rsplit("-", 1)[1]: p for p in paths}


def test_fp32_matches_pytorch_through_xnnpack(artifacts, tiny_ckpt, synthetic_root):
    x = normalized_val_images(synthetic_root)
    session = load_artifact(artifacts["fp32"], threads=1)
    np.testing.assert_allclose(session.run(x), torch_logits(tiny_ckpt, x), atol=FP32_TOL, rtol=0)
    info = session.describe()
    assert info["threads"] == 1 and info["provider"] == "XNNPACK delegate"
    manifest = read_manifest(artifacts["fp32"])
    assert manifest["parity"]["status"] == "ok" and manifest["parity"]["max_abs_logit_diff"] < FP32_TOL
    d = manifest["delegation"]
    assert d["delegated_nodes"] + d["not_delegated_nodes"] == d["total_nodes"] and d["delegated_nodes"] > 0
    assert d["by_op"]["aten.convolution.default"]["delegated"] == 5  # three stride-2 blocks, the gate and the head
    assert manifest["executorch"]["delegate"] == "xnnpack" and manifest["executorch"]["runs_here"] is True


def test_bound_step_runs_the_frame_written_in_place(artifacts, synthetic_root):
    x = np.ascontiguousarray(normalized_val_images(synthetic_root, 2))
    session = load_artifact(artifacts["fp32"], threads=1)
    frame = np.empty_like(x[:1])
    step = session.bind(frame)
    for i in range(2):
        frame[...] = x[i:i + 1]
        np.testing.assert_allclose(step(), session.run(x[i:i + 1]), atol=1e-6, rtol=0)


def test_int8_is_pt2e_quantised_on_real_images_and_agrees(artifacts, synthetic_root):
    manifest = read_manifest(artifacts["int8"])
    assert manifest["quantization"]["num_images"] == 12 and "XNNPACKQuantizer" in manifest["quantization"]["tool"]
    assert manifest["parity"]["argmax_agreement"] > INT8_AGREEMENT_FLOOR
    gate = manifest["accuracy_gate"]  # ExecuTorch has no INT8 search: the pipeline gates what it wrote, from parity
    assert gate["status"] == "passed" and gate["max_drop_points"] == 5 and gate["measured_as"] == "parity vs PyTorch FP32"
    assert manifest["files"]["model.pte"] < read_manifest(artifacts["fp32"])["files"]["model.pte"]
    ops = manifest["delegation"]["by_op"]
    assert ops["aten.convolution.default"]["delegated"] == 5 and ops["aten.convolution.default"]["not_delegated"] == 0
    session = load_artifact(artifacts["int8"], threads=1)
    assert session.describe()["precision"].startswith("int8")


def test_bad_delegate_and_dynamic_batch_are_refused(tiny_ckpt, synthetic_root, tmp_path):
    with pytest.raises(EdgekdError, match="'xnnpak'.*did you mean 'xnnpack'"):
        export_checkpoint(tiny_ckpt, backends="executorch", precisions="fp32", out_dir=tmp_path, calib_dir=synthetic_root,
                          parity_images=0, options={"executorch_delegate": "xnnpak"})
    with pytest.raises(EdgekdError, match="fixed batch of 1"):
        export_checkpoint(tiny_ckpt, backends="executorch", precisions="fp32", out_dir=tmp_path, calib_dir=synthetic_root,
                          parity_images=0, dynamic_batch=True)
    assert not any(tmp_path.rglob("manifest.json")), "nothing half-written"


def test_qnn_recipe_without_the_sdk_says_what_is_needed(tiny_ckpt, synthetic_root, tmp_path):
    from edgekd.backends.base import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="QNN SDK"):
        export_checkpoint(tiny_ckpt, backends="executorch", precisions="fp32", out_dir=tmp_path, calib_dir=synthetic_root,
                          parity_images=0, options={"executorch_delegate": "qnn"})


def test_unknown_runtime_option_is_refused(artifacts):
    from edgekd.backends.base import UnsupportedOptionError

    with pytest.raises(UnsupportedOptionError, match="known: threads"):
        load_artifact(artifacts["fp32"], precision_hint="f32")
