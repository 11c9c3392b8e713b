"""``--embed-pre-post`` for the ONNX-based backends (ONNX Runtime, TensorRT): ONNX ops around the graph.

The exported graph (FP32, or ONNX Runtime's INT8 QDQ) is wrapped in place rather than re-exported
from a PyTorch wrapper, so the fused artifact runs exactly the network its plain sibling runs,
quantised or not. Before the network: [Resize uint8 NHWC] -> Cast float -> Transpose to NCHW ->
[Gather: reverse channels] -> [Resize float] -> Sub mean -> Mul 1/std. After it: ArgMax over
classes -> Cast uint8 -> [Resize nearest to the camera size]. The bilinear resize runs on the
uint8 frame for ONNX Runtime (its NHWC uint8 kernel is the fast one and rounds like
``cv2.resize``) and on floats for TensorRT (whose resize layer takes no uint8).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekd.backends.prepost import FrameContract

FRAME_INPUT, CLASS_OUTPUT = "frame", "classes"
_P = "edgekd_prepost_"


def embed_onnx(src: Path, dst: Path, contract: FrameContract, *, resize_uint8: bool) -> dict[str, Any]:
    """Write ``src`` wrapped with the contract's pre/post ops to ``dst``; returns the manifest's ``io_contract``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    net_in, net_out = graph.input[0].name, graph.output[0].name
    h, w = contract.network_hw
    ch, cw = contract.camera_hw
    inits = {
        "net_sizes_nhwc": np.array([1, h, w, 3], np.int64), "net_sizes_nchw": np.array([1, 3, h, w], np.int64),
        "mean": np.array(contract.mean, np.float32).reshape(1, 3, 1, 1),
        "inv_std": (1.0 / np.array(contract.std, np.float32)).reshape(1, 3, 1, 1),
        "reverse": np.array([2, 1, 0], np.int64), "cam_sizes": np.array([1, ch, cw], np.int64),
    }
    pre: list[Any] = []

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        pre_or_post.append(helper.make_node(op, inputs, [output], name=_P + output, **attrs))
        return output

    linear = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    pre_or_post, x = pre, FRAME_INPUT
    resize_needed = (ch, cw) != (h, w)
    if resize_needed and resize_uint8:
        x = node("Resize", [x, "", "", _P + "net_sizes_nhwc"], _P + "resized_u8", **linear)
    x = node("Cast", [x], _P + "frame_f32", to=TensorProto.FLOAT)
    x = node("Transpose", [x], _P + "frame_nchw", perm=[0, 3, 1, 2])
    if contract.swap_channels:
        x = node("Gather", [x, _P + "reverse"], _P + "swapped", axis=1)
    if resize_needed and not resize_uint8:
        x = node("Resize", [x, "", "", _P + "net_sizes_nchw"], _P + "resized_f32", **linear)
    x = node("Sub", [x, _P + "mean"], _P + "centred")
    node("Mul", [x, _P + "inv_std"], net_in)
    post: list[Any] = []
    pre_or_post = post
    y = node("ArgMax", [net_out], _P + "argmax", axis=1, keepdims=0)
    y = node("Cast", [y], CLASS_OUTPUT if contract.class_map_at == "network" else _P + "classes_net", to=TensorProto.UINT8)
    if contract.class_map_at == "camera":
        node("Resize", [y, "", "", _P + "cam_sizes"], CLASS_OUTPUT, mode="nearest",
             coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    used = {name for n in pre + post for name in n.input}
    graph.initializer.extend(numpy_helper.from_array(v, _P + k) for k, v in inits.items() if _P + k in used)
    nodes = pre + list(graph.node) + post
    del graph.node[:]
    graph.node.extend(nodes)
    oh, ow = contract.output_hw
    frame = helper.make_tensor_value_info(FRAME_INPUT, TensorProto.UINT8, [1, ch, cw, 3])
    classes = helper.make_tensor_value_info(CLASS_OUTPUT, TensorProto.UINT8, [1, oh, ow])
    del graph.input[:1]
    graph.input.insert(0, frame)
    del graph.output[:]
    graph.output.append(classes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    where = "on the uint8 frame (NHWC)" if resize_uint8 else "on floats (NCHW)"
    return contract.to_manifest(built_with=f"ONNX ops around the exported graph (Resize {where}, ArgMax, Cast)",
                                input_name=FRAME_INPUT, output_name=CLASS_OUTPUT)
