"""--embed-pre-post: export -> run -> parity of fused (uint8 frame -> uint8 class map) artifacts, the
manifest's I/O contract, the bench's fused e2e, and refusal of what a fused export cannot do."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from test_export_support import tiny_ckpt  # noqa: F401  (fixture)

from edgekd.backends.prepost import FrameContract
from edgekd.cli import main
from edgekd.errors import EdgekdError
from edgekd.export import export_checkpoint, load_artifact, read_manifest
from edgekd.export.fused import unfused_classes

CAMERA = (96, 144)  # camera frames 1.5x the tiny model's 64x96 input


def _frames(synthetic_root, n=3):
    from edgekd.data import open_dataset

    ds = open_dataset(synthetic_root, "val")
    return [cv2.resize(ds.read_pair(i)[0], CAMERA[::-1], interpolation=cv2.INTER_LINEAR) for i in range(n)]


def _check(path, synthetic_root, *, order: str, at: str, backend: str):
    m = read_manifest(path)
    c = m["io_contract"]
    assert c["kind"] == "frame_to_classes" and c["network_input_hw"] == [64, 96]
    assert c["input"] == {"name": "frame", "dtype": "uint8", "layout": "NHWC", "shape": [1, *CAMERA, 3],
                          "channel_order": order, "range": "0..255", "meaning": "the camera frame, unnormalised"}
    out_hw = list(CAMERA) if at == "camera" else [64, 96]
    assert c["output"]["dtype"] == "uint8" and c["output"]["layout"] == "NHW" and c["output"]["shape"] == [1, *out_hw]
    assert c["output"]["size"] == at and c["inside"]["channel_swap"] == (order == "BGR")
    assert c["inside"]["normalization"]["mean"] == m["normalization"]["mean"]
    assert m["input_dtype"] == "uint8" and m["output_shape"] == [1, *out_hw] and m["input_shape"] == [1, 3, 64, 96]
    p = m["parity"]
    assert p["kind"] == "fused_vs_unfused" and p["images"] == 2 and p["status"] == "ok", p
    assert p["class_map_agreement"] >= 0.98 and abs(p["miou_delta"]) < 0.02
    # run it as an app would: the camera frame in, the class map out, against the unfused pipeline
    session = load_artifact(path)
    model = _model(m)
    contract = FrameContract.make(camera_hw=CAMERA, network_hw=(64, 96), channel_order=order,
                                  normalization=m["normalization"], class_map_at=at, num_classes=m["num_classes"])
    for rgb in _frames(synthetic_root):
        frame = np.ascontiguousarray(rgb[..., ::-1]) if order == "BGR" else rgb
        out = np.asarray(session.run(frame[None]))
        assert out.dtype == np.uint8 and out.shape == (1, *out_hw)
        assert (out[0] == unfused_classes(model, rgb, contract)).mean() >= 0.98, backend


def _model(manifest):
    from edgekd.checkpoint import load_checkpoint

    return load_checkpoint(manifest["source"]["checkpoint"])[0].eval()


def test_onnxruntime_fused_export_run_parity(tiny_ckpt, synthetic_root, tmp_path):
    (path,) = export_checkpoint(tiny_ckpt, backends="onnxruntime", precisions="fp32", out_dir=tmp_path, data_dir=synthetic_root,
                                parity_images=2, embed_pre_post=True, camera_size="96x144", channel_order="bgr",
                                class_map_size="camera")
    assert path.name == "onnxruntime-fp32-fused"
    _check(path, synthetic_root, order="BGR", at="camera", backend="onnxruntime")
    assert "Resize on the uint8 frame" in read_manifest(path)["io_contract"]["built_with"]


@pytest.mark.backend
def test_openvino_fused_export_run_parity(tiny_ckpt, synthetic_root, tmp_path):
    pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'edgekd[openvino]')")
    (path,) = export_checkpoint(tiny_ckpt, backends="openvino", precisions="fp32", out_dir=tmp_path, data_dir=synthetic_root,
                                parity_images=2, embed_pre_post=True, camera_size="96x144", channel_order="rgb")
    _check(path, synthetic_root, order="RGB", at="network", backend="openvino")
    assert "PrePostProcessor" in read_manifest(path)["io_contract"]["built_with"]


def test_bench_cell_times_the_fused_frame(tiny_ckpt, synthetic_root, tmp_path):
    """The bench's e2e runs the fused artifact on the uint8 frame: no Python resize/normalise/argmax stage."""
    from edgekd.bench.cell import measure_cell
    from edgekd.bench.cellspec import CellSpec

    (path,) = export_checkpoint(tiny_ckpt, backends="onnxruntime", precisions="fp32", out_dir=tmp_path, parity_images=0,
                                embed_pre_post=True, camera_size="96x144", class_map_size="network")
    out: dict = {}
    spec = CellSpec.from_dict({"artifact_dir": str(path), "runtime_options": {"threads": 1}, "camera_hw": list(CAMERA),
                               "timing": {"duration_s": 0.2, "min_iters": 5, "tail_min_iters": 0}, "warmup": {"max_seconds": 0.5},
                               "e2e": {"duration_s": 0.3}, "throughput_s": 0, "sensors": {}})
    measure_cell(spec, out)
    e2e = out["e2e"]
    assert e2e["fused"] is True and set(e2e["stages_ms_p50"]) == {"input", "inference", "upsample", "overlay"}
    assert e2e["camera_hw"] == list(CAMERA) and e2e["input_hw"] == [64, 96] and out["input_size"] == [64, 96]
    assert out["io_contract"]["kind"] == "frame_to_classes" and out["latency_ms"]["n"] >= 5
    assert out["timed_region"].startswith("session.bind(frame) step of a fused artifact")


@pytest.mark.parametrize("kwargs, message", [
    (dict(backends="torch"), "--embed-pre-post is not available for torch"),
    (dict(channel_order="yuv"), "--channel-order 'yuv' is not one of bgr, rgb"),
    (dict(class_map_size="screen"), "--class-map-size 'screen' is not one of network, camera"),
    (dict(dynamic_batch=True), "drop --dynamic-batch"),
    (dict(camera_size="96by144"), "must be HxW"),
    (dict(embed_pre_post=False, camera_size="96x144"), "add --embed-pre-post"),
])
def test_bad_fused_options_are_refused_and_nothing_written(tiny_ckpt, tmp_path, kwargs, message):
    args = dict(backends="onnxruntime", precisions="fp32", out_dir=tmp_path, parity_images=0, embed_pre_post=True) | kwargs
    with pytest.raises(EdgekdError, match=message):
        export_checkpoint(tiny_ckpt, **args)
    assert not any(tmp_path.iterdir())


def test_too_many_classes_for_a_uint8_map():
    with pytest.raises(EdgekdError, match="300 classes do not fit"):
        FrameContract.make(camera_hw=None, network_hw=(8, 8), channel_order="rgb",
                           normalization={"mean": [0, 0, 0], "std": [1, 1, 1]}, class_map_at="network", num_classes=300)


def test_cli_fused_export(tiny_ckpt, synthetic_root, tmp_path, capsys):
    code = main(["export", str(tiny_ckpt), "--backend", "onnxruntime", "--out", str(tmp_path), "--data", str(synthetic_root),
                 "--parity-images", "2", "--embed-pre-post", "--camera-size", "96x144"])
    assert code == 0
    out = capsys.readouterr().out
    assert "onnxruntime-fp32-fused" in out
    manifest = json.loads((tmp_path / tiny_ckpt.stem / "onnxruntime-fp32-fused" / "manifest.json").read_text())
    assert manifest["io_contract"]["input"]["channel_order"] == "RGB"
    assert main(["export", str(tiny_ckpt), "--backend", "torch", "--out", str(tmp_path / "x"), "--embed-pre-post"]) != 0


def test_tensorrt_fused_recipe_names_the_frame_input(tiny_ckpt, synthetic_root, tmp_path):
    """Code path only (engines are built on the NVIDIA target): ArgMax and the float resize in the ONNX, and
    the recipe's input, output and shape profile are the fused graph's."""
    import onnx

    (path,) = export_checkpoint(tiny_ckpt, backends="tensorrt", precisions="fp16", out_dir=tmp_path, parity_images=0,
                                embed_pre_post=True, camera_size="96x144", channel_order="bgr")
    recipe = json.loads((path / "recipe.json").read_text())
    assert recipe["input_name"] == "frame" and recipe["output_name"] == "classes"
    assert recipe["profiles"] == [{"frame": {"min": [1, 96, 144, 3], "opt": [1, 96, 144, 3], "max": [1, 96, 144, 3]}}]
    graph = onnx.load(str(path / "model.onnx")).graph
    ops = [n.op_type for n in graph.node]
    assert "ArgMax" in ops and ops[:3] == ["Cast", "Transpose", "Gather"]  # float resize: after the cast
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert read_manifest(path)["tensorrt_recipe"]["input_name"] == "frame"
    with pytest.raises(EdgekdError, match="needs --trt-int8 qdq"):
        export_checkpoint(tiny_ckpt, backends="tensorrt", precisions="int8", out_dir=tmp_path / "i8", calib_dir=synthetic_root,
                          calib_size=8, parity_images=0, embed_pre_post=True)


@pytest.mark.backend
def test_coreml_fused_conversion(tiny_ckpt, tmp_path):
    """Conversion and spec check run here; a prediction needs macOS (skipped with the reason)."""
    pytest.importorskip("coremltools", reason="coremltools is not installed (pip install 'edgekd[coreml]')")
    (path,) = export_checkpoint(tiny_ckpt, backends="coreml", precisions="fp32", out_dir=tmp_path, parity_images=0,
                                embed_pre_post=True, camera_size="96x144", class_map_size="camera")
    m = read_manifest(path)
    assert m["io_contract"]["output"]["dtype"] == "int32" and m["io_contract"]["output"]["shape"] == [1, 96, 144]
    assert m["coreml"]["input_name"] == "frame" and "ImageType" in m["io_contract"]["built_with"]
    import coremltools as ct

    spec = ct.utils.load_spec(str(path / "model.mlpackage"))
    assert spec.description.input[0].type.WhichOneof("Type") == "imageType"
    assert spec.description.input[0].type.imageType.width == 144 and spec.description.output[0].name == "classes"
    import sys

    if sys.platform != "darwin":
        pytest.skip("Core ML prediction needs macOS: the fused class map is checked there")
