"""``--embed-pre-post`` for OpenVINO: its PrePostProcessor for the frame, TopK for the class map.

PrePostProcessor is OpenVINO's own way to put an app's pre-processing into the compiled model
(its CPU plugin fuses the steps into the first layers' input). The input becomes the camera's u8
NHWC frame in the stated colour order; the steps are convert to f32, convert colour (when the
camera's order is not the network's), linear resize to the network input, mean and scale. OpenVINO
has no post-processing step for an argmax, so the graph gets TopK(k=1, stable: the first maximum,
as numpy's argmax), a Convert to u8 and, for a camera-size map, a nearest Interpolate.
"""
from __future__ import annotations

from typing import Any

from edgekd.backends.prepost import FrameContract

FRAME_INPUT, CLASS_OUTPUT = "frame", "classes"


def embed_openvino(model: Any, contract: FrameContract) -> tuple[Any, dict[str, Any]]:
    """(the fused ov.Model, the manifest's ``io_contract``) for a plain NCHW float model."""
    import openvino as ov
    import openvino.opset13 as ops
    from openvino.preprocess import ColorFormat, PrePostProcessor, ResizeAlgorithm

    colours = {"RGB": ColorFormat.RGB, "BGR": ColorFormat.BGR}
    ch, cw = contract.camera_hw
    ppp = PrePostProcessor(model)
    inp = ppp.input()
    inp.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_shape([1, ch, cw, 3]) \
        .set_color_format(colours[contract.channel_order])
    inp.model().set_layout(ov.Layout("NCHW"))
    pre = inp.preprocess().convert_element_type(ov.Type.f32)
    if contract.swap_channels:
        pre.convert_color(colours[contract.model_channel_order])
    if (ch, cw) != tuple(contract.network_hw):
        pre.resize(ResizeAlgorithm.RESIZE_LINEAR)
    pre.mean(list(contract.mean)).scale(list(contract.std))
    model = ppp.build()
    model.inputs[0].get_tensor().set_names({FRAME_INPUT})
    top = ops.topk(model.get_results()[0].input_value(0), ops.constant(1, ov.Type.i64), axis=1, mode="max", sort="value",
                   index_element_type="i32", stable=True)
    classes = ops.convert(ops.squeeze(top.output(1), ops.constant([1], ov.Type.i64)), "u8")
    if contract.class_map_at == "camera":
        classes = ops.interpolate(classes, ops.constant([ch, cw], ov.Type.i64), mode="nearest", shape_calculation_mode="sizes",
                                  coordinate_transformation_mode="asymmetric", nearest_mode="floor",
                                  axes=ops.constant([1, 2], ov.Type.i64))
    result = ops.result(classes)
    result.output(0).get_tensor().set_names({CLASS_OUTPUT})
    fused = ov.Model([result], model.get_parameters(), "edgekd_fused")
    steps = "u8 NHWC -> f32" + (f", {contract.channel_order}->{contract.model_channel_order}" if contract.swap_channels else "") \
        + ", linear resize, mean, scale"
    return fused, contract.to_manifest(built_with=f"openvino.preprocess.PrePostProcessor ({steps}) + TopK(k=1) + Convert(u8)"
                                       + (" + Interpolate(nearest)" if contract.class_map_at == "camera" else ""),
                                       input_name=FRAME_INPUT, output_name=CLASS_OUTPUT)
