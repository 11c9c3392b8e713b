"""ExportOptions: one validated object per export request; bad requests fail before any file is touched."""
from __future__ import annotations

import dataclasses

import pytest

from edgekd.errors import EdgekdError
from edgekd.export import ExportOptions, export_checkpoint


def test_defaults_and_what_is_derived(tmp_path) -> None:
    opts = ExportOptions(backends="torch,onnxruntime:int8", precisions="fp32", out_dir=tmp_path, input_size="64x96,32x48",
                         backend_options={"opset": 17, "onnx_simplify": None})
    assert [(b.name, p) for b, p in opts.combos] == [("torch", "fp32"), ("onnxruntime", "int8")]
    assert opts.int8 and opts.options == {"opset": 17, "calib_method": "auto"}  # None = not set, dropped
    assert opts.sizes == [(64, 96), (32, 48)] and opts.embed is None
    assert opts.calib_size == 100 and opts.parity_threshold == 0.98 and opts.exporter == "torchscript"
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.force = True


def test_fused_request_is_kept(tmp_path) -> None:
    opts = ExportOptions(backends="onnxruntime", precisions="fp32", out_dir=tmp_path, embed_pre_post=True,
                         camera_size="96x144", channel_order="bgr", class_map_size="camera")
    assert opts.embed.camera_hw == (96, 144) and opts.embed.class_map_at == "camera"


@pytest.mark.parametrize("kwargs, message", [
    (dict(backends="onnxruntim"), "unknown backend 'onnxruntim'.*'onnxruntime'"),
    (dict(precisions="fp8"), "unknown precision 'fp8'"),
    (dict(backends="torch", precisions="int8"), "unsupported precision for this backend: torch int8"),
    (dict(exporter="dynamite"), "unknown ONNX exporter 'dynamite'"),
    (dict(calib_method="median", precisions="int8"), "median"),
    (dict(backend_options={"coreml_weights": "x"}), "export option 'coreml_weights' does nothing for backends onnxruntime"),
    (dict(backend_options={"max_accuracy_drop": 1}), "add --precision int8"),
    (dict(calib_size=0), r"calib_size 0: .*at least 1"),
    (dict(parity_images=-1), r"--parity-images -1: .*0 or more"),
    (dict(parity_threshold="high"), r"--parity-threshold 'high'"),
    (dict(num_classes=0), r"--num-classes 0"),
    (dict(input_size="64by96"), "HxW"),
    (dict(camera_size="96x144"), "add --embed-pre-post"),
    (dict(embed_pre_post=True, dynamic_batch=True), "drop --dynamic-batch"),
])
def test_bad_options_are_one_line_errors(tmp_path, kwargs, message) -> None:
    args = dict(backends="onnxruntime", precisions="fp32", out_dir=tmp_path) | kwargs
    with pytest.raises(EdgekdError, match=message) as err:
        ExportOptions(**args)
    assert "\n" not in str(err.value)


def test_keyword_wrapper_validates_the_same_way_and_writes_nothing(tmp_path) -> None:
    with pytest.raises(EdgekdError, match="calib_size 0"):
        export_checkpoint(tmp_path / "missing.safetensors", backends="torch", precisions="fp32", out_dir=tmp_path / "out",
                          calib_size=0)
    with pytest.raises(TypeError, match="calib_sise"):
        export_checkpoint(tmp_path / "missing.safetensors", backends="torch", precisions="fp32", out_dir=tmp_path, calib_sise=3)
    assert not (tmp_path / "out").exists()
