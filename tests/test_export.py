"""export_checkpoint: artifact layout, manifest, shared ONNX, parity flags, and refusal of bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.errors import EdgekdError
from edgekd.export import export_checkpoint, read_manifest
from test_export_support import TINY_ARCH, build_tiny, make_checkpoint, tiny_ckpt  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("exp") / "tiny.safetensors", build_tiny(num_classes=4).eval(),
                           class_names=["a", "b", "c", "d"])


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".")]


def test_layout_and_manifest(tiny_ckpt, synthetic_root, tmp_path):
    paths = export_checkpoint(tiny_ckpt, backends="torch,onnxruntime", precisions="fp32", out_dir=tmp_path,
                              data_dir=synthetic_root, parity_images=2)
    assert paths == [tmp_path / "tiny" / "torch-fp32", tmp_path / "tiny" / "onnxruntime-fp32"]
    m = read_manifest(paths[1])
    from edgekd.checkpoint import sha256_file

    assert m["source"]["sha256"] == sha256_file(tiny_ckpt) and m["arch"] == TINY_ARCH
    assert m["backend"] == "onnxruntime" and m["backend_version"] and m["precision"] == "fp32"
    assert m["input_shape"] == [1, 3, 64, 96] and m["output_shape"][:2] == [1, m["num_classes"]]
    assert m["normalization"]["mean"] == [123.675, 116.28, 103.53] and m["normalization"]["channel_order"] == "RGB"
    assert m["class_names"][0] == "background" and m["onnx"]["opset"] == 17
    assert m["files"] == {"model.onnx": (paths[1] / "model.onnx").stat().st_size} and m["size_bytes"] > 0
    assert m["parity"]["data"]["split"] == "val" and m["parity"]["data"]["num_images"] == 2
    assert m["created"] and m["edgekd_version"] and m["subnormals_flushed"] == 0
    assert _leftovers(tmp_path) == [], "temporary folders are removed"


def test_backend_precision_pairs(ckpt):
    from edgekd.export.options import plan_combinations

    pairs = [(b.name, p) for b, p in plan_combinations("torch,onnxruntime:int8,openvino:fp16", "fp32")]
    assert pairs == [("torch", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp16")]
    with pytest.raises(EdgekdError, match="unknown precision 'in8' \\(did you mean 'int8'\\?\\)"):
        plan_combinations("onnxruntime:in8", "fp32")


@pytest.mark.parametrize("exporter, opset", [("dynamo", 20), ("torchscript", 17)])
def test_both_exporters_with_dynamic_batch(ckpt, tmp_path, exporter, opset):
    import numpy as np

    from edgekd.export import load_artifact

    (path,) = export_checkpoint(ckpt, backends="onnxruntime", precisions="fp32", out_dir=tmp_path, exporter=exporter,
                                dynamic_batch=True)
    m = read_manifest(path)
    assert m["onnx"]["opset"] == opset and m["onnx"]["exporter"] == f"torch.onnx.export(dynamo={exporter == 'dynamo'})"
    assert not list(path.glob("*.data")), "weights are embedded in model.onnx"
    assert m["input_shape"] == ["N", 3, 64, 96]
    out = load_artifact(path).run(np.zeros((3, 3, 64, 96), np.float32))
    assert out.shape == (3, 4, 64, 96)


def test_low_agreement_is_flagged_in_the_manifest(tiny_ckpt, synthetic_root, tmp_path):
    (path,) = export_checkpoint(tiny_ckpt, backends="onnxruntime", precisions="int8", out_dir=tmp_path,
                                calib_dir=synthetic_root, calib_size=8, parity_images=2, parity_threshold=1.01,
                                options={"max_accuracy_drop": 50.0})  # the parity flag is under test, not the INT8 budget
    parity = read_manifest(path)["parity"]
    assert parity["threshold"] == 1.01 and "below 1.01" in parity["warning"]
    assert parity["status"] == "below_threshold", "an artifact under the parity threshold is never 'ok'"


def test_too_few_calibration_images_for_the_method_is_refused(tiny_ckpt, synthetic_root, tmp_path):
    with pytest.raises(EdgekdError, match="4 calibration images are too few for --calib-method minmax .*at least 8"):
        export_checkpoint(tiny_ckpt, backends="onnxruntime", precisions="int8", out_dir=tmp_path, calib_dir=synthetic_root,
                          calib_size=4, calib_method="minmax", parity_images=2)
    assert not any(tmp_path.iterdir()), "nothing written"


@pytest.mark.parametrize("method, need", [("percentile", 16), ("entropy", 16)])
def test_histogram_methods_need_sixteen_calibration_images(tiny_ckpt, synthetic_root, tmp_path, method, need):
    with pytest.raises(EdgekdError, match=f"12 calibration images are too few for --calib-method {method} .*at least {need}"):
        export_checkpoint(tiny_ckpt, backends="onnxruntime", precisions="int8", out_dir=tmp_path, calib_dir=synthetic_root,
                          calib_size=12, calib_method=method, parity_images=2)
    assert not any(tmp_path.iterdir()), "nothing written"


def test_auto_with_too_few_images_for_any_method_names_the_count(tiny_ckpt, synthetic_root, tmp_path):
    with pytest.raises(EdgekdError, match="5 calibration images are too few for --calib-method minmax .*at least 8"):
        export_checkpoint(tiny_ckpt, backends="onnxruntime", precisions="int8", out_dir=tmp_path, calib_dir=synthetic_root,
                          calib_size=5, parity_images=2)
    assert not any(tmp_path.iterdir()), "nothing written"


def test_calibration_images_of_another_class_count_are_refused(ckpt, synthetic_root, tmp_path):
    # ckpt predicts 4 classes; the synthetic dataset has 7
    with pytest.raises(EdgekdError, match=r"predicts 4 classes but dataset .* \(--calib\) has 7"):
        export_checkpoint(ckpt, backends="onnxruntime", precisions="int8", out_dir=tmp_path, calib_dir=synthetic_root,
                          calib_size=8, parity_images=0)
    assert not any(tmp_path.iterdir()), "nothing written"


def test_calibration_images_of_another_size_are_refused(tiny_ckpt, tmp_path_factory, tmp_path):
    from edgekd.data import generate_synthetic_dataset

    square = generate_synthetic_dataset(tmp_path_factory.mktemp("square") / "ds", num_train=8, num_val=2, size=(64, 64), seed=0)
    with pytest.raises(EdgekdError, match="calibration images are 64x64 \\(HxW\\), the export input is 64x96: .*--input-size"):
        export_checkpoint(tiny_ckpt, backends="onnxruntime", precisions="int8", out_dir=tmp_path, calib_dir=square,
                          calib_size=8, parity_images=0)
    assert not any(tmp_path.iterdir()), "nothing written"


def test_unmeetable_budget_fails_with_one_line_and_no_artifact(tiny_ckpt, synthetic_root, tmp_path, monkeypatch):
    from edgekd.backends import int8_budget, ort_int8
    from edgekd.backends.int8_budget import AccuracyGateError

    # INT8 of the tiny model can tie FP32 on 4 images, so a budget no model can meet makes the test deterministic
    monkeypatch.setattr(ort_int8, "resolve_budget", lambda option, fp32: int8_budget.Budget(-100.0, "test", fp32))
    with pytest.raises(AccuracyGateError, match="cannot meet --max-accuracy-drop -100 mIoU points.*best drop .* layers kept in float"):
        export_checkpoint(tiny_ckpt, backends="onnxruntime", precisions="fp32,int8", out_dir=tmp_path, calib_dir=synthetic_root,
                          calib_size=8, calib_method="minmax", parity_images=4, options={"max_accuracy_drop": 0})
    assert not list(tmp_path.rglob("manifest.json")), "no artifact from a failed export, not even the fp32 one"


def test_plain_ptq_with_the_gate_off_needs_no_labelled_images(tiny_ckpt, synthetic_root, tmp_path):
    """--max-accuracy-drop off --parity-images 0: plain PTQ for a bench run that measures accuracy itself."""
    [path] = export_checkpoint(tiny_ckpt, backends="onnxruntime", precisions="int8", out_dir=tmp_path, calib_dir=synthetic_root,
                               calib_size=8, calib_method="minmax", parity_images=0, options={"max_accuracy_drop": "off"})
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["quantization"]["method"] == "minmax"
    assert (path / "model.onnx").is_file()


def test_a_budget_without_labelled_images_is_refused(tiny_ckpt, synthetic_root, tmp_path):
    with pytest.raises(EdgekdError, match="--max-accuracy-drop needs labelled validation images"):
        export_checkpoint(tiny_ckpt, backends="onnxruntime", precisions="int8", out_dir=tmp_path, calib_dir=synthetic_root,
                          calib_size=8, calib_method="minmax", parity_images=0, options={"max_accuracy_drop": 1})


def test_calibration_folder_without_val_split_skips_parity_with_the_reason(tiny_ckpt, synthetic_root, tmp_path):
    import shutil

    calib = tmp_path / "train_only"
    shutil.copytree(synthetic_root, calib)
    (calib / "val.txt").unlink()
    (path,) = export_checkpoint(tiny_ckpt, backends="onnxruntime", precisions="int8", out_dir=tmp_path / "out",
                                calib_dir=calib, calib_size=8)
    parity = read_manifest(path)["parity"]
    assert parity["status"] == "skipped" and "no usable 'val' split" in parity["reason"] and "--data" in parity["reason"]
    with pytest.raises(EdgekdError, match="split 'val'"):
        export_checkpoint(tiny_ckpt, backends="onnxruntime", precisions="fp32", out_dir=tmp_path / "out2", data_dir=calib)


def test_force_replaces_and_refuses_without_it(ckpt, tmp_path):
    export_checkpoint(ckpt, backends="torch", precisions="fp32", out_dir=tmp_path)
    marker = tmp_path / "tiny" / "torch-fp32" / "stale.txt"
    marker.write_text("old")
    with pytest.raises(EdgekdError, match="torch-fp32 exists; pass --force"):
        export_checkpoint(ckpt, backends="torch", precisions="fp32", out_dir=tmp_path)
    assert marker.exists()
    export_checkpoint(ckpt, backends="torch", precisions="fp32", out_dir=tmp_path, force=True)
    assert not marker.exists() and (tmp_path / "tiny" / "torch-fp32" / "manifest.json").is_file()


@pytest.mark.parametrize("kwargs, message", [
    ({"backends": "onnxruntme"}, "unknown backend 'onnxruntme' \\(did you mean 'onnxruntime'\\?\\); valid backends: torch"),
    ({"backends": "torch", "precisions": "fp23"}, "unknown precision 'fp23' \\(did you mean 'fp32'\\?\\)"),
    ({"backends": "onnxruntime", "precisions": "fp16"}, "unsupported precision for this backend: onnxruntime fp16.*onnxruntime: fp32, int8"),
    ({"backends": "onnxruntime", "precisions": "int8"}, "INT8 needs real calibration images: pass --calib DIR"),
    ({"backends": "torch", "input_size": "big"}, "input size 'big' must be HxW"),
    ({"backends": "onnxruntime", "options": {"coreml_weights": "linear8"}}, "'coreml_weights' does nothing .*applies to coreml"),
    ({"backends": "openvino", "options": {"max_accuracy_drop": 0.01}}, "--max-accuracy-drop controls INT8"),
    ({"backends": "onnxruntime", "exporter": "jit"}, "unknown ONNX exporter 'jit'"),
    ({"backends": "onnxruntime", "precisions": "int8", "calib_dir": "x", "calib_method": "kl"}, "unknown calibration method 'kl'"),
])
def test_bad_input_is_refused_with_the_fix_and_nothing_written(ckpt, tmp_path, kwargs, message):
    kwargs = {"precisions": "fp32", **kwargs}
    with pytest.raises(EdgekdError, match=message):
        export_checkpoint(ckpt, out_dir=tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []


class _SkipConcat(__import__("torch").nn.Module):
    """U-Net-like: concatenates a 2× upsampled deep feature with a shallow one, so odd sizes break it."""

    output_stride = 4

    def __init__(self, num_classes: int = 2) -> None:
        import torch

        super().__init__()
        self.num_classes = num_classes
        self.down1, self.down2 = torch.nn.Conv2d(3, 4, 3, 2, 1), torch.nn.Conv2d(4, 4, 3, 2, 1)
        self.head = torch.nn.Conv2d(8, num_classes, 1)

    def forward(self, x):
        import torch
        import torch.nn.functional as F

        f1 = self.down1(x)
        f2 = F.interpolate(self.down2(f1), scale_factor=2.0)
        return F.interpolate(self.head(torch.cat([f1, f2], 1)), scale_factor=2.0)


def build_skip_concat(*, num_classes: int = 2):
    return _SkipConcat(num_classes)


def _save(tmp_path, arch: str, model, size=(16, 16)) -> Path:
    from edgekd.checkpoint import CheckpointMeta, save_checkpoint

    meta = CheckpointMeta(arch=arch, num_classes=2, class_names=["a", "b"], ignore_index=255,
                          input_size=list(size), mean=[0, 0, 0], std=[1, 1, 1])
    return save_checkpoint(tmp_path / "m.safetensors", model, meta)


def test_a_size_the_model_cannot_run_at_is_refused_with_the_stride(tmp_path):
    ckpt = _save(tmp_path, "test_export:build_skip_concat", build_skip_concat())
    with pytest.raises(EdgekdError, match="input size 18x30 is not divisible by .* output stride 4 and the model fails at it "
                                          ".*; use --input-size 20x32"):
        export_checkpoint(ckpt, backends="torch", precisions="fp32", out_dir=tmp_path / "out", input_size="18x30")
    assert not (tmp_path / "out").exists()
    (path,) = export_checkpoint(ckpt, backends="torch", precisions="fp32", out_dir=tmp_path / "out", input_size="20x32")
    assert "input_size_note" not in read_manifest(path)


def test_an_off_stride_size_the_model_handles_is_exported_with_a_note(ckpt, tmp_path):
    (path,) = export_checkpoint(ckpt, backends="onnxruntime", precisions="fp32", out_dir=tmp_path, input_size="60x90")
    m = read_manifest(path)
    assert m["input_shape"] == [1, 3, 60, 90] and "not a multiple of the output stride 8" in m["input_size_note"]
    assert "64x96" in m["input_size_note"]


def test_missing_checkpoint_and_third_party_without_arch(tmp_path):
    with pytest.raises(EdgekdError, match="does not exist"):
        export_checkpoint(tmp_path / "nope.safetensors", backends="torch", precisions="fp32", out_dir=tmp_path / "o")


def test_third_party_state_dict_with_arch(tmp_path):
    import torch

    torch.save({"model": build_tiny(num_classes=4).state_dict()}, tmp_path / "foreign.pth")
    (path,) = export_checkpoint(tmp_path / "foreign.pth", backends="torch", precisions="fp32", out_dir=tmp_path / "o",
                                arch=TINY_ARCH, input_size="64x96")
    m = read_manifest(path)
    assert m["num_classes"] == 4 and m["source"]["trained_with"]["method"] == "imported"


class _Unsupported(__import__("torch").nn.Module):
    """A model whose graph holds an op no ONNX exporter converts (singular values)."""

    output_stride = 1

    def __init__(self, num_classes: int = 2) -> None:
        import torch

        super().__init__()
        self.conv = torch.nn.Conv2d(3, num_classes, 1)

    def forward(self, x):
        import torch

        return self.conv(x) * torch.linalg.svdvals(x[0, 0]).sum()


def build_unsupported(*, num_classes: int = 2):
    return _Unsupported(num_classes)


@pytest.mark.parametrize("exporter, op", [("dynamo", "_linalg_svd"), ("torchscript", "aten::linalg_svdvals")])
def test_converter_rejection_names_the_op_and_leaves_nothing(tmp_path, exporter, op):
    ckpt = _save(tmp_path, "test_export:build_unsupported", build_unsupported())
    with pytest.raises(EdgekdError, match=f"rejected the model at .*{op}") as info:
        export_checkpoint(ckpt, backends="onnxruntime,torch", precisions="fp32", out_dir=tmp_path / "out", exporter=exporter)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_a_failing_backend_leaves_no_half_written_folder(ckpt, tmp_path, monkeypatch):
    from edgekd.backends.registry import get_backend

    backend = get_backend("onnxruntime")

    def explode(request):
        (request.out_dir / "model.onnx").write_text("partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(backend, "export", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        export_checkpoint(ckpt, backends="torch,onnxruntime", precisions="fp32", out_dir=tmp_path)
    assert (tmp_path / "tiny" / "torch-fp32" / "manifest.json").is_file(), "finished artifacts stay complete"
    assert not (tmp_path / "tiny" / "onnxruntime-fp32").exists() and _leftovers(tmp_path) == []


def test_manifest_is_plain_json(ckpt, tmp_path):
    (path,) = export_checkpoint(ckpt, backends="torch", precisions="fp32", out_dir=tmp_path)
    doc = json.loads((path / "manifest.json").read_text())
    assert doc["format"] == "edgekd-artifact" and doc["parity"]["status"] == "skipped" and "--data" in doc["parity"]["reason"]


def test_read_manifest_refuses_other_folders(tmp_path):
    with pytest.raises(EdgekdError, match="no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(EdgekdError, match="not an edgekd artifact manifest"):
        read_manifest(tmp_path)
