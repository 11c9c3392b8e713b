"""PyTorch eager backend: the FP32 reference artifact, and subnormal weights flushed on export."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekd.export import export_checkpoint, load_artifact, read_manifest
from edgekd.export.weights import count_subnormals, flush_subnormals
from test_export_support import build_tiny, make_checkpoint, normalized_val_images, tiny_ckpt, torch_logits  # noqa: F401

TINY = torch.finfo(torch.float32).tiny


def _with_subnormals(n: int = 50) -> torch.nn.Module:
    model = build_tiny(num_classes=4).eval()
    with torch.no_grad():
        model.head.weight.view(-1)[:n] = TINY / 4  # subnormal
    return model


def test_reference_artifact_reproduces_the_checkpoint_exactly(tiny_ckpt, synthetic_root, tmp_path):
    (path,) = export_checkpoint(tiny_ckpt, backends="torch", precisions="fp32", out_dir=tmp_path,
                                data_dir=synthetic_root, parity_images=3)
    x = normalized_val_images(synthetic_root, 2)
    session = load_artifact(path, threads=1)
    np.testing.assert_array_equal(session.run(x), torch_logits(tiny_ckpt, x))
    assert session.describe()["precision"] == "fp32" and session.describe()["threads"] == 1
    manifest = read_manifest(path)
    assert manifest["runtime_file"] == "model.safetensors" and manifest["onnx"] is None
    assert manifest["parity"]["max_abs_logit_diff"] == 0.0 and manifest["parity"]["images"] == 3


def test_flush_counts_and_zeroes_only_subnormals():
    model = _with_subnormals(50)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert count_subnormals(model) == 50 and flush_subnormals(model) == 50 and count_subnormals(model) == 0
    changed = sum(int((before[k] != v).sum()) for k, v in model.state_dict().items())
    assert changed == 50


@pytest.mark.parametrize("keep", [False, True])
def test_export_flushes_subnormals_unless_kept(tmp_path, keep):
    ckpt = make_checkpoint(tmp_path / "sub.safetensors", _with_subnormals(50), class_names=list("abcd"))
    (path,) = export_checkpoint(ckpt, backends="torch", precisions="fp32", out_dir=tmp_path / "out", keep_subnormals=keep)
    manifest = read_manifest(path)
    assert manifest["subnormals_found"] == 50 and manifest["subnormals_flushed"] == (0 if keep else 50)
    assert manifest["export_options"]["keep_subnormals"] is keep
    from edgekd.checkpoint import load_checkpoint

    exported, _ = load_checkpoint(path / "model.safetensors")
    assert count_subnormals(exported) == (50 if keep else 0)
