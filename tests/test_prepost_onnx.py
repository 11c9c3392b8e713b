"""The ONNX pre/post ops of --embed-pre-post on a hand-built "network" whose logits are its input.

With logits = the normalised image (3 "classes" = the 3 channels), the fused graph's class map is
argmax over the normalised channels of the resized frame — computable exactly with OpenCV and
numpy, so channel order, resize, normalisation, argmax and the nearest resize back are all
checked against an independent reference (no PyTorch model involved)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgekd.backends.onnx_prepost import embed_onnx
from edgekd.backends.prepost import FrameContract

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

NET, CAMERA = (24, 32), (48, 80)
NORM = {"mean": [120.0, 110.0, 100.0], "std": [60.0, 30.0, 45.0], "channel_order": "RGB"}


def _identity_network(path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "identity",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, *NET])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, *NET])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _frame(seed=0):
    """8×8-pixel blocks of colours with one dominant channel: argmax is unambiguous inside a block, so only
    block edges (where the bilinear resize blends two colours) can differ between implementations."""
    rng = np.random.default_rng(seed)
    dominant = rng.integers(0, 3, (CAMERA[0] // 8, CAMERA[1] // 8))
    colours = np.full((*dominant.shape, 3), 40, np.uint8)
    np.put_along_axis(colours, dominant[..., None], 220, axis=2)
    return np.ascontiguousarray(colours.repeat(8, axis=0).repeat(8, axis=1))


def _reference(rgb: np.ndarray, at: str) -> np.ndarray:
    x = cv2.resize(rgb, NET[::-1], interpolation=cv2.INTER_LINEAR).astype(np.float32)
    classes = np.argmax((x - np.float32(NORM["mean"])) / np.float32(NORM["std"]), axis=2).astype(np.uint8)
    return cv2.resize(classes, CAMERA[::-1], interpolation=cv2.INTER_NEAREST) if at == "camera" else classes


@pytest.mark.parametrize("order", ["RGB", "BGR"])
@pytest.mark.parametrize("at", ["network", "camera"])
@pytest.mark.parametrize("resize_uint8", [True, False])
def test_fused_onnx_graph_matches_opencv_numpy(tmp_path, order, at, resize_uint8):
    _identity_network(tmp_path / "net.onnx")
    contract = FrameContract.make(camera_hw=CAMERA, network_hw=NET, channel_order=order, normalization=NORM,
                                  class_map_at=at, num_classes=3)
    io = embed_onnx(tmp_path / "net.onnx", tmp_path / "fused.onnx", contract, resize_uint8=resize_uint8)
    session = ort.InferenceSession(str(tmp_path / "fused.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["frame"] and [o.name for o in session.get_outputs()] == ["classes"]
    assert io["input"]["shape"] == [1, *CAMERA, 3] and io["output"]["shape"] == [1, *(CAMERA if at == "camera" else NET)]
    for seed in range(3):
        rgb = _frame(seed)
        frame = np.ascontiguousarray(rgb[..., ::-1]) if order == "BGR" else rgb
        out = session.run(None, {"frame": frame[None]})[0]
        assert out.dtype == np.uint8
        # the uint8 resize rounds like OpenCV's fixed-point one, the float path not at all: block edges may differ
        assert (out[0] == _reference(rgb, at)).mean() >= 0.98


def test_no_resize_when_the_camera_is_the_network_size(tmp_path):
    _identity_network(tmp_path / "net.onnx")
    contract = FrameContract.make(camera_hw=None, network_hw=NET, channel_order="rgb", normalization=NORM,
                                  class_map_at="network", num_classes=3)
    embed_onnx(tmp_path / "net.onnx", tmp_path / "fused.onnx", contract, resize_uint8=True)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "fused.onnx")).graph.node]
    assert ops == ["Cast", "Transpose", "Sub", "Mul", "Identity", "ArgMax", "Cast"]
    rgb = cv2.resize(_frame(), NET[::-1])
    out = ort.InferenceSession(str(tmp_path / "fused.onnx"), providers=["CPUExecutionProvider"]).run(None, {"frame": rgb[None]})[0]
    inv_std = (1.0 / np.array(NORM["std"], np.float32)).astype(np.float32)  # the graph multiplies by 1/std
    expected = np.argmax((rgb.astype(np.float32) - np.float32(NORM["mean"])) * inv_std, axis=2)
    assert np.array_equal(out[0], expected.astype(np.uint8))  # no resize: exact


def test_contract_records_the_swap_and_sizes():
    c = FrameContract.make(camera_hw=(720, 1280), network_hw=(360, 480), channel_order="bgr",
                           normalization=NORM, class_map_at="camera", num_classes=11)
    m = c.to_manifest(built_with="test")
    assert c.swap_channels and m["inside"]["channel_swap"] and m["input"]["channel_order"] == "BGR"
    assert m["network_input_hw"] == [360, 480] and m["output"]["shape"] == [1, 720, 1280] and m["output"]["size"] == "camera"
    assert m["output"]["meaning"] == "class index per pixel (0..10)" and m["kind"] == "frame_to_classes"
